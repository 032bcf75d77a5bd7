"""NAB scoring: the Numenta Anomaly Benchmark's windows, weights, profiles and threshold sweep.

The rules follow NAB's paper (Lavin & Ahmad 2015) and NAB's current scorer (the "sweeper"):

* **Probationary period.** The first ``min(floor(0.15 * T), 0.15 * 5000)`` rows of a series of
  ``T`` rows (so at most 750) are not scored: detections there count for nothing, and a window
  whose rows all lie in it is neither a hit nor a miss.
* **Windows.** Each labelled window ``[start, end]`` covers the rows from the first row whose
  timestamp equals ``start`` to the first row whose timestamp equals ``end`` (the bounds must be
  timestamps of the series). Windows are sorted and must not overlap.
* **True positives.** Only the first detection in a window counts. A detection at row ``i`` of a
  window ``[l, r]`` of width ``w = r - l + 1`` sits at relative position
  ``x = -(r - i + 1) / w`` (``-1`` at the left edge, ``-1/w`` at the right edge) and earns
  ``tp_weight * sigma(x) / sigma(-1)``, where ``sigma(x) = 2 / (1 + exp(5 x)) - 1`` is NAB's
  scaled sigmoid (and ``sigma(x) = -1`` for ``x >= 3``).
* **False negatives.** A scorable window without a detection costs ``fn_weight``.
* **False positives.** A detection outside every window costs ``fp_weight`` times
  ``-sigma(x)`` with ``x = (i - r) / (w - 1)`` measured from the right edge ``r`` of the closest
  preceding window of width ``w`` (windows inside the probationary period count as preceding
  windows); with no preceding window (or a preceding window of one row) it costs the full
  ``fp_weight``. A detection just after a window therefore costs almost nothing, one a window
  width later almost the full weight.
* **Normalisation.** Raw scores are summed over the corpus and normalised as
  ``100 * (raw - null) / (perfect - null)``, where ``null = -fn_weight * (scorable windows)`` is
  the raw score of the detector that never fires and ``perfect = tp_weight * (all windows)``.
* **Thresholds.** A row is a detection when its anomaly score is ``>= threshold``. NAB picks one
  threshold per detector and profile for the whole corpus; :func:`optimize_threshold` finds the
  exact best one by sorting all scores once and sweeping them.

Example:
    >>> import numpy as np
    >>> profile = Profile("standard", tp_weight=1.0, fp_weight=0.11, fn_weight=1.0)
    >>> scores = np.zeros(20)
    >>> scores[10] = 1.0  # the left edge of the window [10, 13]
    >>> result = score_file(scores, np.array([[10, 13]]), 0.5, profile)
    >>> round(result.score, 6), result.tp, result.fp
    (1.0, 1, 0)
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from h0._errors import UsageError

__all__ = [
    "PROBATION_PERCENT",
    "FileScore",
    "NabCorpus",
    "NabFile",
    "NabResults",
    "NabTimestampWarning",
    "Profile",
    "ProfileResult",
    "load_corpus",
    "load_profiles",
    "load_results",
    "load_thresholds",
    "normalize",
    "optimize_threshold",
    "probation_length",
    "row_weights",
    "scaled_sigmoid",
    "score_corpus",
    "score_file",
    "sweep",
]

PROBATION_PERCENT = 0.15
"""Fraction of each series NAB leaves unscored at its start (capped at ``0.15 * 5000`` rows)."""

_OUTSIDE = -1  # window id of rows outside every window


# --------------------------------------------------------------------------------------------
# Pure per-series rules
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """A NAB application profile: the weights of true positives, false positives and misses.

    Attributes:
        name: Profile name, e.g. ``"standard"``.
        tp_weight: Reward for detecting a window at its left edge.
        fp_weight: Cost of a false positive far from any preceding window.
        fn_weight: Cost of a missed window.
    """

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


def probation_length(n_rows: int, probation_percent: float = PROBATION_PERCENT) -> int:
    """Number of leading rows of a series that NAB does not score.

    NAB's rule is ``min(floor(probation_percent * n_rows), probation_percent * 5000)``.

    Args:
        n_rows: Length of the series.
        probation_percent: Fraction of the series in the probationary period.

    Returns:
        The probationary length in rows.

    Example:
        >>> probation_length(4032), probation_length(22695)
        (604, 750)
    """
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    return int(min(math.floor(probation_percent * n_rows), probation_percent * 5000))


def scaled_sigmoid(x: np.ndarray | float) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 x)) - 1``, and ``-1`` for ``x >= 3``.

    Args:
        x: Relative position(s): ``-1`` is the left edge of a window, ``0`` its right edge,
            positive values lie after it.

    Returns:
        Array of weights in ``(-1, 1)``.

    Example:
        >>> np.round(scaled_sigmoid(np.array([-1.0, 0.0, 1.0, 3.0])), 5).tolist()
        [0.98661, 0.0, -0.98661, -1.0]
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        values = 2.0 * (1.0 / (1.0 + np.exp(5.0 * x))) - 1.0
    return np.where(x >= 3.0, -1.0, values)


def _check_windows(windows: np.ndarray, n_rows: int) -> np.ndarray:
    windows = np.asarray(windows, dtype=np.int64).reshape(-1, 2)
    if len(windows) == 0:
        return windows
    lo, hi = windows[:, 0], windows[:, 1]
    if np.any(lo < 0) or np.any(hi >= n_rows) or np.any(hi < lo):
        raise ValueError(
            f"windows must be row-index pairs [lo, hi] with 0 <= lo <= hi < {n_rows}, "
            f"got {windows.tolist()}"
        )
    if np.any(lo[1:] <= hi[:-1]):
        raise ValueError(f"windows must be sorted and must not overlap, got {windows.tolist()}")
    return windows


def row_weights(
    n_rows: int, windows: np.ndarray, profile: Profile
) -> tuple[np.ndarray, np.ndarray]:
    """Window id and NAB weight each row would earn if it were a detection.

    Args:
        n_rows: Length of the series.
        windows: Int array ``[K, 2]`` of inclusive row ranges ``[lo, hi]``, sorted, disjoint.
        profile: Weights to apply.

    Returns:
        ``(window_id, weight)``, two arrays of length ``n_rows``: the window a row lies in
        (``-1`` outside) and its weight (positive true-positive reward inside a window,
        negative false-positive cost outside).

    Raises:
        ValueError: If the windows are out of range, unsorted or overlapping.

    Example:
        >>> p = Profile("standard", 1.0, 0.11, 1.0)
        >>> ids, w = row_weights(6, np.array([[1, 2]]), p)
        >>> ids.tolist(), np.round(w, 4).tolist()
        ([-1, 0, 0, -1, -1, -1], [-0.11, 1.0, 0.8598, -0.1085, -0.11, -0.11])
    """
    windows = _check_windows(windows, n_rows)
    rows = np.arange(n_rows)
    window_id = np.full(n_rows, _OUTSIDE, dtype=np.int64)
    weight = np.empty(n_rows, dtype=np.float64)
    # The closest window starting at or before each row; inside it when the row is <= its end.
    k = np.searchsorted(windows[:, 0], rows, side="right") - 1 if len(windows) else rows * 0 - 1
    has_prev = k >= 0
    k_safe = np.where(has_prev, k, 0)
    if len(windows):
        lo, hi = windows[k_safe, 0], windows[k_safe, 1]
    else:
        lo = hi = np.zeros(n_rows, dtype=np.int64)
    inside = has_prev & (rows <= hi)
    window_id[inside] = k[inside]
    width = (hi - lo + 1).astype(np.float64)
    max_tp = scaled_sigmoid(-1.0)
    position_in = -(hi - rows + 1) / width
    weight[inside] = profile.tp_weight * scaled_sigmoid(position_in[inside]) / max_tp
    # Outside: distance past the right edge of the preceding window, in window widths - 1.
    outside = ~inside
    after = outside & has_prev & (width > 1)
    position_out = np.full(n_rows, 3.0)
    position_out[after] = (rows[after] - hi[after]) / (width[after] - 1.0)
    weight[outside] = profile.fp_weight * scaled_sigmoid(position_out[outside])
    return window_id, weight


@dataclass(frozen=True)
class FileScore:
    """NAB's score of one series at one threshold.

    Attributes:
        score: Raw (unnormalised) NAB score of the series.
        tp: Detected rows inside windows (after the probationary period).
        tn: Undetected rows outside windows.
        fp: Detected rows outside windows.
        fn: Undetected rows inside windows.
        total: All rows of the series, probationary ones included.
        windows: Scorable windows (those with a row after the probationary period).
        detected_windows: Scorable windows with at least one detection.
    """

    score: float
    tp: int
    tn: int
    fp: int
    fn: int
    total: int
    windows: int
    detected_windows: int


def score_file(
    anomaly_scores: np.ndarray,
    windows: np.ndarray,
    threshold: float,
    profile: Profile,
    probation: int | None = None,
) -> FileScore:
    """Score one series the way NAB does.

    Args:
        anomaly_scores: Float array ``[T]`` of the detector's anomaly scores.
        windows: Int array ``[K, 2]`` of inclusive row ranges of the labelled windows.
        threshold: Rows with ``anomaly_scores >= threshold`` are detections.
        profile: Weights to apply.
        probation: Leading rows not scored; default :func:`probation_length` of ``T``.

    Returns:
        The series' :class:`FileScore`.

    Raises:
        ValueError: If the scores are not one-dimensional or contain NaN, or the windows are
            invalid.

    Example:
        >>> p = Profile("standard", 1.0, 0.11, 1.0)
        >>> s = score_file(np.zeros(20), np.array([[10, 13]]), 0.5, p)  # a miss
        >>> s.score, s.fn, s.tn
        (-1.0, 4, 13)
    """
    scores = np.asarray(anomaly_scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"anomaly_scores must be one-dimensional, got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError(f"anomaly_scores contain NaN at row {int(np.isnan(scores).argmax())}")
    n_rows = len(scores)
    windows = _check_windows(windows, n_rows)
    probation = probation_length(n_rows) if probation is None else int(probation)
    window_id, weight = row_weights(n_rows, windows, profile)
    scorable = np.arange(n_rows) >= probation
    detected = scorable & (scores >= threshold)
    inside = window_id != _OUTSIDE
    total = float(weight[detected & ~inside].sum())
    n_windows = n_detected = 0
    for k, (_lo, hi) in enumerate(windows):
        if hi < probation:
            continue
        n_windows += 1
        hits = np.flatnonzero(detected & (window_id == k))
        if len(hits):
            n_detected += 1
            total += float(weight[hits[0]])
        else:
            total -= profile.fn_weight
    return FileScore(
        score=total,
        tp=int((detected & inside).sum()),
        tn=int((scorable & ~detected & ~inside).sum()),
        fp=int((detected & ~inside).sum()),
        fn=int((scorable & ~detected & inside).sum()),
        total=n_rows,
        windows=n_windows,
        detected_windows=n_detected,
    )


def sweep(
    series: Iterable[tuple[np.ndarray, np.ndarray]],
    profile: Profile,
    probation_percent: float = PROBATION_PERCENT,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score at every distinct threshold, computed in one sorted pass.

    All scorable rows of all series are sorted by anomaly score (descending) once; lowering the
    threshold past a row adds its false-positive cost, or raises its window's value to the best
    (earliest) detection so far. Cumulative sums give the score at every threshold.

    Args:
        series: Pairs ``(anomaly_scores [T], windows [K, 2])``, one per series.
        profile: Weights to apply.
        probation_percent: Fraction of each series in the probationary period.

    Returns:
        ``(thresholds, raw_scores)``: ``thresholds`` starts with ``+inf`` (no detection) followed
        by the distinct scorable anomaly scores in decreasing order; ``raw_scores[j]`` is the
        corpus raw score when rows with ``anomaly_score >= thresholds[j]`` are detections.

    Raises:
        ValueError: If a series' scores contain NaN or its windows are invalid.

    Example:
        >>> p = Profile("standard", 1.0, 0.11, 1.0)
        >>> s = np.zeros(20); s[10] = 0.9; s[17] = 0.5
        >>> t, raw = sweep([(s, np.array([[10, 13]]))], p)
        >>> t.tolist(), np.round(raw, 4).tolist()
        ([inf, 0.9, 0.5, 0.0], [-1.0, 1.0, 0.8903, -0.3857])
    """
    all_scores, all_weights, all_windows = [], [], []
    base = 0.0
    n_windows = 0
    for anomaly_scores, windows in series:
        scores = np.asarray(anomaly_scores, dtype=np.float64)
        if np.isnan(scores).any():
            raise ValueError(f"anomaly_scores contain NaN at row {int(np.isnan(scores).argmax())}")
        n_rows = len(scores)
        windows = _check_windows(windows, n_rows)
        probation = probation_length(n_rows, probation_percent)
        window_id, weight = row_weights(n_rows, windows, profile)
        keep = slice(probation, None)
        ids = window_id[keep]
        all_scores.append(scores[keep])
        all_weights.append(weight[keep])
        all_windows.append(np.where(ids == _OUTSIDE, _OUTSIDE, ids + n_windows))
        scorable_windows = int((windows[:, 1] >= probation).sum()) if len(windows) else 0
        base -= profile.fn_weight * scorable_windows
        n_windows += len(windows)
    if not all_scores:
        return np.array([np.inf]), np.array([0.0])
    scores = np.concatenate(all_scores)
    weights = np.concatenate(all_weights)
    ids = np.concatenate(all_windows)

    order = np.argsort(-scores, kind="stable")
    scores, weights, ids = scores[order], weights[order], ids[order]
    delta = np.where(ids == _OUTSIDE, weights, 0.0)
    # Inside windows: each window's value is max(-fn_weight, best weight detected so far).
    in_rows = np.flatnonzero(ids != _OUTSIDE)
    if len(in_rows):
        by_window = in_rows[np.argsort(ids[in_rows], kind="stable")]  # window, then rank
        w_ids, w_vals = ids[by_window], weights[by_window]
        starts = np.r_[True, w_ids[1:] != w_ids[:-1]]
        group = np.cumsum(starts) - 1
        span = float(np.abs(w_vals).max()) + profile.fn_weight + 1.0
        offset = group * 2.0 * span  # keeps the running max from leaking across windows
        running = np.maximum.accumulate(w_vals + offset) - offset
        running = np.maximum(running, -profile.fn_weight)
        previous = np.r_[-profile.fn_weight, running[:-1]]
        previous[starts] = -profile.fn_weight
        delta[by_window] = running - previous
    cumulative = base + np.cumsum(delta)
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    thresholds = np.r_[np.inf, scores[last_of_tie]]
    raw_scores = np.r_[base, cumulative[last_of_tie]]
    return thresholds, raw_scores


