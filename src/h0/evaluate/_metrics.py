"""Anomaly-detection metrics on per-point labels and scores: point, range and volume measures.

All functions take ``labels``, a 0/1 array ``[T]`` marking anomalous points, and either
``scores`` (float ``[T]``, higher = more anomalous) or binary ``predictions``.

**Range-AUC and VUS** (Paparrizos et al., VLDB 2022, "Volume Under the Surface: a new accuracy
evaluation measure for time-series anomaly detection"). This module's exact definitions:

* *Soft labels with buffer* ``l`` (an integer ``>= 0``): every anomalous range ``[s, e]`` keeps
  label 1 and the ``l`` points on each side get ``sqrt(1 - d / (l + 1))`` at distance
  ``d = 1..l`` (overlapping buffers take the maximum). Call them ``y_l``.
* At each distinct score ``theta`` (descending), ``pred = scores >= theta``:
  ``TP = sum(y_l * pred)``, ``P = (sum(labels) + sum(y_l)) / 2``,
  ``TPR = min(TP / P, 1)``, times, with ``existence=True``, the fraction of anomalous ranges with
  at least one prediction inside the range or its buffer;
  ``FPR = sum((1 - y_l) * pred) / (T - P)``; ``precision = TP / sum(pred)``.
* ``range_auc_roc`` is the trapezoidal area under ``(0, 0), (FPR, TPR)..., (1, 1)``;
  ``range_auc_pr`` is the step-wise (average-precision) sum ``sum_k (R_k - R_{k-1}) P_k`` with
  ``R_0 = 0``.
* ``vus_roc`` / ``vus_pr`` average ``range_auc_roc`` / ``range_auc_pr`` over the buffers
  ``l = 0, 1, ..., max_buffer``.

With ``l = 0`` and ``existence=False`` the soft labels are the labels and the curves are the
point ROC and PR curves: ``range_auc_roc`` equals :func:`auc_roc` (scikit-learn's
``roc_auc_score``) and ``range_auc_pr`` equals :func:`auc_pr` (``average_precision_score``).

**Range precision and recall** (Tatbul et al., NeurIPS 2018, "Precision and recall for time
series"), see :func:`range_precision_recall_f1`.

Example:
    >>> import numpy as np
    >>> labels = np.array([0, 0, 1, 1, 0, 0])
    >>> scores = np.array([0.1, 0.2, 0.9, 0.3, 0.4, 0.0])
    >>> round(auc_roc(labels, scores), 4)
    0.875
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np

__all__ = [
    "EventPRF",
    "RangePRF",
    "all_ones_f1",
    "auc_pr",
    "auc_roc",
    "event_precision_recall_f1",
    "point_f1",
    "range_auc_pr",
    "range_auc_roc",
    "range_precision_recall_f1",
    "ranges",
    "soft_labels",
    "vus_pr",
    "vus_roc",
]

Bias = Literal["flat", "front", "back", "middle"]
Cardinality = Literal["one", "reciprocal"]


def _labels(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        bad = int(np.flatnonzero(~np.isin(arr, (0, 1)))[0])
        raise ValueError(f"{name} must be 0 or 1, got {arr[bad].item()!r} at index {bad}")
    return arr.astype(bool)


def _scores(scores: np.ndarray, n: int) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"scores must have shape ({n},) like labels, got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"scores must be finite, got {arr[bad]} at index {bad}")
    return arr


def _both_classes(y: np.ndarray) -> None:
    if y.all() or not y.any():
        raise ValueError(
            f"labels must contain both 0 and 1, got {int(y.sum())} ones in {y.size} points"
        )


def ranges(binary: np.ndarray) -> np.ndarray:
    """Maximal runs of ones as inclusive index pairs.

    Args:
        binary: 0/1 array ``[T]``.

    Returns:
        Int array ``[N, 2]`` of ``[start, end]`` (inclusive) of each run of ones.

    Example:
        >>> ranges(np.array([1, 1, 0, 0, 1, 0, 1])).tolist()
        [[0, 1], [4, 4], [6, 6]]
    """
    y = _labels(binary, "binary").astype(np.int8)
    edges = np.diff(np.r_[0, y, 0])
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    return np.stack([starts, ends], axis=1)


def _curve(weights: np.ndarray, scores: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cumulative weight and count of predicted points at each distinct threshold."""
    s = scores[order]
    last = np.r_[s[1:] != s[:-1], True]
    cum_weight = np.cumsum(weights[order])[last]
    cum_count = np.cumsum(np.ones_like(s))[last]
    return s[last], cum_weight, cum_count


