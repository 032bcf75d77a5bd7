"""From reconstruction errors to a dense, causal anomaly score per point.

The network gives each window two error features per channel (``h0.anomaly._train``): the mean
signed error of its newest ``error_span`` points and, with ``window_error``, its root-mean-square
error; with a forecasting head, a third: the newest point's signed one-step forecast error. A
:class:`Calibration` fitted on the errors of the training part turns them into a score:

1. **Robust standardisation per feature and channel**: ``z = |e - median| / scale`` for the signed
   errors and ``max(0, (r - median) / scale)`` for the RMS error (larger only), with ``scale`` =
   1.4826 MAD (floored, so a near-perfect fit cannot divide by zero).
2. **An empirical error model with an exponential tail**, per feature and channel: the
   magnitude's survival function is the calibration errors' own (interpolated in log space, so
   the score stays strictly increasing), and beyond their ``tail_quantile`` an exponential tail
   fitted to the exceedances (peaks over a threshold), so heavy-tailed errors are not judged by a
   Gaussian. Each test gives ``-log10 p``: decades of rarity (3 = one in a thousand).
3. **Tests combined by Šidák's rule**: the score is ``-log10(1 - (1 - p_min)^K)`` over the ``K``
   tests (features x modelled channels), so one broken channel is not diluted among many (as a
   Mahalanobis distance over all channels would be) and the scale does not grow with ``K``; a
   channel's own score (for attribution) combines its features the same way. Channels that were
   constant in training carry no model of their variation and are left out (a mode flag or a
   command bit changing is not by itself an anomaly) unless every channel was constant
   (:func:`modelled_channels`; the network's input holds them at their training value too).
4. Optionally the **echo rule** (:class:`Echo`): the window RMS error at point ``t``, where it
   does not exceed the point-level score (newest-point and forecast errors) of one of the
   window's earlier points, is an echo of that point, which was scored already: its decades are
   multiplied by ``keep``. After one extreme point every window that holds it has a large RMS
   error for a whole window, so without the rule the points after a spike score as high as the
   spike. (The spread, the other window-level test, is left alone: its echo changed nothing on
   the dev benchmark and cost NAB; docs/nab_tuning.md, session 8.)
5. Optionally the **range rule**: a value beyond the training range by more than
   ``range_margin`` of that range scores at least :data:`RANGE_DECADES`.

Nothing trails or adapts: the score of a point depends on its window and the calibration only
(and, with the echo rule, on the point-level scores of that window's earlier points),
so it is comparable across time (a long anomalous segment does not become the new normal),
causal, and the same in batch and in a stream. Every quantile of the scores is a usable
threshold. (Online adaptation, off by default, is the detector's: ``h0.anomaly._adapt``.)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: Score (decades) of a value outside the training range when the range rule is on.
RANGE_DECADES = 10.0
#: Smallest robust scale of an error feature, in standardised units of the series.
SCALE_FLOOR = 1e-3
_LN10 = math.log(10.0)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What the score needs from the training part (one per training series).

    Attributes:
        center: Median of each error feature ``[F, C]`` (F = 1 or 2 features).
        scale: Robust scale of each feature ``[F, C]``.
        reference: Sorted calibration magnitudes ``[n, F, C]``.
        log_survival: ``log P(A > reference)`` at each of them ``[n, F, C]`` (ties share the value
            of their first occurrence), fitted once so that scoring only interpolates.
        tail_start: Magnitude where the exponential tail starts ``[F, C]``.
        tail_scale: Mean exceedance over ``tail_start`` ``[F, C]``.
        tail_mass: Calibration share beyond ``tail_start`` ``[F, C]``.
        modelled: Which channels are scored ``[C]`` (not constant in training).
        low: Training minimum per channel ``[C]`` (the range rule's).
        high: Training maximum per channel ``[C]``.
        one_sided: Which features count upwards only ``[F]`` (None: all but the first, the
            newest-point error then the window RMS).
    """

    center: np.ndarray
    scale: np.ndarray
    reference: np.ndarray
    log_survival: np.ndarray
    tail_start: np.ndarray
    tail_scale: np.ndarray
    tail_mass: np.ndarray
    modelled: np.ndarray
    low: np.ndarray
    high: np.ndarray
    one_sided: np.ndarray | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields as a dict of arrays (for saving)."""
        fields = dataclasses.fields(self)
        return {
            f.name: np.asarray(getattr(self, f.name))
            for f in fields
            if getattr(self, f.name) is not None
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Calibration:
        """Inverse of :meth:`arrays`."""
        return cls(
            **{
                f.name: np.asarray(arrays[f.name])
                for f in dataclasses.fields(cls)
                if f.name in arrays
            }
        )


def split_features(features: np.ndarray, channels: int) -> np.ndarray:
    """Error features ``[N, F * C]`` (newest-point error, then window RMS) as ``[N, F, C]``."""
    return features.reshape(features.shape[0], -1, channels)


def magnitudes(
    features: np.ndarray,
    center: np.ndarray,
    scale: np.ndarray,
    one_sided: np.ndarray | None = None,
) -> np.ndarray:
    """Robust standardised error magnitudes ``[N, F, C]`` of features ``[N, F, C]``.

    Signed errors count both ways, RMS errors (``one_sided [F]``) only upwards; by default the
    first feature is signed and the others one-sided (newest-point error, window RMS).
    """
    z = (features - center) / scale
    out = np.abs(z)
    upward = np.arange(z.shape[1]) > 0 if one_sided is None else np.asarray(one_sided, bool)
    out[:, upward] = np.maximum(z[:, upward], 0.0)
    return out


def clean_rows(scores: np.ndarray, cutoff: float, span: int) -> np.ndarray:
    """Which calibration rows ``[N]`` hold no point scoring at least ``cutoff`` (bool ``[N]``).

    Row ``t`` is the window whose newest point is ``t``; it holds points ``t - span + 1 .. t``, so a
    point that scores ``cutoff`` or more drops its own row and the ``span - 1`` after it (whose
    window errors and forecasts it disturbs). The robust calibration refits on the rows kept.

    Example:
        >>> clean_rows(np.array([0.1, 9.0, 0.2, 0.3, 0.1]), 4.0, 2).tolist()
        [True, False, False, True, True]
    """
    flagged = np.asarray(scores) >= cutoff
    held = np.convolve(flagged.astype(np.int64), np.ones(span, np.int64))[: flagged.shape[0]]
    return held == 0


def modelled_channels(values: np.ndarray) -> np.ndarray:
    """Which channels of the training values ``[T, C]`` the detector models ``[C]`` (bool).

    A channel that was constant in training (a mode flag, a command bit, a set point) carries no
    model of its variation: it is neither scored nor shown to the network, so its later changes are
    not by themselves anomalies and do not disturb the other channels' errors. When every channel
    was constant, all are modelled (any change is new).

    Example:
        >>> modelled_channels(np.array([[0.0, 1.0], [0.0, 2.0]])).tolist()
        [False, True]
        >>> modelled_channels(np.zeros((3, 2))).tolist()
        [True, True]
    """
    values = np.asarray(values)
    modelled = values.max(axis=0) > values.min(axis=0)
    return modelled if modelled.any() else np.ones_like(modelled)


def fit_calibration(
    features: np.ndarray,
    values: np.ndarray,
    *,
    tail_quantile: float,
    one_sided: np.ndarray | None = None,
) -> Calibration:
    """Fit the calibration on training errors ``[N, F, C]`` and training values ``[T, C]``.

    ``one_sided [F]`` says which features count upwards only (see :func:`magnitudes`).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> feats = rng.normal(size=(2000, 1, 1))
        >>> cal = fit_calibration(feats, rng.normal(size=(2000, 1)), tail_quantile=0.95)
        >>> s, _ = score_features(cal, np.array([[[0.0]], [[4.0]]]), np.zeros((2, 1)))
        >>> bool(s[0] < 0.2), bool(2.5 < s[1] < 6.0)
        (True, True)
    """
    features = np.asarray(features, np.float64)
    center = np.median(features, axis=0)
    mad = np.median(np.abs(features - center), axis=0)
    scale = np.maximum(1.4826 * mad, SCALE_FLOOR)
    if one_sided is not None:
        one_sided = np.asarray(one_sided, bool)
    a = np.sort(magnitudes(features, center, scale, one_sided), axis=0)
    n = a.shape[0]
    # Empirical survival at the sorted points, (n - i) / (n + 1) with i the first index of a tie.
    first = np.zeros(a.shape, np.int64)
    if n:
        new = np.ones(a.shape, bool)
        new[1:] = a[1:] > a[:-1]
        first = np.maximum.accumulate(np.where(new, np.arange(n)[:, None, None], 0), axis=0)
    log_survival = np.log((n - first) / (n + 1.0))
    start = np.quantile(a, tail_quantile, axis=0)
    above = a > start
    count = above.sum(axis=0)
    total = np.where(above, a - start, 0.0).sum(axis=0)
    tail_scale = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    tail_scale = np.maximum(tail_scale, 1e-3 * np.maximum(start, 1.0))
    mass = np.maximum(count / max(n, 1), 1.0 / (n + 1))
    low, high = values.min(axis=0), values.max(axis=0)
    modelled = modelled_channels(values)
    return Calibration(
        center=center,
        scale=scale,
        reference=a,
        log_survival=log_survival,
        tail_start=start,
        tail_scale=tail_scale,
        tail_mass=mass,
        modelled=modelled,
        low=low,
        high=high,
        one_sided=one_sided,
    )


def feature_decades(cal: Calibration, features: np.ndarray) -> np.ndarray:
    """``-log10 P(A > a)`` per point, feature and channel ``[N, F, C]`` (unmodelled channels: 0).

    The body is the calibration's empirical survival ``(n - i) / (n + 1)`` at its sorted points,
    interpolated in log space; beyond ``tail_start`` the exponential tail.
    """
    a = magnitudes(np.asarray(features, np.float64), cal.center, cal.scale, cal.one_sided)
    out = np.zeros(a.shape, np.float64)
    for f in range(a.shape[1]):
        for c in range(a.shape[2]):
            if not cal.modelled[c]:
                continue
            xs, log_s = cal.reference[:, f, c], cal.log_survival[:, f, c]
            x = a[:, f, c]
            # xs is non-decreasing and tied points share one value, so interpolation is exact.
            body = np.interp(x, xs, log_s, left=0.0, right=log_s[-1])
            start, scale = cal.tail_start[f, c], cal.tail_scale[f, c]
            tail = math.log(cal.tail_mass[f, c]) - (x - start) / scale
            out[:, f, c] = -np.minimum(np.where(x > start, tail, body), 0.0) / _LN10
    return out


@dataclasses.dataclass(frozen=True)
class Echo:
    """The echo rule's settings for one call of :func:`score_features`.

    Attributes:
        keep: Factor on the decades of a test that echoes an earlier point.
        window: Points of a window: a test at ``t`` looks back at ``t - window + 1 .. t - 1``.
        point_level: Which features ``[F]`` make a point's own score (newest-point and forecast
            errors), the score an echo is compared with.
        echoing: Which features ``[F]`` may echo an earlier point (the window RMS error).
        before: Point-level scores of the points before the first row (the latest last), as
            :func:`point_scores` gives them; missing ones count as 0.
    """

    keep: float
    window: int
    point_level: np.ndarray
    echoing: np.ndarray
    before: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


def _valid_decades(cal: Calibration, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows with a full window ``[N]`` and their decades ``[n_valid, F, C]``."""
    n = features.shape[0]
    valid = ~np.isnan(features).reshape(n, -1).any(axis=1)
    if not valid.any():
        return valid, np.zeros((0, *features.shape[1:]))
    return valid, feature_decades(cal, features if valid.all() else features[valid])