def normalize(raw: float, null: float, perfect: float) -> float:
    """NAB's normalised score ``100 * (raw - null) / (perfect - null)``.

    Args:
        raw: Raw corpus score.
        null: Raw score of the detector that never fires.
        perfect: Raw score of a detector that hits every window at its left edge.

    Returns:
        The normalised score (0 for the null detector, 100 for the perfect one).

    Raises:
        ValueError: If ``perfect == null`` (a corpus without windows).

    Example:
        >>> normalize(0.0, -116.0, 116.0)
        50.0
    """
    if perfect == null:
        raise ValueError(f"cannot normalise: perfect and null scores are both {perfect}")
    return 100.0 * (raw - null) / (perfect - null)


# --------------------------------------------------------------------------------------------
# The corpus on disk
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NabFile:
    """One labelled series of the corpus.

    Attributes:
        path: Path relative to ``data/``, e.g. ``"realKnownCause/nyc_taxi.csv"``.
        timestamps: ``datetime64`` array ``[T]`` of the series' timestamps.
        windows: Int array ``[K, 2]`` of inclusive row ranges of its labelled windows.
    """

    path: str
    timestamps: np.ndarray
    windows: np.ndarray


@dataclass(frozen=True)
class NabCorpus:
    """The labelled NAB corpus and its profiles.

    Attributes:
        root: The corpus root (holding ``data/``, ``labels/``, ``config/``).
        files: Labelled series by path relative to ``data/``, in label-file order.
        profiles: Scoring profiles by name.
    """

    root: Path
    files: dict[str, NabFile]
    profiles: dict[str, Profile]


