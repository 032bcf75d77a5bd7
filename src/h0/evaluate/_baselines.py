"""Baseline anomaly detectors behind one causal interface.

Every detector has ``score(values, train_end) -> scores``: ``values`` is ``[T]`` or ``[T, C]``,
the detector may fit on ``values[:train_end]``, and the score at ``t`` depends on
``values[: t + 1]`` only (sliding windows *end* at ``t``; the first windows are padded by
repeating ``values[0]``). Higher scores mean more anomalous.

Example:
    >>> import numpy as np
    >>> values = np.r_[np.zeros(50), 5.0, np.zeros(9)] + np.arange(60) % 2
    >>> scores = RollingZScore(window=20).score(values, train_end=30)
    >>> int(np.argmax(scores))
    50
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Detector",
    "IsolationForestDetector",
    "PCADetector",
    "RandomDetector",
    "RollingZScore",
    "sliding_windows",
]


@runtime_checkable
class Detector(Protocol):
    """A causal anomaly detector: ``score(values [T] or [T, C], train_end) -> scores [T]``."""

    def score(self, values: np.ndarray, train_end: int) -> np.ndarray:
        """Anomaly score per time step; may fit on ``values[:train_end]``; causal."""
        ...


def _check(values: np.ndarray, train_end: int, min_train: int = 1) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"values must have shape [T] or [T, C] with T >= 1, got {x.shape}")
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"values must be finite, got a non-finite value at row {row}")
    if not min_train <= train_end <= x.shape[0]:
        raise ValueError(f"train_end must be in [{min_train}, {x.shape[0]}], got {train_end}")
    return x


def sliding_windows(values: np.ndarray, window: int) -> np.ndarray:
    """Causal sliding windows: row ``t`` holds ``values[t - window + 1 : t + 1]``, flattened.

    The first ``window - 1`` rows are padded at the front by repeating ``values[0]``.

    Args:
        values: Array ``[T]`` or ``[T, C]``.
        window: Window length ``>= 1``.

    Returns:
        Array ``[T, window * C]`` (time-major within a row).

    Raises:
        ValueError: If ``window < 1``.

    Example:
        >>> sliding_windows(np.array([1.0, 2.0, 3.0]), 2).tolist()
        [[1.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.asarray(values, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    padded = np.concatenate([np.repeat(x[:1], window - 1, axis=0), x], axis=0)
    view = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0)  # [T, C, window]
    return np.ascontiguousarray(view.transpose(0, 2, 1)).reshape(len(x), -1)


def _standardise(x: np.ndarray, train_end: int) -> np.ndarray:
    mean = x[:train_end].mean(axis=0)
    std = x[:train_end].std(axis=0)
    return (x - mean) / np.where(std > 0, std, 1.0)


@dataclass(frozen=True)
class RandomDetector:
    """Uniform random scores in ``[0, 1)``, reproducible from ``seed`` (a chance-level floor).

    Attributes:
        seed: Seed of the generator.

    Example:
        >>> a = RandomDetector(seed=1).score(np.zeros(3), train_end=1)
        >>> bool(np.all(a == RandomDetector(seed=1).score(np.ones(3), train_end=1)))
        True
    """

    seed: int = 0

    def score(self, values: np.ndarray, train_end: int) -> np.ndarray:
        """Random scores, one per time step (independent of the values).

        Args:
            values: Array ``[T]`` or ``[T, C]``.
            train_end: Unused beyond validation.

        Returns:
            Scores ``[T]``.

        Raises:
            ValueError: On invalid values or ``train_end``.
        """
        x = _check(values, train_end)
        return np.random.default_rng(self.seed).random(x.shape[0])


@dataclass(frozen=True)
class RollingZScore:
    """Absolute z-score of each value against the ``window`` values before it.

    The score at ``t`` is ``max_c |x[t, c] - mean_c| / std_c`` with the mean and the population
    standard deviation of ``x[t - window : t, c]`` (fewer rows near the start); it is 0 while
    fewer than ``min_periods`` past rows exist, and ``std`` is floored at ``eps``.

    Attributes:
        window: Number of past values in the reference window.
        min_periods: Past values needed before scoring.
        eps: Floor of the standard deviation.
    """

    window: int = 100
    min_periods: int = 2
    eps: float = 1e-8

    def score(self, values: np.ndarray, train_end: int) -> np.ndarray:
        """Rolling z-scores (no fitting; ``train_end`` is only validated).

        Args:
            values: Array ``[T]`` or ``[T, C]``.
            train_end: Unused beyond validation.

        Returns:
            Scores ``[T]``.

        Raises:
            ValueError: On invalid values, ``train_end`` or ``window < 1``.

        Example:
            >>> s = RollingZScore(window=3).score(np.array([1.0, 2.0, 3.0, 10.0]), 1)
            >>> round(float(s[3]), 4)  # |10 - 2| / sqrt(2/3)
            9.798
        """
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        x = _check(values, train_end)
        n = x.shape[0]
        zero = np.zeros((1, x.shape[1]))
        c1 = np.concatenate([zero, np.cumsum(x, axis=0)])
        c2 = np.concatenate([zero, np.cumsum(x * x, axis=0)])
        t = np.arange(n)
        start = np.maximum(t - self.window, 0)
        count = (t - start)[:, None].astype(np.float64)
        safe = np.maximum(count, 1.0)
        mean = (c1[t] - c1[start]) / safe
        var = np.maximum((c2[t] - c2[start]) / safe - mean**2, 0.0)
        z = np.abs(x - mean) / np.maximum(np.sqrt(var), self.eps)
        z[count[:, 0] < self.min_periods] = 0.0
        return z.max(axis=1)


@dataclass(frozen=True)
class IsolationForestDetector:
    """Isolation Forest (scikit-learn) over causal sliding windows, fit on the training part.

    Values are standardised with the training mean and standard deviation; the forest is fit
    on the windows ending before ``train_end``; the score is the negated
    ``score_samples`` (higher = more anomalous).

    Attributes:
        window: Sliding-window length.
        n_estimators: Number of trees.
        seed: Random state of the forest.
    """

    window: int = 32
    n_estimators: int = 100
    seed: int = 0

    def score(self, values: np.ndarray, train_end: int) -> np.ndarray:
        """Isolation-Forest anomaly scores.

        Args:
            values: Array ``[T]`` or ``[T, C]``.
            train_end: Rows ``[0, train_end)`` are used for fitting (at least 2).

        Returns:
            Scores ``[T]``.

        Raises:
            ValueError: On invalid values, ``train_end`` or ``window``.

        Example:
            >>> x = np.sin(np.arange(300) / 5.0)
            >>> x[250] = 4.0
            >>> s = IsolationForestDetector(window=4).score(x, 200)
            >>> 250 <= 200 + int(np.argmax(s[200:])) < 254
            True
        """
        from sklearn.ensemble import IsolationForest

        x = _standardise(_check(values, train_end, min_train=2), train_end)
        windows = sliding_windows(x, self.window)
        forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed)
        forest.fit(windows[:train_end])
        return -forest.score_samples(windows)


@dataclass(frozen=True)
class PCADetector:
    """PCA reconstruction error (scikit-learn) over causal sliding windows.

    Values are standardised with the training statistics; PCA is fit on the windows ending
    before ``train_end``; the score is the mean squared reconstruction error of the window
    ending at ``t`` (with constant training data: the squared distance to the training mean).

    Attributes:
        window: Sliding-window length.
        n_components: Components kept (an int, or a variance fraction in ``(0, 1)``); capped at
            the number of training windows and features.
    """

    window: int = 32
    n_components: int | float = 0.95

    def score(self, values: np.ndarray, train_end: int) -> np.ndarray:
        """PCA reconstruction-error scores.

        Args:
            values: Array ``[T]`` or ``[T, C]``.
            train_end: Rows ``[0, train_end)`` are used for fitting (at least 2).

        Returns:
            Scores ``[T]``.

        Raises:
            ValueError: On invalid values, ``train_end`` or ``window``.

        Example:
            >>> x = np.sin(np.arange(300) / 5.0)
            >>> x[250] = 4.0
            >>> s = PCADetector(window=8, n_components=2).score(x, 200)
            >>> 250 <= int(np.argmax(s)) < 258
            True
        """
        from sklearn.decomposition import PCA

        x = _standardise(_check(values, train_end, min_train=2), train_end)
        windows = sliding_windows(x, self.window)
        train = windows[:train_end]
        if not np.any(train.var(axis=0) > 0):  # constant training data: distance to its mean
            return np.mean((windows - train.mean(axis=0)) ** 2, axis=1)
        components = self.n_components
        if isinstance(components, int):
            components = min(components, train.shape[0], train.shape[1])
        pca = PCA(n_components=components, svd_solver="full").fit(train)
        recon = pca.inverse_transform(pca.transform(windows))
        return np.mean((windows - recon) ** 2, axis=1)
