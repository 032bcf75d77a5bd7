"""Reading series and label windows, and checking them, with errors that name the problem.

Python callers get :class:`ValueError`; the CSV and label readers (used by ``h0 detect``) raise
:class:`h0._errors.UsageError`, a ``ValueError`` the CLI prints as one line. A message lists at
most five columns, rows or keys (then "and N more"), so a huge or broken file cannot make a huge
message.

:func:`load_csv` guesses what a file does not say and reports each guess in
:attr:`LoadedSeries.notes`: the delimiter and decimal mark, a missing header, Unix epoch times
and their unit, mixed time-zone offsets (converted to UTC). Label windows come back as row ranges
(:func:`load_labels`) and ``--train-until`` as a number of rows (:func:`train_rows`), so nothing
downstream needs timestamps.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import sys
import warnings
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from h0._errors import UsageError

BUNDLED_NAME = "realKnownCause/machine_temperature_system_failure.csv"
MAX_ABS_VALUE = 1e150
"""Largest magnitude a value may have: its square (1e300) and sums of many squares stay finite in
float64, so running means and variances cannot overflow."""
TIME_UNITS = ("s", "ms", "us", "ns")
"""Units of numeric (Unix epoch) time columns."""
DELIMITERS = (",", ";", "\t", "|")
"""Field separators :func:`load_csv` tells apart."""

_TIME_NAMES = ("timestamp", "time", "date", "datetime")
_SAMPLE_LINES = 50  # lines the delimiter, decimal mark and header are guessed from
_SHOWN = 5  # items a message lists before "and N more"
_EPOCH_BANDS = {"s": (1e8, 1e11), "ms": (1e11, 1e14), "us": (1e14, 1e17), "ns": (1e17, 1e20)}
_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_COMMA_NUMBER = re.compile(r"[+-]?\d+,\d+(?:[eE][+-]?\d+)?")
_DOT_NUMBER = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?")
_OFFSET = re.compile(r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(Z|[+-]\d\d(?::?\d\d)?)$")
_DATE_LIKE = re.compile(r"\d[-/.:]\d")
_INTEGER = re.compile(r"[+-]?\d+")


def bundled_paths() -> tuple[Path, Path]:
    """Paths of the bundled NAB series and its label windows."""
    data = resources.files("h0") / "data"
    csv_path = Path(str(data / "machine_temperature_system_failure.csv"))
    labels = Path(str(data / "machine_temperature_system_failure.labels.json"))
    return csv_path, labels


def as_values(X: Any, name: str = "X") -> np.ndarray:
    """Turn a numpy array or a pandas Series/DataFrame into float64 values ``[T, C]``.

    Args:
        X: ``[T]`` or ``[T, C]`` numbers: an array, a list, a Series or a DataFrame (numeric
            columns only).
        name: The argument's name, for error messages.

    Returns:
        A float64 array ``[T, C]``.

    Raises:
        ValueError: For other shapes, non-numeric data, NaN or inf, or a value beyond
            ``MAX_ABS_VALUE`` (1e150), whose square would overflow.

    Example:
        >>> as_values(pd.Series([1, 2, 3])).shape
        (3, 1)
        >>> as_values([1.0, -2e200])
        Traceback (most recent call last):
        ...
        ValueError: X has a value too large to analyse at row 1, channel 0 (-2e+200); values must stay within +-1e+150 (their squares overflow float64): rescale them.
    """
    if isinstance(X, pd.DataFrame):
        bad = [str(c) for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if bad:
            raise ValueError(
                f"{name} has non-numeric columns {_names(bad)}; pass only the value columns."
            )
        values = X.to_numpy(dtype=np.float64)
    elif isinstance(X, pd.Series):
        if not pd.api.types.is_numeric_dtype(X):
            raise ValueError(f"{name} is a Series of dtype {X.dtype}; expected numbers.")
        values = X.to_numpy(dtype=np.float64)
    else:
        try:
            values = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must hold numbers: {_first_line(str(error))}") from None
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
    big = np.argwhere(np.abs(values) > MAX_ABS_VALUE)
    if big.size:
        row, channel = (int(i) for i in big[0])
        raise ValueError(
            f"{name} has a value too large to analyse at row {row}, channel {channel} "
            f"({values[row, channel]:g}); values must stay within +-{MAX_ABS_VALUE:g} (their "
            "squares overflow float64): rescale them."
        )
    return values


def _rows(rows: Sequence[int] | np.ndarray, offset: int = 0) -> str:
    """``3, 5, 8, 9, 12 and 40 more``: at most five row numbers, each plus ``offset``."""
    shown = ", ".join(str(int(r) + offset) for r in rows[:_SHOWN])
    return shown + (f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else "")


def _names(keys: Sequence[Any], shown: int = _SHOWN) -> str:
    """``'a', 'b', 'c' and 7 more``: at most ``shown`` items, each cut to 40 characters."""
    listed = ", ".join(_short(k) for k in list(keys[:shown]))
    return listed + (f" and {len(keys) - shown} more" if len(keys) > shown else "")


def _short(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to about ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[:limit] + "..."


@dataclasses.dataclass(frozen=True)
class LoadedSeries:
    """A series read from a CSV.

    Attributes:
        path: The file (``Path("-")`` for standard input).
        times: Timestamps, naive UTC where the file gave offsets (``None`` when the file has no
            time column).
        values: Float values ``[T, C]``.
        columns: The value columns' names.
        time_column: The time column's name, or ``None``.
        notes: What the reader guessed or changed (delimiter, decimal mark, missing header,
            epoch unit, time zones), one sentence each, for the user to see.
    """

    path: Path
    times: pd.DatetimeIndex | None
    values: np.ndarray
    columns: list[str]
    time_column: str | None
    notes: list[str] = dataclasses.field(default_factory=list)


def load_csv(
    path: str | Path,
    *,
    value_columns: Sequence[str] | None = None,
    time_column: str | None = None,
    fill_missing: bool = False,
    sort: bool = False,
    keep_order: bool = False,
    delimiter: str | None = None,
    decimal: str | None = None,
    header: bool | None = None,
    time_unit: str | None = None,
) -> LoadedSeries:
    r"""Read a series from a CSV file and check it.

    The time column is ``time_column``, else a column called timestamp/time/date/datetime if there
    is one (in a file without a header: the first column whose first cell is a timestamp); the
    value columns are ``value_columns``, else every other numeric column. Row numbers in messages
    are the file's line numbers (the header is line 1).

    What the file does not say is guessed from its first 50 lines, and each guess is reported in
    :attr:`LoadedSeries.notes`: the delimiter (``,`` ``;`` tab ``|``), the decimal mark (``,``
    when numbers like ``0,5`` appear in a file not separated by commas), a missing header (when
    every cell of line 1 is a number or a timestamp; columns are then ``column_1``,
    ``column_2``...), the unit of numeric Unix epoch times (from their magnitude), and mixed
    time-zone offsets (all times are converted to UTC).

    Args:
        path: The CSV file, or ``"-"`` for standard input.
        value_columns: Columns to analyse. An entry that is not a column but holds commas is
            split at them (``["a,b"]`` is the column ``a,b`` if there is one, else ``a`` and
            ``b``).
        time_column: The timestamp column.
        fill_missing: Fill empty, NaN or inf values by carrying the last value forward (and the first
            valid value backward), instead of failing.
        sort: Sort rows by time (and drop exact duplicate timestamps, keeping the first), instead
            of failing on unsorted or duplicate timestamps.
        keep_order: Keep the rows in file order even where timestamps repeat or go backwards
            (NAB scores its files this way; the bundled series repeats one hour).
        delimiter: The field separator; default: guessed.
        decimal: The decimal mark, ``"."`` or ``","``; default: guessed.
        header: Whether line 1 is a header; default: guessed.
        time_unit: Unit of a numeric time column, one of ``TIME_UNITS`` (``"s"``, ``"ms"``,
            ``"us"``, ``"ns"`` since 1970-01-01 UTC); default: guessed from the magnitude.

    Returns:
        The :class:`LoadedSeries`.

    Raises:
        UsageError: Missing/empty file, unknown or non-numeric columns, rows with more fields than
            the header, bad timestamps, missing values, values beyond ``MAX_ABS_VALUE``, a
            constant column.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "eu.csv"
        ...     _ = path.write_text("zeit;wert\n1700000000;0,5\n1700000060;1,25\n")
        ...     series = load_csv(path, time_column="zeit")
        >>> series.values.ravel().tolist(), str(series.times[1])
        ([0.5, 1.25], '2023-11-14 22:14:20')
        >>> for note in series.notes:
        ...     print(note)
        read as ';'-separated with decimal commas (0,5 is 0.5); pass --delimiter/--decimal to override.
        column 'zeit' holds Unix epoch seconds; read as UTC times (pass --time-unit to override).
    """
    text, name = _read_text(path)
    notes: list[str] = []
    lines = _head_lines(text, _SAMPLE_LINES)
    if not lines:
        raise UsageError(f"{name}: the file is empty.")
    if delimiter is not None and (len(delimiter) != 1 or delimiter in "\r\n\"'"):
        raise UsageError(f"--delimiter {delimiter!r}: give one character, such as ',' or ';'.")
    if decimal is not None and decimal not in (".", ","):
        raise UsageError(f"--decimal {decimal!r}: give '.' or ','.")
    sep = delimiter or _sniff_delimiter(lines)
    cells = [_split(line, sep) for line in lines]
    dec = decimal or _sniff_decimal(cells[1:] or cells, sep)
    guessed_sep = delimiter is None and sep != ","
    guessed_dec = decimal is None and dec == ","
    if guessed_sep or guessed_dec:
        what = f"as {_delimiter_name(sep)}-separated" if guessed_sep else ""
        what += " with decimal commas (0,5 is 0.5)" if guessed_dec else ""
        flags = "/".join(
            f for f, g in (("--delimiter", guessed_sep), ("--decimal", guessed_dec)) if g
        )
        notes.append(f"read {what.strip()}; pass {flags} to override.")
    has_header = header if header is not None else not _looks_like_data(cells[0], dec)
    if has_header:
        _check_field_counts(name, lines, cells, sep, delimiter is not None)
    frame = _parse(text, name, sep, dec, has_header, lines)
    first_line = 2 if has_header else 1
    if not has_header:
        frame.columns = [f"column_{i + 1}" for i in range(frame.shape[1])]
        if header is None:
            notes.append(
                f"line 1 looks like data, not a header (every cell is a number or a time), so the "
                f"file was read without one: columns column_1 to column_{frame.shape[1]}; pass "
                "--header if line 1 is a header."
            )
    if frame.shape[0] == 0:
        raise UsageError(f"{name}: the file has a header but no rows.")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    lines_of = frame.index.to_numpy() + first_line  # file line of each row, kept through sorting

    if time_column is not None and time_column not in columns:
        raise UsageError(
            f"{name}: --time-column {_short(time_column)} is not a column; the columns are "
            f"{_names(columns)}."
        )
    if time_column is None:
        if has_header:
            time_column = next((c for c in columns if c.strip().lower() in _TIME_NAMES), None)
        else:
            kinds = [_cell_kind(c, dec) for c in cells[0]]
            time_column = next(
                (c for c, k in zip(columns, kinds, strict=False) if k == "time"), None
            )
            if time_column is not None:
                notes.append(f"column {time_column!r} holds the times.")
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise UsageError(f"--time-unit {_short(time_unit)}: give one of {', '.join(TIME_UNITS)}.")
    if time_unit is not None and time_column is None:
        raise UsageError(
            f"{name}: --time-unit {time_unit} needs a time column; name it with --time-column."
        )

    chosen = _value_columns(name, frame, columns, value_columns, time_column, lines, sep, lines_of)

    times = None
    if time_column is not None:
        parsed = _parse_times(frame[time_column], name, time_column, time_unit, lines_of, notes)
        if sort:
            order = np.argsort(parsed.to_numpy(), kind="stable")
            frame, parsed, lines_of = frame.iloc[order], parsed.iloc[order], lines_of[order]
            keep = ~parsed.duplicated(keep="first").to_numpy()
            frame, parsed, lines_of = frame[keep], parsed[keep], lines_of[keep]
        stamps = parsed.to_numpy()
        duplicate = np.flatnonzero(stamps[1:] == stamps[:-1])
        if duplicate.size and not keep_order:
            raise UsageError(
                f"{name}: duplicate timestamps at lines {_rows(lines_of[duplicate + 1])} (column "
                f"{time_column!r}); pass --sort to keep the first of each, or --keep-order."
            )
        backwards = np.flatnonzero(stamps[1:] < stamps[:-1])
        if backwards.size and not keep_order:
            b = backwards[0]
            raise UsageError(
                f"{name}: timestamps are not sorted (line {lines_of[b + 1]} is earlier than line "
                f"{lines_of[b]}); pass --sort to sort them, or --keep-order to keep file order."
            )
        times = pd.DatetimeIndex(stamps)

    values = frame[chosen].to_numpy(dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        if not fill_missing:
            rows = np.flatnonzero(~finite.all(axis=1))
            col = chosen[int(np.flatnonzero(~finite[rows[0]])[0])]
            raise UsageError(
                f"{name}: missing, NaN or inf values at lines {_rows(lines_of[rows])} (column "
                f"{col!r}); pass --fill-missing to carry the last value forward."
            )
        filled = pd.DataFrame(np.where(finite, values, np.nan)).ffill().bfill()
        if filled.isna().any().any():
            empty = [chosen[i] for i in np.flatnonzero(filled.isna().all().to_numpy())]
            raise UsageError(f"{name}: column(s) {_names(empty)} have no valid values.")
        values = filled.to_numpy(dtype=np.float64)
    big = np.argwhere(np.abs(values) > MAX_ABS_VALUE)
    if big.size:
        row, col = (int(i) for i in big[0])
        raise UsageError(
            f"{name}: value {values[row, col]:g} at line {lines_of[row]} (column "
            f"{chosen[col]!r}) is too large to analyse; values must stay within "
            f"+-{MAX_ABS_VALUE:g} (their squares overflow float64): rescale the column."
        )
    constant = [c for c, v in zip(chosen, values.T, strict=True) if np.ptp(v) == 0]
    if constant:
        raise UsageError(
            f"{name}: column(s) {_names(constant)} are constant "
            f"({values[0, chosen.index(constant[0])]:g} throughout); there is nothing to learn."
        )
    return LoadedSeries(Path(path), times, values, chosen, time_column, notes)


def _read_text(path: str | Path) -> tuple[str, str]:
    """The file's text and the name messages use for it (``<stdin>`` for ``-``)."""
    if str(path) == "-":
        name = "<stdin>"
        stream = sys.stdin
        if stream is None:
            raise UsageError("-: there is no standard input to read the CSV from.")
        data = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
    else:
        name = str(Path(path))
        if not Path(path).is_file():
            raise UsageError(f"{name}: no such file.")
        data = Path(path).read_bytes()
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise UsageError(
                f"{name}: not a readable CSV file (not UTF-8 text: byte {data[error.start]:#04x} "
                f"at offset {error.start})."
            ) from None
    return data, name