def _read_json(path: Path, what: str) -> object:
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}")
    try:
        with path.open() as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise UsageError(f"{what} {path} is not valid JSON: {error}") from None


def load_profiles(path: str | Path) -> dict[str, Profile]:
    """Read NAB's ``config/profiles.json``.

    Args:
        path: The profiles file: ``{name: {"CostMatrix": {"tpWeight", "fpWeight", "fnWeight"}}}``.

    Returns:
        Profiles by name.

    Raises:
        UsageError: If the file is missing or malformed.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "profiles.json"
        ...     _ = path.write_text('{"standard": {"CostMatrix": '
        ...                         '{"tpWeight": 1, "fpWeight": 0.11, "fnWeight": 1}}}')
        ...     load_profiles(path)["standard"].fp_weight
        0.11
    """
    path = Path(path)
    data = _read_json(path, "NAB profiles file")
    profiles = {}
    try:
        for name, entry in data.items():  # type: ignore[union-attr]
            matrix = entry["CostMatrix"]
            profiles[name] = Profile(
                name,
                float(matrix["tpWeight"]),
                float(matrix["fpWeight"]),
                float(matrix["fnWeight"]),
            )
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise UsageError(
            f"NAB profiles file {path} is malformed: expected "
            f'{{name: {{"CostMatrix": {{"tpWeight", "fpWeight", "fnWeight"}}}}}}, got {error!r}'
        ) from None
    return profiles


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise UsageError(f"{what} {path} is not a readable CSV: {message}") from None