def auc_roc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the point-wise ROC curve (ties handled like scikit-learn's ``roc_auc_score``).

    Args:
        labels: 0/1 array ``[T]``, with both classes present.
        scores: Float array ``[T]``; higher means more anomalous.

    Returns:
        The AUC-ROC in ``[0, 1]``.

    Raises:
        ValueError: On shape mismatch, non-binary labels, a single class or non-finite scores.

    Example:
        >>> auc_roc(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.3, 0.2]))
        0.75
    """
    return range_auc_roc(labels, scores, buffer=0, existence=False)


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the point-wise precision-recall curve, as average precision.

    ``sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds, like scikit-learn's
    ``average_precision_score`` (no interpolation).

    Args:
        labels: 0/1 array ``[T]``, with both classes present.
        scores: Float array ``[T]``; higher means more anomalous.

    Returns:
        The average precision in ``[0, 1]``.

    Raises:
        ValueError: On shape mismatch, non-binary labels, a single class or non-finite scores.

    Example:
        >>> round(auc_pr(np.array([0, 1, 0, 1]), np.array([0.1, 0.8, 0.3, 0.2])), 4)
        0.8333
    """
    return range_auc_pr(labels, scores, buffer=0, existence=False)


def soft_labels(labels: np.ndarray, buffer: int) -> np.ndarray:
    """Labels widened by a decaying buffer of ``buffer`` points on each side of every range.

    Points at distance ``d = 1..buffer`` from a range get ``sqrt(1 - d / (buffer + 1))``; the
    ranges keep 1; overlaps take the maximum.

    Args:
        labels: 0/1 array ``[T]``.
        buffer: Buffer length ``l >= 0`` on each side.

    Returns:
        Float array ``[T]`` in ``[0, 1]``.

    Raises:
        ValueError: If ``buffer`` is negative.

    Example:
        >>> np.round(soft_labels(np.array([0, 0, 1, 0, 0, 0]), 2), 3).tolist()
        [0.577, 0.816, 1.0, 0.816, 0.577, 0.0]
    """
    y = _labels(labels)
    if buffer < 0:
        raise ValueError(f"buffer must be >= 0, got {buffer}")
    soft = y.astype(np.float64)
    n = len(y)
    if buffer == 0 or n == 0:
        return soft
    runs = ranges(y)
    for d in range(1, buffer + 1):
        value = np.sqrt(1.0 - d / (buffer + 1.0))
        for idx in (runs[:, 0] - d, runs[:, 1] + d):
            idx = idx[(idx >= 0) & (idx < n)]
            soft[idx] = np.maximum(soft[idx], value)
    return soft


