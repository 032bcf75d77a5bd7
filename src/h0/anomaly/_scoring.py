"""The scoring stages: from reconstruction errors to one causal anomaly score per point.

Each stage is a pure function over numpy arrays that starts from a :class:`ScoringState` and
returns the state after the last point, so that a batch of points, the same points cut into
several batches, and :class:`StageStream` (one point at a time) give the same scores. The score at
time ``t`` uses only what was seen up to ``t``.

Stages, in order (each can be switched off in :class:`ScoringConfig`):

1. **Error features** (computed by the network, see ``h0.anomaly._train.make_residual_fn``): the
   signed reconstruction error of the newest ``error_span`` points of the window that ends at
   ``t``, and, with ``window_error``, the window's root-mean-square error, per channel.
2. **Normalisation** (``normalize``): a Gaussian fitted to the error features of the last
   ``stats_window`` points (seeded with held-out windows, then trailing along the stream, so it
   follows drift) gives the Mahalanobis distance ``d`` of the new features and its tail probability
   ``p = P(chi2_D > d^2)``, computed in log space. The stage outputs the surprise
   ``L / (L + 10)`` of ``L = -log10(p)`` decades (``p = 1e-5`` gives 1/3, ``p = 1e-10`` gives 1/2):
   strictly increasing and below 1 however small ``p`` is, so that the most extreme points stay
   ordered (no ties at a ceiling, which a clipped ``min(1, L / 10)`` had) and the range rule's 1
   stays above them. Off: the raw squared error.
3. **Anomaly likelihood** (``likelihood``; Ahmad et al. 2017): the mean of the last
   ``short_window`` surprises is compared with the mean ``mu`` and standard deviation ``sigma``
   of the last ``long_window`` surprises; the tail probability ``Q((short_mean - mu) / sigma)``
   is small when the recent past is unusual compared with the long run. Until
   ``min_history`` points have been seen it is 0.5. The score is the surprise of ``Q``.
4. **Onsets** (``onset``): a point keeps its score only if the score exceeds every score of the
   previous ``onset_window`` points (by a relative ``ONSET_TOLERANCE``); otherwise it scores 0. Whatever threshold is later applied,
   an excursion above it then raises the score at its onset (and where it climbs higher) rather
   than at each of its points: the threshold-free form of a refractory period. NAB rewards only
   the first detection in a window and charges every further point above the threshold outside
   one as a false positive.
5. **Range rule** (``range_rule``): a value beyond the running min/max by more than
   ``range_margin`` times the running range (after ``range_warmup`` points) scores 1, above every
   score of the stages before it (which stay below 1).

Alarms (:func:`alarms`) are points whose score reaches the threshold, at least ``refractory``
points after the previous alarm, so a long excursion is reported by its onset.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque

import numpy as np
from scipy import special

#: Surprise of a tail probability ``p`` with ``L = -log10(p)``: ``L / (L + SURPRISE_DECADES)``.
SURPRISE_DECADES = 10.0
_LN10 = math.log(10.0)
#: An onset must exceed the previous scores by this relative margin (so that rounding cannot
#: make batch and streaming scoring disagree on a near-tie).
ONSET_TOLERANCE = 1e-9


@dataclasses.dataclass(frozen=True)
class ScoringConfig:
    """Settings of the scoring stages (see the module docstring).

    Attributes:
        normalize: Fit a trailing Gaussian to the error features (stage 2).
        stats_window: Points the Gaussian is fitted on.
        likelihood: Apply the anomaly-likelihood stage (stage 3).
        long_window: Points of the likelihood's long-run distribution.
        short_window: Points of the likelihood's short moving average.
        min_history: Points seen before the likelihood departs from 0.5.
        onset: Keep only scores above every score of the last ``onset_window`` points (stage 4).
        onset_window: Points an onset must outscore.
        range_rule: Apply the range rule (stage 5).
        range_margin: Fraction of the running range a value must exceed the min/max by.
        range_warmup: Points seen before the range rule may fire.
        sigma_floor: Smallest standard deviation the likelihood divides by.
    """

    normalize: bool = True
    stats_window: int = 4000
    likelihood: bool = False
    long_window: int = 8000
    short_window: int = 10
    min_history: int = 100
    onset: bool = True
    onset_window: int = 400
    range_rule: bool = True
    range_margin: float = 0.05
    range_warmup: int = 100
    sigma_floor: float = 1e-3


@dataclasses.dataclass
class ScoringState:
    """What the stages remember: trailing histories, the running range, the last alarm.

    Attributes:
        features: Error features of the last ``stats_window`` points ``[n, D]``.
        surprises: Stage-2 outputs of the last ``max(long_window, short_window)`` points ``[n]``.
        range_min: Running minimum per channel ``[C]`` (``+inf`` before any value).
        range_max: Running maximum per channel ``[C]`` (``-inf`` before any value).
        seen: Values seen by the range rule.
        recent: Scores before the onset stage of the last ``onset_window`` points ``[n]``.
    """

    features: np.ndarray
    surprises: np.ndarray
    range_min: np.ndarray
    range_max: np.ndarray
    seen: int = 0
    recent: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0,), np.float64))

    @classmethod
    def initial(cls, held_out: np.ndarray, channels: int) -> ScoringState:
        """The state before the stream starts: the held-out windows' error features only."""
        held_out = np.asarray(held_out, np.float64)
        return cls(
            features=held_out,
            surprises=np.zeros((0,), np.float64),
            range_min=np.full((channels,), np.inf),
            range_max=np.full((channels,), -np.inf),
        )

    def copy(self) -> ScoringState:
        """A deep copy."""
        return ScoringState(
            self.features.copy(),
            self.surprises.copy(),
            self.range_min.copy(),
            self.range_max.copy(),
            self.seen,
            self.recent.copy(),
        )