def _read_timestamps(path: Path, what: str) -> pd.DataFrame:
    frame = _read_csv(path, what)
    if "timestamp" not in frame.columns:
        raise UsageError(
            f"{what} {path} has no 'timestamp' column (columns: {_listed(list(frame.columns))})"
        )
    try:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    except (ValueError, TypeError) as error:
        message = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        raise UsageError(f"{what} {path}: cannot parse timestamps: {message}") from None
    return frame


def _window_rows(timestamps: np.ndarray, limits: Sequence, path: str) -> np.ndarray:
    rows = []
    for pair in limits:
        if len(pair) != 2:
            raise UsageError(f"window {repr(pair)[:80]} of {path} is not a [start, end] pair")
        bounds = []
        for stamp in pair:
            when = np.datetime64(pd.Timestamp(stamp))
            hits = np.flatnonzero(timestamps == when)
            if len(hits) == 0:
                raise UsageError(
                    f"window bound {stamp!r} of {path} is not a timestamp of the series"
                )
            bounds.append(int(hits[0]))
        rows.append(bounds)
    windows = np.array(rows, dtype=np.int64).reshape(-1, 2)
    try:
        return _check_windows(windows, len(timestamps))
    except ValueError as error:
        raise UsageError(f"windows of {path}: {error}") from None


