"""Reading series and label windows, and checking them, with errors that name the problem.

Python callers get :class:`ValueError`; the CSV and label readers (used by ``h0 detect``) raise
:class:`h0._errors.UsageError`, a ``ValueError`` the CLI prints as one line.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from h0._errors import UsageError

BUNDLED_NAME = "realKnownCause/machine_temperature_system_failure.csv"
_TIME_NAMES = ("timestamp", "time", "date", "datetime")


def bundled_paths() -> tuple[Path, Path]:
    """Paths of the bundled NAB series and its label windows."""
    data = resources.files("h0") / "data"
    csv = Path(str(data / "machine_temperature_system_failure.csv"))
    labels = Path(str(data / "machine_temperature_system_failure.labels.json"))
    return csv, labels


def as_values(X: Any, name: str = "X") -> np.ndarray:
    """Turn a numpy array or a pandas Series/DataFrame into float64 values ``[T, C]``.

    Args:
        X: ``[T]`` or ``[T, C]`` numbers: an array, a list, a Series or a DataFrame (numeric
            columns only).
        name: The argument's name, for error messages.

    Returns:
        A float64 array ``[T, C]``.

    Raises:
        ValueError: For other shapes, non-numeric data, NaN or inf.

    Example:
        >>> as_values(pd.Series([1, 2, 3])).shape
        (3, 1)
    """
    if isinstance(X, pd.DataFrame):
        bad = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise ValueError(f"{name} has non-numeric columns {bad}; pass only the value columns.")
        values = X.to_numpy(dtype=np.float64)
    elif isinstance(X, pd.Series):
        if not pd.api.types.is_numeric_dtype(X):
            raise ValueError(f"{name} is a Series of dtype {X.dtype}; expected numbers.")
        values = X.to_numpy(dtype=np.float64)
    else:
        try:
            values = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must hold numbers: {error}") from None
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"{name} must have shape [time] or [time, channels]; got {values.shape}.")
    if values.shape[1] == 0:
        raise ValueError(f"{name} has no channels (shape {values.shape}).")
    bad_rows = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if bad_rows.size:
        raise ValueError(
            f"{name} has NaN or inf values at rows {_rows(bad_rows)}; fill or drop them first."
        )
    return values


def _rows(rows: Sequence[int] | np.ndarray, offset: int = 0) -> str:
    rows = [int(r) + offset for r in rows]
    shown = ", ".join(str(r) for r in rows[:5])
    return shown + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")


@dataclasses.dataclass(frozen=True)
class LoadedSeries:
    """A series read from a CSV.

    Attributes:
        path: The file.
        times: Timestamps (``None`` when the file has no time column).
        values: Float values ``[T, C]``.
        columns: The value columns' names.
        time_column: The time column's name, or ``None``.
    """

    path: Path
    times: pd.DatetimeIndex | None
    values: np.ndarray
    columns: list[str]
    time_column: str | None


def load_csv(
    path: str | Path,
    *,
    value_columns: Sequence[str] | None = None,
    time_column: str | None = None,
    fill_missing: bool = False,
    sort: bool = False,
    keep_order: bool = False,
) -> LoadedSeries:
    """Read a series from a CSV file and check it.

    The time column is ``time_column``, else a column called timestamp/time/date/datetime if there
    is one; the value columns are ``value_columns``, else every other numeric column. Row numbers
    in messages are the file's line numbers (the header is line 1).

    Args:
        path: The CSV file.
        value_columns: Columns to analyse.
        time_column: The timestamp column.
        fill_missing: Fill empty, NaN or inf values by carrying the last value forward (and the first
            valid value backward), instead of failing.
        sort: Sort rows by time (and drop exact duplicate timestamps, keeping the first), instead
            of failing on unsorted or duplicate timestamps.
        keep_order: Keep the rows in file order even where timestamps repeat or go backwards
            (NAB scores its files this way; the bundled series repeats one hour).

    Returns:
        The :class:`LoadedSeries`.

    Raises:
        UsageError: Missing/empty file, unknown or non-numeric columns, bad timestamps, missing
            values, a constant column.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file.")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path}: the file is empty.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise UsageError(
            f"{path}: not a readable CSV file ({str(error).splitlines()[0]})."
        ) from None
    if frame.shape[0] == 0:
        raise UsageError(f"{path}: the file has a header but no rows.")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns

    if time_column is not None and time_column not in columns:
        raise UsageError(
            f"{path}: --time-column {time_column!r} is not a column; the columns are {columns}."
        )
    if time_column is None:
        time_column = next((c for c in columns if c.strip().lower() in _TIME_NAMES), None)

    if value_columns:
        unknown = [c for c in value_columns if c not in columns]
        if unknown:
            raise UsageError(
                f"{path}: --value-column {', '.join(map(repr, unknown))} not found; the columns "
                f"are {columns}."
            )
        if time_column in value_columns:
            raise UsageError(f"{path}: column {time_column!r} is both the time and a value column.")
        chosen = list(value_columns)
        for c in chosen:
            numeric = pd.to_numeric(frame[c], errors="coerce")
            text = frame[c].notna() & numeric.isna()
            if text.any():
                rows = np.flatnonzero(text.to_numpy())
                raise UsageError(
                    f"{path}: column {c!r} is not numeric (e.g. {frame[c].iloc[rows[0]]!r} at "
                    f"line {rows[0] + 2})."
                )
            frame[c] = numeric
    else:
        chosen = [
            c for c in columns if c != time_column and pd.api.types.is_numeric_dtype(frame[c])
        ]
        if not chosen:
            raise UsageError(
                f"{path}: no numeric column to analyse (columns: {columns}); name one with "
                "--value-column."
            )

    times = None
    if time_column is not None:
        parsed = pd.to_datetime(frame[time_column], errors="coerce", format="mixed")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        if bad.size:
            raise UsageError(
                f"{path}: column {time_column!r} has unparsable timestamps at lines "
                f"{_rows(bad, 2)} (e.g. {frame[time_column].iloc[bad[0]]!r})."
            )
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert(None)
        if sort:
            order = np.argsort(parsed.to_numpy(), kind="stable")
            frame, parsed = frame.iloc[order], parsed.iloc[order]
            keep = ~parsed.duplicated(keep="first").to_numpy()
            frame, parsed = frame[keep], parsed[keep]
        stamps = parsed.to_numpy()
        duplicate = np.flatnonzero(stamps[1:] == stamps[:-1])
        if duplicate.size and not keep_order:
            raise UsageError(
                f"{path}: duplicate timestamps at lines {_rows(duplicate, 3)} (column "
                f"{time_column!r}); pass --sort to keep the first of each, or --keep-order."
            )
        backwards = np.flatnonzero(stamps[1:] < stamps[:-1])
        if backwards.size and not keep_order:
            raise UsageError(
                f"{path}: timestamps are not sorted (line {backwards[0] + 3} is earlier than line "
                f"{backwards[0] + 2}); pass --sort to sort them, or --keep-order to keep file order."
            )
        times = pd.DatetimeIndex(stamps)

    values = frame[chosen].to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        if not fill_missing:
            rows = np.flatnonzero(~finite.all(axis=1))
            col = chosen[int(np.flatnonzero(~finite[rows[0]])[0])]
            raise UsageError(
                f"{path}: missing, NaN or inf values at lines {_rows(rows, 2)} (column {col!r}); "
                "pass --fill-missing to carry the last value forward."
            )
        filled = pd.DataFrame(np.where(finite, values, np.nan)).ffill().bfill()
        if filled.isna().any().any():
            empty = [chosen[i] for i in np.flatnonzero(filled.isna().all().to_numpy())]
            raise UsageError(f"{path}: column(s) {empty} have no valid values.")
        values = filled.to_numpy(dtype=np.float64)
    constant = [c for c, v in zip(chosen, values.T, strict=True) if np.ptp(v) == 0]
    if constant:
        raise UsageError(
            f"{path}: column(s) {constant} are constant ({values[0, chosen.index(constant[0])]:g} "
            "throughout); there is nothing to learn."
        )
    return LoadedSeries(path, times, values, chosen, time_column)