def _head_lines(text: str, n: int) -> list[str]:
    """The first ``n`` non-blank lines, without copying the rest of the text."""
    lines: list[str] = []
    start = 0
    while len(lines) < n and start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end].rstrip("\r")
        if line.strip():
            lines.append(line)
        start = end + 1
    return lines


def _split(line: str, sep: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=sep), [])
    except csv.Error:  # a field beyond csv's size limit: count without quoting rules
        return line.split(sep)


def _delimiter_name(sep: str) -> str:
    return "tab" if sep == "\t" else repr(sep)


def _consistent(lines: Sequence[str], sep: str) -> bool:
    counts = {len(_split(line, sep)) for line in lines}
    return len(counts) == 1 and counts.pop() >= 2


def _sniff_delimiter(lines: Sequence[str]) -> str:
    """The separator that splits every sampled line into the same number (>= 2) of fields.

    Several may (``1;0,5`` splits both at ``;`` and at ``,``): any other one beats ``,``, since
    files not separated by commas are written that way to keep commas for decimals.
    """
    found = [sep for sep in DELIMITERS if _consistent(lines, sep)]
    for sep in (";", "\t", "|", ","):
        if sep in found:
            return sep
    return ","


def _likely_delimiter(lines: Sequence[str], used: str) -> str | None:
    return next((s for s in (";", "\t", "|", ",") if s != used and _consistent(lines, s)), None)