def load_corpus(nab_root: str | Path) -> NabCorpus:
    """Read NAB's labelled corpus: series timestamps, windows (as row ranges) and profiles.

    Args:
        nab_root: Directory holding ``data/``, ``labels/combined_windows.json`` and
            ``config/profiles.json``.

    Returns:
        The :class:`NabCorpus`.

    Raises:
        UsageError: If a file is missing or malformed, or a window bound is not a timestamp.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = _write_example_corpus(Path(tmp))
        ...     corpus = load_corpus(root)
        >>> corpus.files["demo/a.csv"].windows.tolist(), sorted(corpus.profiles)
        ([[2, 3]], ['standard'])
    """
    root = Path(nab_root)
    if not root.is_dir():
        raise UsageError(f"NAB root {root} is not a directory")
    labels = _read_json(root / "labels" / "combined_windows.json", "NAB windows file")
    if not isinstance(labels, dict):
        raise UsageError(f"NAB windows file under {root} must map data paths to window lists")
    profiles = load_profiles(root / "config" / "profiles.json")
    files = {}
    for rel, limits in labels.items():
        frame = _read_timestamps(root / "data" / rel, "NAB data file")
        timestamps = frame["timestamp"].to_numpy()
        files[rel] = NabFile(rel, timestamps, _window_rows(timestamps, limits, rel))
    return NabCorpus(root, files, profiles)


@dataclass(frozen=True)
class NabResults:
    """A detector's anomaly scores for every series of the corpus.

    Attributes:
        detector: Detector name (the results directory's name, or the files' common prefix).
        scores: Anomaly scores ``[T]`` by data path relative to ``data/``.
        notes: Warnings raised while reading (result files whose timestamps differ from their
            data file's), one line each.
    """

    detector: str
    scores: dict[str, np.ndarray]
    notes: tuple[str, ...] = ()


class NabTimestampWarning(UserWarning):
    """A result file's timestamps differ from its data file's; it is scored by row position."""