def _point_level(cal: Calibration, decades: np.ndarray, point_level: np.ndarray) -> np.ndarray:
    """Šidák-combined score of the point-level features of decades ``[n, F, C]``."""
    point = np.asarray(point_level, bool)
    tests = int(point.sum()) * max(int(np.sum(cal.modelled)), 1)
    return sidak(decades[:, point].max(axis=(1, 2), initial=0.0), tests)


def point_scores(cal: Calibration, features: np.ndarray, point_level: np.ndarray) -> np.ndarray:
    """The point-level score ``[N]`` of error features ``[N, F, C]`` (rows without a window: 0).

    What the echo rule compares a window-level test with (:class:`Echo`).
    """
    features = np.asarray(features, np.float64)
    valid, decades = _valid_decades(cal, features)
    out = np.zeros(features.shape[0])
    out[valid] = _point_level(cal, decades, point_level)
    return out


def _apply_echo(cal: Calibration, decades: np.ndarray, valid: np.ndarray, echo: Echo) -> np.ndarray:
    """Decades ``[n_valid, F, C]`` with the echoing tests scaled by ``echo.keep``."""
    lag = echo.window - 1
    point = np.zeros(valid.shape[0])
    point[valid] = _point_level(cal, decades, echo.point_level)
    before = np.asarray(echo.before, np.float64)[-lag:] if lag else np.zeros(0)
    history = np.concatenate([np.zeros(lag - before.shape[0]), before, point])
    prior = np.zeros(valid.shape[0])  # the largest point-level score of the lag points before
    for k in range(1, lag + 1):
        prior = np.maximum(prior, history[lag - k : lag - k + valid.shape[0]])
    which = np.asarray(echo.echoing, bool)
    out = decades.copy()
    echoes = out[:, which] <= prior[valid][:, None, None]
    out[:, which] = np.where(echoes, echo.keep * out[:, which], out[:, which])
    return out