def _window_sums(values: np.ndarray, ends: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of ``values[max(0, e - width):e]`` for each end ``e`` (prefix sums)."""
    prefix = np.concatenate([np.zeros((1, *values.shape[1:])), np.cumsum(values, axis=0)])
    starts = np.maximum(ends - width, 0)
    return prefix[ends] - prefix[starts], (ends - starts).astype(np.float64)


def _surprise_from_log_p(log_p: np.ndarray) -> np.ndarray:
    """Surprise ``L / (L + 10)`` of ``L = -log10(p)`` decades, from ``log p``.

    Strictly increasing and below 1 however small ``p`` is (``p = 1e-5``: 1/3, ``p = 1e-10``: 1/2).
    """
    decades = np.maximum(-np.asarray(log_p, np.float64) / _LN10, 0.0)
    return decades / (decades + SURPRISE_DECADES)


def _onset_bar(previous: np.ndarray | float) -> np.ndarray | float:
    """What a score must exceed to count as an onset, given the previous scores' maximum."""
    finite = np.where(np.isfinite(previous), previous, 0.0)
    return previous + ONSET_TOLERANCE * np.abs(finite) + 1e-12


def log_chi2_sf(d2: np.ndarray, dims: int) -> np.ndarray:
    """``log P(chi2_dims > d2)``, accurate far into the tail (no underflow to ``log 0``).

    Example:
        >>> float(log_chi2_sf(np.array(2000.0), 2))  # exactly -d2 / 2 for two dimensions
        -1000.0
    """
    d2 = np.maximum(np.asarray(d2, np.float64), 0.0)
    a, x = dims / 2.0, d2 / 2.0
    with np.errstate(divide="ignore"):
        direct = np.log(special.gammaincc(a, x))
    # Far tail: log Gamma(a, x) / Gamma(a) ~ (a - 1) log x - x - log Gamma(a) + log(1 + (a - 1) / x).
    safe = np.maximum(x, 1.0)
    tail = (a - 1.0) * np.log(safe) - safe - special.gammaln(a) + np.log1p((a - 1.0) / safe)
    return np.where(direct > -600.0, direct, tail)


def gaussian_surprise(
    history: np.ndarray, features: np.ndarray, stats_window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Surprise of each feature vector under a Gaussian fitted to the trailing ``stats_window``.

    Point ``i`` is compared with the ``stats_window`` feature vectors before it (from ``history``
    and then ``features[:i]``).

    Args:
        history: Earlier feature vectors ``[n0, D]`` (the oldest first).
        features: New feature vectors ``[N, D]``.
        stats_window: Trailing points the Gaussian is fitted on.

    Returns:
        ``(surprise[N] in [0, 1], new_history)`` with ``new_history`` the last ``stats_window``
        vectors of ``history`` and ``features``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> history = rng.normal(size=(500, 1))
        >>> s, _ = gaussian_surprise(history, np.array([[0.0], [8.0]]), 1000)
        >>> bool(s[0] < 0.05), bool(s[1] > 0.5)
        (True, True)
    """
    everything = np.concatenate([history, features]).astype(np.float64)
    n0, dims = history.shape[0], everything.shape[1]
    ends = n0 + np.arange(features.shape[0])
    sums, counts = _window_sums(everything, ends, stats_window)
    outer = everything[:, :, None] * everything[:, None, :]
    squares, _ = _window_sums(outer, ends, stats_window)
    counts = np.maximum(counts, 1.0)
    mean = sums / counts[:, None]
    cov = squares / counts[:, None, None] - mean[:, :, None] * mean[:, None, :]
    cov *= (counts / np.maximum(counts - 1.0, 1.0))[:, None, None]
    ridge = 1e-6 * (np.trace(cov, axis1=1, axis2=2) / dims) + 1e-12
    cov += ridge[:, None, None] * np.eye(dims)
    delta = features - mean
    d2 = np.einsum("nd,nd->n", delta, np.linalg.solve(cov, delta[:, :, None])[:, :, 0])
    surprise = _surprise_from_log_p(log_chi2_sf(d2, dims))
    surprise[ends < 2] = 0.0  # no variance from fewer than two points
    return surprise, everything[max(0, everything.shape[0] - stats_window) :]


def likelihood_surprise(
    history: np.ndarray, values: np.ndarray, cfg: ScoringConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly likelihood (Ahmad et al. 2017) of each point, as a surprise in [0, 1].

    At point ``t`` the mean of the last ``short_window`` values (including ``t``) is compared with
    the mean and standard deviation of the last ``long_window`` values (including ``t``):
    ``Q = 1 - Phi((short_mean - mean) / max(std, sigma_floor))``; the result is the surprise of
    ``Q`` (``L / (L + 10)`` with ``L = -log10(Q)``), and that of ``Q = 0.5`` until ``min_history``
    values were seen.

    Args:
        history: Earlier values (the oldest first).
        values: New values ``[N]``.
        cfg: The stage's settings.

    Returns:
        ``(surprise[N], new_history)``.

    Example:
        >>> cfg = ScoringConfig(long_window=100, short_window=3, min_history=10)
        >>> history = np.tile([0.1, 0.2], 50)
        >>> s, _ = likelihood_surprise(history, np.array([0.15, 0.9, 0.9, 0.9]), cfg)
        >>> [round(float(v), 2) for v in s]
        [0.03, 0.21, 0.33, 0.42]
    """
    everything = np.concatenate([history, values]).astype(np.float64)
    ends = history.shape[0] + np.arange(values.shape[0]) + 1
    sums, counts = _window_sums(everything, ends, cfg.long_window)
    squares, _ = _window_sums(everything**2, ends, cfg.long_window)
    mean = sums / counts
    std = np.sqrt(np.maximum(squares / counts - mean**2, 0.0))
    short, short_counts = _window_sums(everything, ends, cfg.short_window)
    z = (short / short_counts - mean) / np.maximum(std, cfg.sigma_floor)
    surprise = _surprise_from_log_p(special.log_ndtr(-z))
    surprise[ends < cfg.min_history] = _surprise_from_log_p(np.log(0.5))
    keep = max(cfg.long_window, cfg.short_window)
    return surprise, everything[max(0, everything.shape[0] - keep) :]


def onset_filter(
    history: np.ndarray, scores: np.ndarray, onset_window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep each score that exceeds every score of the ``onset_window`` points before it, else 0.

    Args:
        history: Earlier scores (the oldest first; only the last ``onset_window`` matter).
        scores: New scores ``[N]``.
        onset_window: Points a kept score must outscore.

    Returns:
        ``(kept[N], new_history)`` with ``new_history`` the last ``onset_window`` scores (before
        filtering) of ``history`` and ``scores``.

    Example:
        >>> s = np.array([0.1, 0.8, 0.7, 0.9, 0.2, 0.1, 0.05, 0.3])
        >>> kept, _ = onset_filter(np.zeros(0), s, onset_window=3)
        >>> kept.tolist()
        [0.1, 0.8, 0.0, 0.9, 0.0, 0.0, 0.0, 0.3]
    """
    history = np.asarray(history, np.float64)[max(0, len(history) - onset_window) :]
    everything = np.concatenate([np.full((onset_window,), -np.inf), history, scores])
    start = onset_window + history.shape[0]
    view = np.lib.stride_tricks.sliding_window_view(everything[:-1], onset_window)
    previous = view[start - onset_window :].max(axis=1)
    kept = np.where(scores > _onset_bar(previous), scores, 0.0)
    tail = everything[max(onset_window, everything.shape[0] - onset_window) :]
    return kept, tail


def range_flags(
    state_min: np.ndarray, state_max: np.ndarray, seen: int, values: np.ndarray, cfg: ScoringConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which values lie beyond the running range by more than ``range_margin`` of it.

    Args:
        state_min: Running minimum per channel before ``values`` (``+inf`` if none).
        state_max: Running maximum per channel before ``values`` (``-inf`` if none).
        seen: Values seen before.
        values: New values ``[N, C]``.
        cfg: The rule's settings.

    Returns:
        ``(flags[N] bool, new_min[C], new_max[C])``.

    Example:
        >>> cfg = ScoringConfig(range_margin=0.1, range_warmup=2)
        >>> x = np.array([[0.0], [10.0], [10.5], [12.0], [-2.0]])
        >>> flags, lo, hi = range_flags(np.full(1, np.inf), np.full(1, -np.inf), 0, x, cfg)
        >>> flags.tolist(), float(lo[0]), float(hi[0])
        ([False, False, False, True, True], -2.0, 12.0)
    """
    lo = np.minimum.accumulate(np.concatenate([state_min[None], values]), axis=0)
    hi = np.maximum.accumulate(np.concatenate([state_max[None], values]), axis=0)
    before_lo, before_hi = lo[:-1], hi[:-1]
    margin = cfg.range_margin * (before_hi - before_lo)
    with np.errstate(invalid="ignore"):
        outside = (values > before_hi + margin) | (values < before_lo - margin)
    enough = seen + np.arange(values.shape[0]) >= max(cfg.range_warmup, 1)
    return outside.any(axis=1) & enough, lo[-1], hi[-1]


def run_stages(
    state: ScoringState, features: np.ndarray, values: np.ndarray, cfg: ScoringConfig
) -> tuple[np.ndarray, ScoringState]:
    """Score points from their error features and values, starting from ``state``.

    Args:
        state: The stages' memory before these points (not modified).
        features: Error features ``[N, D]``; rows of NaN mark points without a full window
            (they score 0 and do not enter the error or likelihood histories).
        values: The points' values ``[N, C]`` (any units) for the range rule.
        cfg: The stages' settings.

    Returns:
        ``(scores[N], state_after)``.
    """
    n = values.shape[0]
    scores = np.zeros((n,), np.float64)
    new = state.copy()
    valid = ~np.isnan(features).any(axis=1)
    chosen = features[valid].astype(np.float64)
    if cfg.normalize:
        surprise, new.features = gaussian_surprise(state.features, chosen, cfg.stats_window)
    else:
        surprise = np.sum(chosen**2, axis=1)
    if cfg.likelihood:
        final, new.surprises = likelihood_surprise(state.surprises, surprise, cfg)
    else:
        final = surprise
    scores[valid] = final
    if cfg.onset:
        scores, new.recent = onset_filter(state.recent, scores, cfg.onset_window)
    if cfg.range_rule:
        flags, new.range_min, new.range_max = range_flags(
            state.range_min, state.range_max, state.seen, values, cfg
        )
        scores[flags] = np.maximum(scores[flags], 1.0)
    new.seen = state.seen + n
    return scores, new


def alarms(
    scores: np.ndarray, threshold: float, refractory: int, since: int = 1 << 30
) -> np.ndarray:
    """Alarm points: score >= ``threshold`` and more than ``refractory`` points after the last alarm.

    Args:
        scores: Scores ``[N]``.
        threshold: The alarm threshold.
        refractory: Points after an alarm during which no new alarm is raised.
        since: Points since the last alarm before ``scores[0]``.

    Returns:
        Boolean ``[N]``.

    Example:
        >>> alarms(np.array([0, 1, 1, 1, 0, 1, 1]), 0.5, refractory=2).astype(int).tolist()
        [0, 1, 0, 0, 0, 1, 0]
    """
    out = np.zeros(scores.shape, bool)
    last = -since
    for i in np.flatnonzero(scores >= threshold):
        if i - last > refractory:
            out[i] = True
            last = i
    return out


class StageStream:
    """The scoring stages one point at a time, with running sums; agrees with :func:`run_stages`.

    Example:
        >>> cfg = ScoringConfig(min_history=2, range_warmup=2)
        >>> rng = np.random.default_rng(0)
        >>> state = ScoringState.initial(rng.normal(size=(50, 2)), channels=1)
        >>> feats, vals = rng.normal(size=(20, 2)), rng.normal(size=(20, 1))
        >>> batch, _ = run_stages(state, feats, vals, cfg)
        >>> stream = StageStream(state, cfg)
        >>> one = [stream.update(f, v) for f, v in zip(feats, vals)]
        >>> bool(np.allclose(batch, one))
        True
    """

    def __init__(self, state: ScoringState, cfg: ScoringConfig):
        self.cfg = cfg
        history = np.asarray(state.features, np.float64)[-cfg.stats_window :]
        self._features = deque(history)
        dims = state.features.shape[1]
        self._sum = np.sum(history, axis=0).reshape(dims)
        outer = np.einsum("nd,ne->de", history, history)
        self._outer = outer.reshape(dims, dims)
        self._dims = dims
        keep = max(cfg.long_window, cfg.short_window)
        self._surprises = deque(np.asarray(state.surprises, np.float64)[-keep:])
        self._keep = keep
        self._long_sum = float(np.sum(state.surprises[-cfg.long_window :]))
        self._long_sq = float(np.sum(state.surprises[-cfg.long_window :] ** 2))
        self._count = len(self._surprises)
        self._min = state.range_min.astype(np.float64).copy()
        self._max = state.range_max.astype(np.float64).copy()
        self._seen = state.seen
        self._updates = 0
        self._recent = deque(
            np.asarray(state.recent, np.float64)[-cfg.onset_window :], maxlen=cfg.onset_window
        )

    def _gaussian(self, f: np.ndarray) -> float:
        n = len(self._features)
        if n < 2:
            surprise = 0.0
        else:
            mean = self._sum / n
            cov = (self._outer / n - np.outer(mean, mean)) * (n / (n - 1.0))
            ridge = 1e-6 * (np.trace(cov) / self._dims) + 1e-12
            cov = cov + ridge * np.eye(self._dims)
            delta = f - mean
            d2 = float(delta @ np.linalg.solve(cov, delta))
            surprise = float(_surprise_from_log_p(log_chi2_sf(np.asarray(d2), self._dims)))
        self._features.append(f)
        self._sum += f
        self._outer += np.outer(f, f)
        if len(self._features) > self.cfg.stats_window:
            old = self._features.popleft()
            self._sum -= old
            self._outer -= np.outer(old, old)
        self._updates += 1
        if self._updates % self.cfg.stats_window == 0:  # bound the rounding drift of the sums
            history = np.array(self._features)
            self._sum = history.sum(axis=0)
            self._outer = history.T @ history
        return surprise

    def _likelihood(self, a: float) -> float:
        cfg = self.cfg
        self._surprises.append(a)
        self._count += 1
        self._long_sum += a
        self._long_sq += a * a
        if len(self._surprises) > cfg.long_window:
            old = self._surprises[-cfg.long_window - 1]
            self._long_sum -= old
            self._long_sq -= old * old
        if len(self._surprises) > self._keep:
            self._surprises.popleft()
        if self._count % cfg.long_window == 0:  # bound the rounding drift of the sums
            recent = np.array(self._surprises)[-cfg.long_window :]
            self._long_sum, self._long_sq = float(recent.sum()), float((recent**2).sum())
        if self._count < cfg.min_history:
            return float(_surprise_from_log_p(np.log(0.5)))
        n = min(self._count, cfg.long_window)
        mean = self._long_sum / n
        std = math.sqrt(max(self._long_sq / n - mean * mean, 0.0))
        k = min(cfg.short_window, len(self._surprises))
        short = sum(self._surprises[-i] for i in range(1, k + 1)) / k

        z = (short - mean) / max(std, cfg.sigma_floor)
        return float(_surprise_from_log_p(special.log_ndtr(-z)))

    def update(self, features: np.ndarray | None, value: np.ndarray) -> float:
        """Score one point from its error features (``None``: no full window yet) and value."""
        cfg = self.cfg
        score = 0.0
        if features is not None:
            f = np.asarray(features, np.float64).reshape(self._dims)
            a = self._gaussian(f) if cfg.normalize else float(np.sum(f**2))
            score = self._likelihood(a) if cfg.likelihood else a
        if cfg.onset:
            previous = max(self._recent, default=-math.inf)
            self._recent.append(score)
            score = score if score > _onset_bar(previous) else 0.0
        if cfg.range_rule:
            v = np.asarray(value, np.float64).reshape(self._min.shape)
            margin = cfg.range_margin * (self._max - self._min)
            with np.errstate(invalid="ignore"):
                outside = bool(np.any((v > self._max + margin) | (v < self._min - margin)))
            if outside and self._seen >= max(cfg.range_warmup, 1):
                score = max(score, 1.0)
            self._min = np.minimum(self._min, v)
            self._max = np.maximum(self._max, v)
        self._seen += 1
        return score