def _sniff_decimal(rows: Sequence[Sequence[str]], sep: str) -> str:
    """``","`` when cells read like ``0,5`` and none like ``0.5``.

    In a ``,``-separated file such cells are quoted (``"0,5"``); unquoted, they split in two.
    """
    comma = dot = False
    for row in rows:
        for cell in row:
            cell = cell.strip()
            comma = comma or bool(_COMMA_NUMBER.fullmatch(cell))
            dot = dot or bool(_DOT_NUMBER.fullmatch(cell))
    return "," if comma and not dot else "."


def _cell_kind(cell: str, decimal: str) -> str | None:
    """``"number"``, ``"time"`` or ``None`` (text) for one cell of line 1."""
    cell = cell.strip()
    if not any(ch.isdigit() for ch in cell):
        return None
    try:
        float(cell.replace(decimal, ".") if decimal != "." else cell)
        return "number"
    except ValueError:
        pass
    if not _DATE_LIKE.search(cell):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return None if pd.isna(pd.Timestamp(cell)) else "time"
    except (ValueError, TypeError, OverflowError):
        return None


def _looks_like_data(cells: Sequence[str], decimal: str) -> bool:
    """Whether line 1 is data: every cell a number or a time, and at least one number."""
    kinds = []
    for cell in cells:
        kind = _cell_kind(cell, decimal)
        if kind is None:
            return False
        kinds.append(kind)
    return "number" in kinds