def _range_curves(
    y: np.ndarray,
    s: np.ndarray,
    order: np.ndarray,
    buffer: int,
    existence: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TPR (recall), FPR and precision at each distinct threshold, descending."""
    soft = soft_labels(y, buffer)
    thresholds, tp, n_pred = _curve(soft, s, order)
    positives = (y.sum() + soft.sum()) / 2.0
    negatives = len(y) - positives
    tpr = np.minimum(tp / positives, 1.0)
    if existence:
        runs = ranges(y)
        lo = np.maximum(runs[:, 0] - buffer, 0)
        hi = np.minimum(runs[:, 1] + buffer, len(y) - 1)
        best = np.array([s[a : b + 1].max() for a, b in zip(lo, hi, strict=True)])
        # A range counts as found at threshold t when its best score is >= t.
        found = np.searchsorted(np.sort(-best), -thresholds, side="right")
        tpr = tpr * found / len(runs)
    fpr = (n_pred - tp) / negatives
    precision = tp / n_pred
    return tpr, fpr, precision


def _prepare(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = _labels(labels)
    s = _scores(scores, len(y))
    _both_classes(y)
    return y, s, np.argsort(-s, kind="stable")


def _roc_area(tpr: np.ndarray, fpr: np.ndarray) -> float:
    x = np.r_[0.0, fpr, 1.0]
    yv = np.r_[0.0, tpr, 1.0]
    return float(np.sum(np.diff(x) * (yv[1:] + yv[:-1]) / 2.0))


def _pr_area(recall: np.ndarray, precision: np.ndarray) -> float:
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def range_auc_roc(
    labels: np.ndarray, scores: np.ndarray, buffer: int = 0, existence: bool = True
) -> float:
    """Range-AUC-ROC with a soft buffer of ``buffer`` points (see the module docstring).

    Args:
        labels: 0/1 array ``[T]``, with both classes present.
        scores: Float array ``[T]``.
        buffer: Buffer length ``l >= 0`` on each side of every anomalous range.
        existence: Multiply the TPR by the fraction of ranges detected (Paparrizos et al.).

    Returns:
        The range-AUC-ROC in ``[0, 1]``.

    Raises:
        ValueError: On invalid inputs or a negative buffer.

    Example:
        >>> labels = np.array([0, 0, 1, 1, 0, 0])
        >>> scores = np.array([0.0, 0.5, 0.1, 0.2, 0.0, 0.0])
        >>> range_auc_roc(labels, scores, 0, existence=False) < range_auc_roc(labels, scores, 1)
        True
    """
    y, s, order = _prepare(labels, scores)
    tpr, fpr, _ = _range_curves(y, s, order, buffer, existence)
    return _roc_area(tpr, fpr)


def range_auc_pr(
    labels: np.ndarray, scores: np.ndarray, buffer: int = 0, existence: bool = True
) -> float:
    """Range-AUC-PR (step-wise average precision) with a soft buffer (see the module docstring).

    Args:
        labels: 0/1 array ``[T]``, with both classes present.
        scores: Float array ``[T]``.
        buffer: Buffer length ``l >= 0`` on each side of every anomalous range.
        existence: Multiply the recall by the fraction of ranges detected.

    Returns:
        The range-AUC-PR in ``[0, 1]``.

    Raises:
        ValueError: On invalid inputs or a negative buffer.

    Example:
        >>> labels = np.array([0, 0, 1, 1, 0, 0])
        >>> scores = np.array([0.0, 0.5, 0.1, 0.2, 0.0, 0.0])
        >>> round(range_auc_pr(labels, scores, 0, existence=False), 4)
        0.5833
    """
    y, s, order = _prepare(labels, scores)
    recall, _, precision = _range_curves(y, s, order, buffer, existence)
    return _pr_area(recall, precision)


def _check_max_buffer(max_buffer: int) -> None:
    if max_buffer < 0:
        raise ValueError(f"max_buffer must be >= 0, got {max_buffer}")


def vus_roc(
    labels: np.ndarray, scores: np.ndarray, max_buffer: int = 100, existence: bool = True
) -> float:
    """Volume under the range-ROC surface: mean range-AUC-ROC over buffers ``0..max_buffer``.

    Args:
        labels: 0/1 array ``[T]``, with both classes present.
        scores: Float array ``[T]``.
        max_buffer: Largest buffer ``l``; choose it near the series' period or the typical
            anomaly length.
        existence: Use the existence reward in the TPR.

    Returns:
        VUS-ROC in ``[0, 1]``.

    Raises:
        ValueError: On invalid inputs or a negative ``max_buffer``.

    Example:
        >>> labels = np.array([0, 0, 1, 1, 0, 0])
        >>> scores = np.array([0.0, 0.5, 0.1, 0.2, 0.0, 0.0])
        >>> vus_roc(labels, scores, 0) == range_auc_roc(labels, scores, 0)
        True
    """
    _check_max_buffer(max_buffer)
    y, s, order = _prepare(labels, scores)
    areas = [
        _roc_area(*_range_curves(y, s, order, b, existence)[:2]) for b in range(max_buffer + 1)
    ]
    return float(np.mean(areas))


def vus_pr(
    labels: np.ndarray, scores: np.ndarray, max_buffer: int = 100, existence: bool = True
) -> float:
    """Volume under the range-PR surface: mean range-AUC-PR over buffers ``0..max_buffer``.

    Args:
        labels: 0/1 array ``[T]``, with both classes present.
        scores: Float array ``[T]``.
        max_buffer: Largest buffer ``l``.
        existence: Use the existence reward in the recall.

    Returns:
        VUS-PR in ``[0, 1]``.

    Raises:
        ValueError: On invalid inputs or a negative ``max_buffer``.

    Example:
        >>> labels = np.array([0, 0, 1, 1, 0, 0])
        >>> scores = np.array([0.0, 0.5, 0.1, 0.2, 0.0, 0.0])
        >>> vus_pr(labels, scores, 0) == range_auc_pr(labels, scores, 0)
        True
    """
    _check_max_buffer(max_buffer)
    y, s, order = _prepare(labels, scores)
    areas = []
    for b in range(max_buffer + 1):
        recall, _, precision = _range_curves(y, s, order, b, existence)
        areas.append(_pr_area(recall, precision))
    return float(np.mean(areas))


def point_f1(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Point-wise F1 of the detections ``scores >= threshold``.

    Args:
        labels: 0/1 array ``[T]``.
        scores: Float array ``[T]``.
        threshold: Detection threshold (inclusive).

    Returns:
        F1 in ``[0, 1]``; 0 when there is no true positive.

    Raises:
        ValueError: On shape mismatch, non-binary labels or non-finite scores.

    Example:
        >>> point_f1(np.array([0, 1, 1, 0]), np.array([0.9, 0.8, 0.1, 0.0]), 0.5)
        0.5
    """
    y = _labels(labels)
    pred = _scores(scores, len(y)) >= threshold
    tp = float(np.sum(pred & y))
    if tp == 0:
        return 0.0
    return float(2.0 * tp / (pred.sum() + y.sum()))


class RangePRF(NamedTuple):
    """Range-based precision, recall and F1."""

    precision: float
    recall: float
    f1: float


def _bias_weights(length: int, bias: Bias) -> np.ndarray:
    i = np.arange(1, length + 1, dtype=np.float64)
    if bias == "flat":
        return np.ones(length)
    if bias == "front":
        return length - i + 1
    if bias == "back":
        return i
    if bias == "middle":
        return np.where(i <= length / 2, i, length - i + 1)
    raise ValueError(f"bias must be 'flat', 'front', 'back' or 'middle', got {bias!r}")


def _range_scores(
    own: np.ndarray, other: np.ndarray, bias: Bias, cardinality: Cardinality
) -> tuple[np.ndarray, np.ndarray]:
    """For each range of ``own``: existence (0/1) and ``gamma * omega`` against ``other``."""
    other_runs = ranges(other)
    run_id = np.full(len(other), -1)
    for k, (a, b) in enumerate(other_runs):
        run_id[a : b + 1] = k
    existence, overlap = [], []
    for a, b in ranges(own):
        segment = other[a : b + 1]
        weights = _bias_weights(b - a + 1, bias)
        omega = float(weights[segment].sum() / weights.sum())
        ids = run_id[a : b + 1]
        count = len(np.unique(ids[ids >= 0]))
        gamma = 1.0 if cardinality == "one" or count <= 1 else 1.0 / count
        existence.append(float(count > 0))
        overlap.append(gamma * omega)
    return np.array(existence), np.array(overlap)


def range_precision_recall_f1(
    labels: np.ndarray,
    predictions: np.ndarray,
    *,
    alpha: float = 0.0,
    bias: Bias = "flat",
    cardinality: Cardinality = "one",
) -> RangePRF:
    """Range-based precision, recall and F1 of Tatbul et al. (2018).

    With real ranges ``R_i`` (runs of ``labels``) and predicted ranges ``P_j`` (runs of
    ``predictions``)::

        Recall    = mean_i [alpha * Existence(R_i) + (1 - alpha) * gamma(R_i) * omega(R_i)]
        Precision = mean_j [gamma(P_j) * omega(P_j)]

    ``omega(A)`` is the positional-bias-weighted fraction of range ``A`` covered by the other
    set: ``sum of delta(i) over covered positions / sum of delta(i) over all positions``, with
    ``delta(i)`` for position ``i = 1..L`` being 1 (``flat``), ``L - i + 1`` (``front``),
    ``i`` (``back``) or ``min(i, L - i + 1)`` (``middle``). ``gamma(A)`` is the cardinality
    factor: 1 if ``A`` overlaps at most one range of the other set, else 1 (``"one"``) or
    ``1 / count`` (``"reciprocal"``). The same bias is used for precision and recall.

    Args:
        labels: 0/1 array ``[T]`` with at least one anomaly.
        predictions: 0/1 array ``[T]`` of detections.
        alpha: Weight of the existence reward in the recall, in ``[0, 1]``.
        bias: Positional bias ``delta``: ``"flat"``, ``"front"``, ``"back"`` or ``"middle"``.
        cardinality: ``"one"`` (no penalty) or ``"reciprocal"`` (``1 / count``).

    Returns:
        :class:`RangePRF` ``(precision, recall, f1)``; precision is 0 without predictions and
        F1 is 0 when precision and recall are both 0.

    Raises:
        ValueError: On shape mismatch, non-binary inputs, no anomaly in ``labels``, ``alpha``
            outside ``[0, 1]``, or an unknown bias or cardinality.

    Example:
        >>> labels = np.array([0, 1, 1, 1, 1, 0, 0, 0])
        >>> preds = np.array([0, 0, 1, 1, 0, 0, 1, 0])
        >>> range_precision_recall_f1(labels, preds)
        RangePRF(precision=0.5, recall=0.5, f1=0.5)
    """
    y = _labels(labels)
    p = _labels(predictions, "predictions")
    if p.shape != y.shape:
        raise ValueError(f"predictions must have shape {y.shape} like labels, got {p.shape}")
    if not y.any():
        raise ValueError("labels contain no anomaly: range recall is undefined")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if cardinality not in ("one", "reciprocal"):
        raise ValueError(f"cardinality must be 'one' or 'reciprocal', got {cardinality!r}")
    _bias_weights(1, bias)  # validate early
    exist_r, overlap_r = _range_scores(y, p, bias, cardinality)
    recall = float(np.mean(alpha * exist_r + (1.0 - alpha) * overlap_r))
    if p.any():
        _, overlap_p = _range_scores(p, y, bias, cardinality)
        precision = float(np.mean(overlap_p))
    else:
        precision = 0.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return RangePRF(precision, recall, float(f1))


def all_ones_f1(labels: np.ndarray) -> float:
    """Point-wise F1 of flagging every point: ``2 p / (1 + p)`` with ``p`` the anomalous share.

    The reference a point-wise F1 has to beat: on series whose anomalies are long segments it is
    high (``p = 0.1`` gives 0.18), so a detector with a lower point F1 does worse than no model.

    Args:
        labels: 0/1 array ``[T]``.

    Returns:
        F1 in ``[0, 1]``; 0 without anomalies.

    Raises:
        ValueError: On non-binary labels.

    Example:
        >>> all_ones_f1(np.array([0, 0, 0, 1]))  # precision 1/4, recall 1
        0.4
    """
    y = _labels(labels)
    if y.size == 0:
        return 0.0
    p = float(y.mean())
    return 2.0 * p / (1.0 + p)


class EventPRF(NamedTuple):
    """Event precision, recall and F1, and the counts behind them."""

    precision: float
    recall: float
    f1: float
    true_events: int
    events: int
    found_segments: int
    segments: int


def event_precision_recall_f1(labels: np.ndarray, events: np.ndarray) -> EventPRF:
    """Event-wise precision, recall and F1 of alarm events against labelled segments.

    An event ``[start, end]`` (inclusive rows) is a true positive if it overlaps a labelled
    segment (a maximal run of ones in ``labels``); precision is the share of true events; recall
    is the share of labelled segments overlapped by at least one event. Several events on one
    segment are all true but find it once.

    Args:
        labels: 0/1 array ``[T]`` with at least one anomaly.
        events: Int array ``[N, 2]`` of inclusive ``[start, end]`` rows (``N`` may be 0).

    Returns:
        :class:`EventPRF`; precision is 0 without events; F1 is 0 when both are 0.

    Raises:
        ValueError: On non-binary labels, no anomaly, or events outside ``[0, T)`` or with
            ``end < start``.

    Example:
        >>> labels = np.array([0, 1, 1, 0, 0, 0, 1, 0, 0, 0])
        >>> r = event_precision_recall_f1(labels, np.array([[2, 3], [4, 4], [8, 9]]))
        >>> round(r.precision, 4), r.recall, round(r.f1, 4)
        (0.3333, 0.5, 0.4)
    """
    y = _labels(labels)
    if not y.any():
        raise ValueError("labels contain no anomaly: event recall is undefined")
    ev = np.asarray(events, dtype=np.int64).reshape(-1, 2)
    if ev.size and (ev.min() < 0 or ev.max() >= len(y) or np.any(ev[:, 1] < ev[:, 0])):
        raise ValueError(
            f"events must be [start, end] rows with 0 <= start <= end < {len(y)}, got {ev.tolist()}"
        )
    segments = ranges(y)
    # Prefix sums give "any label inside [a, b]" per event; per segment, "any event inside".
    label_sum = np.r_[0, np.cumsum(y)]
    true = label_sum[ev[:, 1] + 1] - label_sum[ev[:, 0]] > 0
    covered = np.zeros(len(y) + 1, np.int64)
    np.add.at(covered, ev[:, 0], 1)
    np.add.at(covered, ev[:, 1] + 1, -1)
    flagged = np.cumsum(covered)[:-1] > 0
    flag_sum = np.r_[0, np.cumsum(flagged)]
    found = flag_sum[segments[:, 1] + 1] - flag_sum[segments[:, 0]] > 0
    precision = float(true.mean()) if len(ev) else 0.0
    recall = float(found.mean())
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return EventPRF(
        precision, recall, float(f1), int(true.sum()), len(ev), int(found.sum()), len(segments)
    )