def _write_example_corpus(root: Path) -> Path:
    """A six-row, one-window corpus and a detector ``toy`` for the doctests; returns ``root``."""
    stamps = [f"2020-01-01 00:0{i}:00" for i in range(6)]
    (root / "data" / "demo").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "config").mkdir()
    (root / "results" / "toy" / "demo").mkdir(parents=True)
    pd.DataFrame({"timestamp": stamps, "value": 0.0}).to_csv(root / "data/demo/a.csv", index=False)
    scores = pd.DataFrame({"timestamp": stamps, "anomaly_score": [0.0, 0.0, 1.0, 0, 0, 0]})
    scores.to_csv(root / "results/toy/demo/toy_a.csv", index=False)
    windows = {"demo/a.csv": [[stamps[2] + ".000000", stamps[3] + ".000000"]]}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    matrix = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0, "tnWeight": 1.0}
    (root / "config" / "profiles.json").write_text(json.dumps({"standard": {"CostMatrix": matrix}}))
    return root


def _infer_detector(results_dir: Path, corpus: NabCorpus) -> str:
    candidates = sorted(results_dir.glob("*/*.csv"))
    if not candidates:
        raise UsageError(
            f"no result files in {results_dir}: expected <folder>/<detector>_<file>.csv"
        )
    name = results_dir.name
    for rel in corpus.files:
        folder, file = rel.rsplit("/", 1) if "/" in rel else ("", rel)
        if (results_dir / folder / f"{name}_{file}").is_file():
            return name
    for candidate in candidates:
        for rel in corpus.files:
            folder, file = rel.rsplit("/", 1) if "/" in rel else ("", rel)
            if candidate.parent.name == folder and candidate.name.endswith("_" + file):
                return candidate.name[: -len(file) - 1]
    raise UsageError(
        f"no result file in {results_dir} matches a labelled series: expected "
        f"<folder>/<detector>_<file>.csv, e.g. {next(iter(corpus.files), 'folder/file.csv')}"
    )


def load_results(results_dir: str | Path, corpus: NabCorpus) -> NabResults:
    """Read a detector's result files, ``RESULTS_DIR/<folder>/<detector>_<file>.csv``.

    Each file needs an ``anomaly_score`` column with one row per row of the data file. Like NAB's
    own scorer (which takes the timestamps from the data file and the scores by position), a
    score belongs to the data row at its position: where a result file's ``timestamp`` column
    differs from the data file's (NAB's published ``randomCutForest`` results do at one row), the
    file is still scored, and a :class:`NabTimestampWarning` names the file and the first
    differing row (also kept in :attr:`NabResults.notes`).

    Args:
        results_dir: The detector's results directory.
        corpus: The labelled corpus (see :func:`load_corpus`).

    Returns:
        The :class:`NabResults`.

    Raises:
        UsageError: If the directory or a result file is missing, a file lacks the
            ``anomaly_score`` column, has a different number of rows than its data file, or has
            a score that is not a finite number (naming file and row).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     root = _write_example_corpus(Path(tmp))
        ...     results = load_results(root / "results" / "toy", load_corpus(root))
        >>> results.detector, results.scores["demo/a.csv"].tolist()
        ('toy', [0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UsageError(f"results directory {results_dir} does not exist")
    detector = _infer_detector(results_dir, corpus)
    missing = []
    scores = {}
    notes = []
    for rel, nab_file in corpus.files.items():
        folder, file = rel.rsplit("/", 1) if "/" in rel else ("", rel)
        path = results_dir / folder / f"{detector}_{file}"
        if not path.is_file():
            missing.append(str(path.relative_to(results_dir)))
            continue
        frame = _read_csv(path, "results file")
        if "anomaly_score" not in frame.columns:
            raise UsageError(
                f"results file {path} has no 'anomaly_score' column (columns: "
                f"{_listed(list(frame.columns))})"
            )
        expected = nab_file.timestamps
        if len(frame) != len(expected):
            raise UsageError(
                f"results file {path} has {len(frame)} rows, expected {len(expected)} "
                f"(the rows of data/{rel})"
            )
        if "timestamp" in frame.columns:
            note = _timestamp_note(path, frame["timestamp"], expected, rel)
            if note:
                warnings.warn(note, NabTimestampWarning, stacklevel=2)
                notes.append(note)
        values = pd.to_numeric(frame["anomaly_score"], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            row = int(bad[0])
            raise UsageError(
                f"results file {path}, row {row + 1} (line {row + 2}): anomaly_score "
                f"{frame['anomaly_score'].iloc[row]!r} is not a finite number"
            )
        scores[rel] = values
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise UsageError(
            f"results directory {results_dir} lacks {len(missing)} of {len(corpus.files)} "
            f"result files for detector {detector!r}: {shown}"
        )
    return NabResults(detector, scores, tuple(notes))


def _timestamp_note(path: Path, stamps: pd.Series, expected: np.ndarray, rel: str) -> str | None:
    """The warning for a result file whose timestamps differ from its data file's, if they do."""
    got = pd.to_datetime(stamps, errors="coerce", format="mixed")
    if getattr(got.dt, "tz", None) is not None:
        got = got.dt.tz_convert(None)
    got = got.to_numpy()
    differ = np.flatnonzero(pd.isna(got) | (got != expected))
    if not len(differ):
        return None
    row = int(differ[0])
    more = f" ({len(differ) - 1} more rows differ)" if len(differ) > 1 else ""
    shown = repr(str(stamps.iloc[row]))
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    return (
        f"results file {path}, row {row + 1} (line {row + 2}): timestamp {shown}, expected "
        f"{pd.Timestamp(expected[row])} from data/{rel}{more}; scored by row position, as NAB "
        "does"
    )