def _check_field_counts(
    name: str, lines: Sequence[str], cells: Sequence[Sequence[str]], sep: str, given: bool
) -> None:
    """Fail when a sampled row has more fields than the header.

    pandas would otherwise take the extra leading fields as the index and shift every column
    (``2024-01-01,0,5`` under ``timestamp,value`` reads value 5).
    """
    width = len(cells[0])
    for i, row in enumerate(cells[1:], start=2):
        if len(row) > width:
            other = _likely_delimiter(lines, sep)
            if other is not None:
                hint = f"; the file looks {_delimiter_name(other)}-separated: pass --delimiter {other!r}"
            elif sep == ",":
                hint = (
                    "; unquoted decimal commas? Quote such numbers or separate the fields with ';'"
                )
            else:
                hint = ""
            how = "the given" if given else "the guessed"
            raise UsageError(
                f"{name}: line {i} has {len(row)} fields but the header has {width} (split at "
                f"{how} delimiter {_delimiter_name(sep)}){hint}."
            )


def _parse(
    text: str, name: str, sep: str, dec: str, has_header: bool, lines: Sequence[str]
) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.BytesIO(text.encode()),  # 1 byte a character, not StringIO's 4
                sep=sep,
                decimal=dec,
                header=0 if has_header else None,
                index_col=False,
            )
    except pd.errors.EmptyDataError:
        raise UsageError(f"{name}: the file is empty.") from None
    except pd.errors.ParserWarning:
        raise UsageError(
            f"{name}: the first rows have more fields than the header (split at "
            f"{_delimiter_name(sep)}); check the delimiter and the decimal mark."
        ) from None
    except (pd.errors.ParserError, ValueError) as error:
        other = _likely_delimiter(lines, sep)
        hint = f"; it looks {_delimiter_name(other)}-separated" if other else ""
        raise UsageError(
            f"{name}: not a readable CSV file ({_first_line(str(error))}){hint}."
        ) from None