def sidak(best: np.ndarray, tests: int) -> np.ndarray:
    """Šidák's rule: ``-log10(1 - (1 - p)^K)`` of the best test's decades ``-log10 p``.

    The probability that the best of ``K`` independent tests is at least this rare; for one test
    it is that test's score.

    Example:
        >>> sidak(np.array([3.0, 0.5]), 1).round(6).tolist()
        [3.0, 0.5]
        >>> float(sidak(np.array([3.0]), 2)[0].round(3))
        2.699
    """
    best = np.asarray(best, np.float64)
    if tests <= 1:
        return best
    log_p = -best * _LN10
    with np.errstate(divide="ignore"):
        inner = tests * np.log1p(-np.minimum(np.exp(log_p), 1.0 - 1e-16))
        combined = np.log(-np.expm1(inner))
    # Far in the tail, 1 - (1 - p)^K = K p to float precision.
    combined = np.where(best > 12, log_p + math.log(tests), combined)
    return np.maximum(-combined / _LN10, 0.0)


def score_features(
    cal: Calibration,
    features: np.ndarray,
    values: np.ndarray,
    *,
    range_rule: bool = False,
    range_margin: float = 0.05,
    echo: Echo | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(scores [N], channel scores [N, C])`` of error features ``[N, F, C]`` and values ``[N, C]``.

    Rows of NaN features (points without a full window) score 0. With ``echo``, the echo rule
    (:class:`Echo`). With ``range_rule``, values beyond the training range by more than
    ``range_margin`` of it score at least :data:`RANGE_DECADES` (and so does their channel).

    Example:
        >>> cal = fit_calibration(np.random.default_rng(0).normal(size=(2000, 2, 1)),
        ...                       np.zeros((2000, 1)), tail_quantile=0.95)
        >>> f = np.zeros((4, 2, 1)); f[1] = 9.0; f[2:, 1] = 9.0  # a spike, then its echo
        >>> point, window = np.array([True, False]), np.array([False, True])
        >>> rule = Echo(keep=0.0, window=4, point_level=point, echoing=window)
        >>> plain, _ = score_features(cal, f, np.zeros((4, 1)))
        >>> echoed, _ = score_features(cal, f, np.zeros((4, 1)), echo=rule)
        >>> bool(plain[1] == echoed[1]), bool(plain[3] > 3), bool(echoed[3] < 0.01)
        (True, True, True)
    """
    features = np.asarray(features, np.float64)
    n, n_features, n_channels = features.shape
    channels = np.zeros((n, n_channels), np.float64)
    scores = np.zeros(n, np.float64)
    valid, decades = _valid_decades(cal, features)
    if valid.any():
        if echo is not None and echo.keep < 1 and np.any(echo.echoing):
            decades = _apply_echo(cal, decades, valid, echo)
        for c in range(n_channels):
            channels[valid, c] = sidak(decades[:, :, c].max(axis=1), n_features)
        tests = n_features * max(int(np.sum(cal.modelled)), 1)
        scores[valid] = sidak(decades.max(axis=(1, 2)), tests)
    if range_rule:
        span = range_margin * (cal.high - cal.low)
        v = np.asarray(values, np.float64)
        with np.errstate(invalid="ignore"):
            outside = ((v > cal.high + span) | (v < cal.low - span)) & cal.modelled & valid[:, None]
        channels = np.where(outside, np.maximum(channels, RANGE_DECADES), channels)
        scores = np.where(outside.any(axis=1), np.maximum(scores, RANGE_DECADES), scores)
    return scores, channels