def _listed(items: Sequence[object], shown: int = 5) -> str:
    text = ", ".join(repr(str(i))[:42] for i in items[:shown])
    return text + (f" and {len(items) - shown} more" if len(items) > shown else "")


def load_thresholds(path: str | Path, detector: str | None = None) -> dict[str, float]:
    """Read thresholds per profile.

    Accepts NAB's ``config/thresholds.json`` layout ``{detector: {profile: {"threshold": t}}}``
    (the ``detector`` entry is used) or a plain ``{profile: t}`` / ``{profile: {"threshold": t}}``.

    Args:
        path: The thresholds JSON file.
        detector: Detector entry to use in NAB's layout.

    Returns:
        Threshold by profile name.

    Raises:
        UsageError: If the file is missing, malformed, or lacks the detector.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "thresholds.json"
        ...     _ = path.write_text('{"numenta": {"standard": {"threshold": 0.54, "score": 46.6}}}')
        ...     load_thresholds(path, "numenta")
        {'standard': 0.54}
    """
    path = Path(path)
    data = _read_json(path, "threshold file")
    if not isinstance(data, dict):
        raise UsageError(f"threshold file {path} must hold a JSON object")

    def as_threshold(value: object) -> float | None:
        if isinstance(value, dict) and "threshold" in value:
            value = value["threshold"]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return None

    plain = {name: as_threshold(value) for name, value in data.items()}
    if plain and all(value is not None for value in plain.values()):
        return plain  # type: ignore[return-value]
    if detector is None or detector not in data:
        raise UsageError(
            f"threshold file {path} has no entry for detector {detector!r} "
            f"(entries: {_listed(sorted(data))})"
        )
    entry = data[detector]
    out = (
        {name: as_threshold(value) for name, value in entry.items()}
        if isinstance(entry, dict)
        else {}
    )
    if not out or any(value is None for value in out.values()):
        raise UsageError(
            f"threshold file {path}, detector {detector!r}: expected "
            f'{{profile: {{"threshold": number}}}}, got {entry!r}'
        )
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Corpus-level scoring
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileResult:
    """A detector's NAB result on one profile.

    Attributes:
        profile: Profile name.
        threshold: Threshold used (given, or found by :func:`optimize_threshold`).
        score: Normalised NAB score (null detector 0, perfect detector 100).
        raw_score: Raw score summed over the corpus.
        null_score: Raw score of the detector that never fires.
        perfect_score: Raw score of the perfect detector.
        per_file: Per-series :class:`FileScore` by data path.
    """

    profile: str
    threshold: float
    score: float
    raw_score: float
    null_score: float
    perfect_score: float
    per_file: dict[str, FileScore]