def _resolve_columns(name: str, wanted: Sequence[str], columns: list[str]) -> list[str]:
    known = set(columns)
    chosen, unknown = [], []
    for item in wanted:
        item = str(item)
        if item in known or item.strip() in known:
            parts = [item if item in known else item.strip()]
        elif "," in item:
            parts = [p.strip() for p in item.split(",") if p.strip()]
        else:
            parts = [item.strip()]
        for part in parts:
            (chosen if part in known else unknown).append(part)
    if unknown:
        raise UsageError(
            f"{name}: --value-column {_names(unknown)} not found; the columns are "
            f"{_names(columns)}."
        )
    return list(dict.fromkeys(chosen))


def _separator_hint(frame: pd.DataFrame, columns: list[str], lines: Sequence[str], sep: str) -> str:
    """A hint naming the likely delimiter when one column holds what looks like several."""
    other = _likely_delimiter(lines, sep)
    if other is None:
        for s in (";", "\t", "|", ","):
            if s != sep and any(s in c for c in columns[:1000]):
                other = s
                break
    if other is None:
        return ""
    return (
        f"; its cells hold {_delimiter_name(other)}: the file looks "
        f"{_delimiter_name(other)}-separated (pass --delimiter {other!r})"
    )


def _value_columns(
    name: str,
    frame: pd.DataFrame,
    columns: list[str],
    value_columns: Sequence[str] | None,
    time_column: str | None,
    lines: Sequence[str],
    sep: str,
    lines_of: np.ndarray,
) -> list[str]:
    if isinstance(value_columns, str):
        value_columns = [value_columns]
    if value_columns:
        chosen = _resolve_columns(name, value_columns, columns)
        if time_column in chosen:
            raise UsageError(f"{name}: column {time_column!r} is both the time and a value column.")
        for c in chosen:
            numeric = pd.to_numeric(frame[c], errors="coerce")
            text = frame[c].notna() & numeric.isna()
            if text.any():
                row = int(np.flatnonzero(text.to_numpy())[0])
                raise UsageError(
                    f"{name}: column {_short(c)} is not numeric (e.g. "
                    f"{_short(frame[c].iloc[row])} at line {lines_of[row]})"
                    f"{_separator_hint(frame, [c], lines, sep)}."
                )
            frame[c] = numeric
        return chosen
    chosen = [
        c
        for c, dtype in zip(columns, frame.dtypes, strict=True)
        if c != time_column and pd.api.types.is_numeric_dtype(dtype)
    ]
    if not chosen:
        raise UsageError(
            f"{name}: no numeric column to analyse (columns: {_names(columns)}); name one with "
            f"--value-column{_separator_hint(frame, columns, lines, sep)}."
        )
    return chosen