def load_labels(
    path: str | Path, times: pd.DatetimeIndex | None, series_name: str
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Read known anomaly windows for a series and check them against its timestamps.

    The file is NAB's ``combined_windows.json`` layout ``{"dir/file.csv": [[start, end], ...]}``
    (the entry whose key ends with the series' file name is used; a single entry is used
    whatever its key), or a plain list ``[[start, end], ...]``.

    Args:
        path: The JSON file.
        times: The series' timestamps (labels need them).
        series_name: The CSV's file name, to find its entry.

    Returns:
        The windows as ``(start, end)`` timestamps, sorted.

    Raises:
        UsageError: Unreadable JSON, no entry for the series, bad timestamps, windows outside the
            series.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--labels {path}: no such file.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"--labels {path}: not valid JSON ({error}).") from None
    if times is None:
        raise UsageError(
            f"--labels {path}: label windows are timestamps, but the series has no time column "
            "(name it with --time-column)."
        )
    if isinstance(data, dict):
        keys = [k for k in data if Path(k).name == Path(series_name).name]
        if not keys and len(data) == 1:
            keys = list(data)
        if not keys:
            raise UsageError(
                f"--labels {path}: no entry for {Path(series_name).name!r} (entries: "
                f"{_names(list(data))})."
            )
        windows = data[keys[0]]
    else:
        windows = data
    if not isinstance(windows, list):
        raise UsageError(f"--labels {path}: expected a list of [start, end] windows.")
    out = []
    first, last = times[0], times[-1]
    for i, window in enumerate(windows):
        if not (isinstance(window, list | tuple) and len(window) == 2):
            raise UsageError(f"--labels {path}: window {i} is {window!r}, not [start, end].")
        try:
            start, end = (pd.Timestamp(w) for w in window)
        except (TypeError, ValueError):
            raise UsageError(
                f"--labels {path}: window {i} has unparsable times {window!r}."
            ) from None
        if start.tzinfo is not None:
            start, end = start.tz_convert(None), end.tz_convert(None)
        if end < start:
            raise UsageError(
                f"--labels {path}: window {i} ends ({end}) before it starts ({start})."
            )
        if end < first or start > last:
            raise UsageError(
                f"--labels {path}: window {i} ({start} to {end}) lies outside the series "
                f"({first} to {last}); do the labels belong to this file?"
            )
        out.append((start, end))
    return sorted(out)


def _names(keys: list[str]) -> str:
    return ", ".join(repr(k) for k in keys[:3]) + (
        f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    )