def optimize_threshold(
    results: NabResults | Mapping[str, np.ndarray], corpus: NabCorpus, profile: str | Profile
) -> tuple[float, float]:
    """The single corpus-wide threshold that maximises a profile's raw NAB score.

    The search is exact over all distinct anomaly scores (see :func:`sweep`); among equally good
    thresholds the highest is returned.

    Args:
        results: The detector's scores (:class:`NabResults` or ``{data path: scores}``).
        corpus: The labelled corpus.
        profile: Profile name (from the corpus) or a :class:`Profile`.

    Returns:
        ``(threshold, raw_score)``; rows with ``anomaly_score >= threshold`` are detections.

    Raises:
        UsageError: If the profile is unknown or a series has no scores.

    Example:
        >>> stamps = np.arange(20).astype("datetime64[m]")
        >>> corpus = NabCorpus(Path("."), {"a.csv": NabFile("a.csv", stamps, np.array([[10, 13]]))},
        ...                    {"standard": Profile("standard", 1.0, 0.11, 1.0)})
        >>> scores = np.zeros(20); scores[10] = 0.9; scores[17] = 0.5
        >>> optimize_threshold({"a.csv": scores}, corpus, "standard")
        (0.9, 1.0)
    """
    scores = results.scores if isinstance(results, NabResults) else results
    prof = _profile(corpus, profile)
    thresholds, raw = sweep(
        ((_scores_for(scores, rel), f.windows) for rel, f in corpus.files.items()), prof
    )
    best = int(np.argmax(raw))
    return float(thresholds[best]), float(raw[best])


def _profile(corpus: NabCorpus, profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    if profile not in corpus.profiles:
        raise UsageError(
            f"unknown profile {profile!r}; the corpus defines {', '.join(corpus.profiles)}"
        )
    return corpus.profiles[profile]


def _scores_for(scores: Mapping[str, np.ndarray], rel: str) -> np.ndarray:
    if rel not in scores:
        raise UsageError(f"no anomaly scores for series {rel}")
    return scores[rel]


def score_corpus(
    results_dir: str | Path | NabResults,
    nab_root: str | Path | NabCorpus,
    thresholds: Mapping[str, float] | None = None,
    profiles: Sequence[str] | None = None,
) -> dict[str, ProfileResult]:
    """Score a detector's results on the NAB corpus, per profile, normalised like NAB's board.

    Args:
        results_dir: The detector's results directory (or already loaded :class:`NabResults`).
        nab_root: The NAB corpus root (or a loaded :class:`NabCorpus`).
        thresholds: Threshold per profile; ``None`` finds the best one per profile with
            :func:`optimize_threshold`.
        profiles: Profiles to score; default all profiles of the corpus.

    Returns:
        :class:`ProfileResult` by profile name.

    Raises:
        UsageError: On missing or inconsistent files, unknown profiles, or a profile without a
            threshold.

    Example:
        >>> stamps = np.arange(20).astype("datetime64[m]")
        >>> corpus = NabCorpus(Path("."), {"a.csv": NabFile("a.csv", stamps, np.array([[10, 13]]))},
        ...                    {"standard": Profile("standard", 1.0, 0.11, 1.0)})
        >>> results = NabResults("toy", {"a.csv": np.where(np.arange(20) == 12, 1.0, 0.0)})
        >>> result = score_corpus(results, corpus, thresholds={"standard": 0.5})["standard"]
        >>> round(result.raw_score, 4), round(result.score, 2)  # (0.8598 + 1) / 2
        (0.8598, 92.99)
    """
    corpus = nab_root if isinstance(nab_root, NabCorpus) else load_corpus(nab_root)
    results = (
        results_dir if isinstance(results_dir, NabResults) else load_results(results_dir, corpus)
    )
    names = list(corpus.profiles) if profiles is None else list(profiles)
    out = {}
    for name in names:
        prof = _profile(corpus, name)
        if thresholds is None:
            threshold, _ = optimize_threshold(results, corpus, prof)
        elif name in thresholds:
            threshold = float(thresholds[name])
        else:
            raise UsageError(
                f"no threshold for profile {name!r} (thresholds given for {', '.join(thresholds)})"
            )
        per_file = {
            rel: score_file(_scores_for(results.scores, rel), f.windows, threshold, prof)
            for rel, f in corpus.files.items()
        }
        raw = sum(s.score for s in per_file.values())
        null = -prof.fn_weight * sum(s.windows for s in per_file.values())
        perfect = prof.tp_weight * sum(len(f.windows) for f in corpus.files.values())
        out[name] = ProfileResult(
            profile=name,
            threshold=threshold,
            score=normalize(raw, null, perfect),
            raw_score=raw,
            null_score=null,
            perfect_score=perfect,
            per_file=per_file,
        )
    return out