def _parse_times(
    column: pd.Series,
    name: str,
    label: str,
    time_unit: str | None,
    lines_of: np.ndarray,
    notes: list[str],
) -> pd.Series:
    """Naive (UTC where offsets were given) timestamps of the time column."""
    is_bool = pd.api.types.is_bool_dtype(column)
    if time_unit is not None or (pd.api.types.is_numeric_dtype(column) and not is_bool):
        numbers = pd.to_numeric(column, errors="coerce")
        bad = np.flatnonzero(numbers.isna().to_numpy())
        if bad.size:
            raise UsageError(
                f"{name}: column {label!r} has missing or non-numeric epoch times at lines "
                f"{_rows(lines_of[bad])} (e.g. {_short(column.iloc[bad[0]])})."
            )
        if time_unit is None:
            dates = _yyyymmdd(numbers)
            if dates is not None:
                notes.append(f"column {label!r} holds dates written as YYYYMMDD.")
                return dates
        unit = time_unit or _epoch_unit(numbers.to_numpy(np.float64), name, label)
        try:
            parsed = pd.to_datetime(numbers, unit=unit)
        except (ValueError, OverflowError) as error:
            raise UsageError(
                f"{name}: column {label!r} as Unix epoch {_UNIT_WORDS[unit]}: "
                f"{_first_line(str(error))}."
            ) from None
        if time_unit is None:
            notes.append(
                f"column {label!r} holds Unix epoch {_UNIT_WORDS[unit]}; read as UTC times (pass "
                "--time-unit to override)."
            )
        return parsed
    try:
        parsed = pd.to_datetime(column, errors="coerce", format="mixed")
    except ValueError as error:
        if "mixed timezones" not in str(error).lower():
            raise UsageError(f"{name}: column {label!r}: {_first_line(str(error))}") from None
        parsed = pd.to_datetime(column, errors="coerce", format="mixed", utc=True)
        text = column.astype(str).str.strip()
        offsets = text.str.extract(_OFFSET.pattern, expand=False)
        seen = list(dict.fromkeys(offsets.dropna()))
        naive = bool(offsets.isna().any())
        notes.append(
            f"column {label!r} mixes time-zone offsets ({', '.join(seen[:_SHOWN])}"
            f"{f' and {len(seen) - _SHOWN} more' if len(seen) > _SHOWN else ''}); all times "
            "were converted to UTC"
            + ("; times without an offset were taken as UTC." if naive else ".")
        )
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if bad.size:
        raise UsageError(
            f"{name}: column {label!r} has unparsable timestamps at lines "
            f"{_rows(lines_of[bad])} (e.g. {_short(column.iloc[bad[0]])})."
        )
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return parsed


def _yyyymmdd(numbers: pd.Series) -> pd.Series | None:
    """The dates, when every number is a valid date written as YYYYMMDD (e.g. 20240131)."""
    array = numbers.to_numpy(np.float64)
    if not ((array >= 1e7) & (array < 1e8) & (array == np.round(array))).all():
        return None
    dates = pd.to_datetime(numbers.astype(np.int64).astype(str), format="%Y%m%d", errors="coerce")
    return None if dates.isna().any() else dates


def _epoch_unit(numbers: np.ndarray, name: str, label: str) -> str:
    """The epoch unit whose usual magnitudes (1973 to 5138) hold every number of the column."""
    magnitude = np.abs(numbers)
    low, high = float(magnitude.min()), float(magnitude.max())
    for unit, (lo, hi) in _EPOCH_BANDS.items():
        if lo <= low and high < hi:
            return unit
    if high < _EPOCH_BANDS["s"][0]:
        why = "too small to be Unix epoch times (epoch seconds pass 1e8 in 1973)"
    else:
        why = "of mixed magnitudes: no one epoch unit fits them all"
    raise UsageError(
        f"{name}: column {label!r} holds numbers from {low:g} to {high:g}, {why}; pass "
        f"--time-unit ({', '.join(TIME_UNITS)}) to read them as epoch times."
    )


# --------------------------------------------------------------------------------------------
# Label windows and the training split, as rows
# --------------------------------------------------------------------------------------------


def load_labels(
    path: str | Path,
    times: pd.DatetimeIndex | None,
    series_name: str,
    *,
    n_rows: int | None = None,
) -> list[tuple[int, int]]:
    """Read known anomaly windows for a series and turn them into rows of it.

    The file is NAB's ``combined_windows.json`` layout ``{"dir/file.csv": [[start, end], ...]}``
    (the entry whose key ends with the series' file name is used; a single entry is used
    whatever its key), or a plain list ``[[start, end], ...]``. A bound is a timestamp (text;
    one with a UTC offset is converted to UTC, like the series' times) or a row number (a JSON
    integer, the first row is 0), for series without a time column; both bounds of a window are
    of the same kind. A window covers the rows whose times lie within ``[start, end]``.

    Args:
        path: The JSON file.
        times: The series' timestamps, or ``None`` when it has none (then the windows must be
            row numbers, and ``n_rows`` is needed).
        series_name: The CSV's file name, to find its entry.
        n_rows: The series' length when ``times`` is ``None``.

    Returns:
        The windows as inclusive row ranges ``(first, last)``, sorted.

    Raises:
        UsageError: Unreadable JSON, no entry for the series, a malformed window (naming its
            index): not a pair, a null or ``NaT`` bound, an aware bound with a naive one,
            a timestamp for a series without times, an end before its start, a window outside
            the series or covering none of its rows.

    Example:
        >>> import tempfile
        >>> times = pd.date_range("2024-01-01", periods=10, freq="h")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "labels.json"
        ...     _ = path.write_text('[["2024-01-01 02:30", "2024-01-01 05:00"], [8, 9]]')
        ...     load_labels(path, times, "s.csv")
        [(3, 5), (8, 9)]
    """
    path = Path(path)
    where = f"--labels {path}"
    if not path.is_file():
        raise UsageError(f"{where}: no such file.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UsageError(f"{where}: not valid JSON ({_first_line(str(error))}).") from None
    if times is not None:
        times = pd.DatetimeIndex(times)
        if times.tz is not None:
            times = times.tz_convert(None)
        n_rows = len(times)
    elif n_rows is None:
        raise ValueError("load_labels needs the series' times or its length n_rows.")
    if isinstance(data, dict):
        keys = [k for k in data if Path(k).name == Path(series_name).name]
        if not keys and len(data) == 1:
            keys = list(data)
        if not keys:
            raise UsageError(
                f"{where}: no entry for {Path(series_name).name!r} (entries: "
                f"{_names(list(data), 3)})."
            )
        windows = data[keys[0]]
    else:
        windows = data
    if not isinstance(windows, list):
        raise UsageError(
            f"{where}: expected a list of [start, end] windows, got {_short(windows)}."
        )
    return sorted(_window_rows(w, i, times, n_rows, where) for i, w in enumerate(windows))


def _window_rows(
    window: Any, i: int, times: pd.DatetimeIndex | None, n_rows: int, where: str
) -> tuple[int, int]:
    shown = _short(window, 80)
    if not (isinstance(window, list) and len(window) == 2):
        raise UsageError(f"{where}: window {i} is {shown}, not [start, end].")
    if any(w is None for w in window):
        raise UsageError(f"{where}: window {i} {shown} has an empty (null) bound; give both.")
    is_row = [isinstance(w, int) and not isinstance(w, bool) for w in window]
    if all(is_row):
        first, last = window
        if last < first:
            raise UsageError(
                f"{where}: window {i} ends (row {last}) before it starts (row {first})."
            )
        if first < 0 or last >= n_rows:
            raise UsageError(
                f"{where}: window {i} (rows {first} to {last}) lies outside the series (rows 0 "
                f"to {n_rows - 1}); do the labels belong to this file?"
            )
        return first, last
    if any(is_row) and any(isinstance(w, str) for w in window):
        raise UsageError(
            f"{where}: window {i} {shown} mixes a row number and a time; give two timestamps or "
            "two row numbers."
        )
    if not all(isinstance(w, str) for w in window):  # floats, booleans, lists...
        raise UsageError(
            f"{where}: window {i} {shown}: a bound must be a timestamp (text) or a row number "
            "(a whole number)."
        )
    bounds = []
    for w in window:
        try:
            stamp = pd.Timestamp(w)
        except (TypeError, ValueError, OverflowError):
            raise UsageError(f"{where}: window {i} has an unparsable time {_short(w)}.") from None
        if pd.isna(stamp):
            raise UsageError(f"{where}: window {i} has {_short(w)} as a bound, not a time.")
        bounds.append(stamp)
    aware = [b.tzinfo is not None for b in bounds]
    if aware[0] != aware[1]:
        raise UsageError(
            f"{where}: window {i} {shown} has one bound with a time-zone offset and one without; "
            "give both with an offset, or neither."
        )
    start, end = (b.tz_convert("UTC").tz_localize(None) if b.tzinfo else b for b in bounds)
    if times is None:
        raise UsageError(
            f"{where}: window {i} is given in timestamps, but the series has no time column; name "
            "it with --time-column, or give the window as row numbers [first, last]."
        )
    if end < start:
        raise UsageError(f"{where}: window {i} ends ({end}) before it starts ({start}).")
    first, last = times.min(), times.max()
    if end < first or start > last:
        raise UsageError(
            f"{where}: window {i} ({start} to {end}) lies outside the series "
            f"({first} to {last}); do the labels belong to this file?"
        )
    rows = np.flatnonzero((times >= start) & (times <= end))
    if rows.size == 0:
        raise UsageError(
            f"{where}: window {i} ({start} to {end}) covers no row of the series: no timestamp "
            "falls inside it."
        )
    return int(rows[0]), int(rows[-1])


def train_rows(value: str, times: pd.DatetimeIndex | None, n_rows: int | None = None) -> int:
    """The number of training rows that ``--train-until value`` asks for.

    With a time column, ``value`` is a timestamp and the rows up to and including it train (one
    with a UTC offset is converted to UTC, like the series' times); without one, ``value`` is a
    row number (the first row is 0) and the rows up to and including it train.

    Args:
        value: The option's text.
        times: The series' timestamps, or ``None`` when it has none.
        n_rows: The series' length when ``times`` is ``None``.

    Returns:
        The number of leading rows to train on, at least 1 and fewer than the series' length.

    Raises:
        UsageError: Not a timestamp (or row number), or nothing would be left to train on or
            to score.

    Example:
        >>> times = pd.date_range("2024-01-01", periods=10, freq="D")
        >>> train_rows("2024-01-03", times), train_rows("6", None, n_rows=10)
        (3, 7)
    """
    text = str(value).strip()
    if times is None:
        if n_rows is None:
            raise ValueError("train_rows needs the series' times or its length n_rows.")
        if not _INTEGER.fullmatch(text):
            raise UsageError(
                f"--train-until {_short(value)}: the series has no time column, so give a row "
                f"number (0 to {n_rows - 2}), or use --train-fraction."
            )
        row = int(text)
        if row < 0:
            raise UsageError(f"--train-until {row}: rows are numbered from 0.")
        if row >= n_rows - 1:
            raise UsageError(
                f"--train-until {row} is at or after the last row ({n_rows - 1}); nothing would "
                "be left to score."
            )
        return row + 1
    try:
        until = pd.Timestamp(text)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"--train-until {_short(value)} is not a timestamp.") from None
    if pd.isna(until):
        raise UsageError(f"--train-until {_short(value)} is not a timestamp.")
    if until.tzinfo is not None:
        until = until.tz_convert("UTC").tz_localize(None)
    total = len(times)
    later = np.flatnonzero(times > until)
    n = int(later[0]) if later.size else total
    if n == total:
        raise UsageError(
            f"--train-until {until} is at or after the last timestamp ({times[-1]}); nothing "
            "would be left to score."
        )
    if n == 0:
        raise UsageError(
            f"--train-until {until} is before the first timestamp ({times[0]}); nothing would be "
            "left to train on."
        )
    return n
