"""``GRUAutoencoderDetector``: fit / score / predict / save / load / stream."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from h0 import _parallel as hp
from h0.anomaly._io import as_values
from h0.anomaly._model import STRATEGIES, EncDecAD
from h0.anomaly._scoring import (
    ScoringConfig,
    ScoringState,
    StageStream,
    alarms,
    run_stages,
)
from h0.anomaly._train import make_residual_fn, make_train_fns, reconstruction_loss

_FORMAT = "h0-gru-autoencoder-detector/1"

#: Settings :meth:`GRUAutoencoderDetector.with_scoring` may change (they leave the network alone).
SCORING_FIELDS = (
    "window_error",
    "normalize",
    "stats_window",
    "likelihood",
    "long_window",
    "short_window",
    "min_history",
    "onset",
    "onset_window",
    "range_rule",
    "range_margin",
    "range_warmup",
    "threshold",
    "threshold_quantile",
    "contamination",
    "min_threshold",
    "refractory",
)


def _optimizer(learning_rate: float) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(learning_rate))


@functools.lru_cache(maxsize=32)
def _compiled_train(model: EncDecAD, learning_rate: float) -> Callable[..., Any]:
    # Cached so that detectors with the same architecture reuse one compiled step.
    return make_train_fns(model, _optimizer(learning_rate))[0]


@functools.lru_cache(maxsize=32)
def _compiled_sharded_train(
    model: EncDecAD, learning_rate: float, mesh: Mesh
) -> Callable[..., Any]:
    # The same pure step as ``make_train_fns``, compiled by h0.parallel with replicated parameters
    # and the batch split over the mesh's 'data' axis (XLA inserts the gradient all-reduce).
    def loss_fn(params: Any, batch: Any, key: jax.Array) -> jax.Array:
        return reconstruction_loss(model, params, batch, key, deterministic=False)

    return hp.make_train_step(loss_fn, _optimizer(learning_rate), mesh)


def _mesh_size(mesh: Mesh) -> int:
    if hp.DATA_AXIS not in mesh.shape:
        raise ValueError(
            f"mesh must have a {hp.DATA_AXIS!r} axis (build it with h0.parallel.data_mesh()); got "
            f"axes {tuple(mesh.axis_names)}."
        )
    return int(mesh.shape[hp.DATA_AXIS])


@functools.lru_cache(maxsize=32)
def _compiled_residuals(model: EncDecAD, span: int) -> Callable[..., Any]:
    return make_residual_fn(model, span)


@dataclasses.dataclass(frozen=True)
class DetectorConfig:
    """Every setting of :class:`GRUAutoencoderDetector` (the constructor's keyword arguments).

    Model and training:
        window: Points per window (the encoder's input length).
        hidden: GRU hidden units.
        initial_state: The encoder's initial-state strategy: ``'zeros'``, ``'random'``,
            ``'learned'``, ``'learned_noisy'``, ``'per_sequence'`` (one learned state per training
            series) or ``'warmup'`` (burn in ``window // 4`` points from zeros).
        epochs: Passes over the training windows; 0 keeps the random initial weights (an
            untrained baseline: only the scoring stages are calibrated).
        batch_size: Windows per training step (the last incomplete batch of an epoch is dropped).
        learning_rate: Adam's learning rate.
        validation_fraction: Share of the training windows (the latest ones) held out from training;
            their errors seed the error statistics.
        seed: Seeds parameter initialisation, shuffling and training noise.

    Scoring (see ``h0.anomaly._scoring``):
        error_span: Newest points of each window whose mean signed error is the point's error.
        window_error: Also use each window's root-mean-square error as a feature.
        normalize, stats_window: Trailing Gaussian of the error features.
        likelihood, long_window, short_window, min_history: Anomaly-likelihood stage (off by
            default: on NAB it lowered the score, see ``docs/nab.md``).
        onset, onset_window: Keep a score only where it exceeds the last ``onset_window`` scores.
        range_rule, range_margin, range_warmup: Range rule.

    Decisions:
        threshold: Fixed alarm threshold on the score; ``None`` picks one at fit time.
        threshold_quantile: Without ``threshold``/``contamination``: the quantile of the scores of
            the training series (scored causally, as a stream) used as threshold, but at least
            ``min_threshold``.
        contamination: Expected share of anomalous training points; the threshold becomes the
            ``1 - contamination`` quantile of the training scores.
        min_threshold: Floor of the automatic threshold (1/3 is a tail probability of 1e-5).
        refractory: Points after an alarm during which no new alarm is raised.
        score_batch: Windows per jitted scoring call.
    """

    window: int = 32
    hidden: int = 24
    initial_state: str = "learned"
    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-3
    validation_fraction: float = 0.2
    seed: int = 0
    error_span: int = 1
    window_error: bool = True
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
    threshold: float | None = None
    threshold_quantile: float = 0.999
    contamination: float | None = None
    min_threshold: float = 1 / 3
    refractory: int = 100
    score_batch: int = 4096

    def __post_init__(self) -> None:
        positive = (
            "window",
            "hidden",
            "batch_size",
            "error_span",
            "stats_window",
            "long_window",
            "short_window",
            "onset_window",
            "score_batch",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if not isinstance(self.epochs, int | np.integer) or self.epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer; got {self.epochs!r}.")
        if self.window < 2:
            raise ValueError(f"window must be at least 2; got {self.window}.")
        if self.error_span > self.window - self.warmup_steps:
            raise ValueError(
                f"error_span={self.error_span} exceeds the reconstructed points per window "
                f"({self.window - self.warmup_steps})."
            )
        if self.initial_state not in STRATEGIES:
            raise ValueError(
                f"initial_state={self.initial_state!r} is not a strategy name; choose one of "
                f"{STRATEGIES}."
            )
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must lie in (0, 1); got {self.validation_fraction}."
            )
        if not 0 < self.threshold_quantile <= 1:
            raise ValueError(
                f"threshold_quantile must lie in (0, 1]; got {self.threshold_quantile}."
            )
        if self.contamination is not None and not 0 < self.contamination < 0.5:
            raise ValueError(f"contamination must lie in (0, 0.5); got {self.contamination}.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate}.")
        for name in ("min_history", "range_warmup", "refractory"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0; got {getattr(self, name)}.")
        if self.range_margin < 0:
            raise ValueError(f"range_margin must be >= 0; got {self.range_margin}.")

    @property
    def warmup_steps(self) -> int:
        """Burn-in steps of the ``'warmup'`` strategy (``window // 4``), else 0."""
        return self.window // 4 if self.initial_state == "warmup" else 0

    @property
    def min_length(self) -> int:
        """Fewest points a training series may have: ``2 * window``."""
        return 2 * self.window

    def scoring(self) -> ScoringConfig:
        """The scoring stages' settings."""
        names = {f.name for f in dataclasses.fields(ScoringConfig)}
        return ScoringConfig(**{k: v for k, v in dataclasses.asdict(self).items() if k in names})


def _windows(values: np.ndarray, window: int) -> np.ndarray:
    """All windows ``[T - window + 1, window, C]`` (a view)."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    return np.moveaxis(view, -1, 1)


class GRUAutoencoderDetector:
    """Reconstruction-based anomaly detector: a GRU encoder-decoder with a learned initial state.

    A GRU encoder reads each window of ``window`` points; its final carry starts a GRU decoder
    that reconstructs the window in reverse order (Malhotra et al. 2016, EncDec-AD). The
    encoder's initial carry comes from an h0 strategy (``initial_state``). The error of each
    window's newest point (and the window's RMS error), normalised by a trailing Gaussian, kept
    only at onsets and combined with a range rule (an optional anomaly-likelihood stage sits between
    the first two), gives one score per point in [0, 1] (higher: more anomalous); the score at ``t``
    uses data up to ``t`` only. See :class:`DetectorConfig` for every argument.

    ``score(X)`` treats ``X`` as the continuation of the series given to ``fit`` (the scoring
    stages' memory and the last ``window - 1`` points come from there); ``decision_scores_``
    holds the training series' own scores, computed causally as a stream.

    Example:
        >>> import numpy as np
        >>> t = np.arange(400)
        >>> x = np.sin(t / 5) + 0.05 * np.random.default_rng(0).normal(size=400)
        >>> det = GRUAutoencoderDetector(window=8, hidden=8, epochs=2, min_history=10)
        >>> det = det.fit(x[:300])
        >>> test = x[300:].copy(); test[50] += 3.0
        >>> scores = det.score(test)
        >>> scores.shape, int(np.argmax(scores))
        ((100,), 50)
    """

    def __init__(self, **kwargs: Any):
        self.config = DetectorConfig(**kwargs)
        self._fitted = False
        self.mesh_: Mesh | None = None

    def __repr__(self) -> str:
        changed = {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(DetectorConfig)
            if getattr(self.config, f.name) != f.default
        }
        return f"GRUAutoencoderDetector({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ----------------------------------------------------------------------------- building

    def _model(self) -> EncDecAD:
        return EncDecAD(
            features=self.n_features_,
            hidden=self.config.hidden,
            initial_state=self.config.initial_state,
            num_sequences=self.n_series_,
            warmup_steps=self.config.warmup_steps,
        )

    def _build_functions(self) -> None:
        model = self._model()
        self._residual_fn = _compiled_residuals(model, self.config.error_span)

    def _standardize(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean_) / self.scale_).astype(np.float32)

    def _as_list(self, X: Any) -> list[np.ndarray]:
        if isinstance(X, list | tuple) and X and not np.isscalar(X[0]):
            return [as_values(x, f"X[{i}]") for i, x in enumerate(X)]
        return [as_values(X)]

    # ----------------------------------------------------------------------------- fitting

    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        callback: Callable[[int, int, float], None] | None = None,
        mesh: Mesh | None = None,
    ) -> GRUAutoencoderDetector:
        """Train on normal data and calibrate the scoring stages.

        With a ``mesh`` (:func:`h0.parallel.data_mesh`) training is data parallel: parameters and
        optimiser state are replicated on every device, each batch of windows is split over the
        mesh's ``'data'`` axis, and XLA averages the gradients across devices, so the steps compute
        the same numbers as on one device (up to float32 summation order). ``batch_size`` must be
        a multiple of the number of devices; when there are fewer training windows than
        ``batch_size``, the batch is the number of windows rounded down to a multiple of the
        devices. The detector keeps the mesh (``mesh_``) and scores on it too.

        Args:
            X: One series ``[T]``/``[T, C]`` (array, Series, DataFrame) or a list of series with the
                same channels (trained together; with ``initial_state='per_sequence'`` each gets
                its own learned initial state, ids in list order).
            y: Ignored (sklearn convention).
            callback: Called after each epoch as ``callback(epoch, epochs, mean_loss)``.
            mesh: A device mesh with a ``'data'`` axis to train (and score) on; ``None``: the
                default device, exactly as without this argument.

        Returns:
            ``self``.

        Raises:
            ValueError: For bad shapes, NaN/inf, series shorter than ``2 * window``, a
                ``batch_size`` that does not divide over the mesh's devices.
        """
        del y
        cfg = self.config
        devices = 1 if mesh is None else _mesh_size(mesh)
        if cfg.batch_size % devices:
            raise ValueError(
                f"batch_size={cfg.batch_size} cannot be split over the mesh's {devices} devices: "
                f"it must be a multiple of {devices} (e.g. {cfg.batch_size // devices * devices or devices})."
            )
        series = self._as_list(X)
        channels = {s.shape[1] for s in series}
        if len(channels) != 1:
            raise ValueError(f"All series must have the same channels; got {sorted(channels)}.")
        for i, s in enumerate(series):
            if s.shape[0] < cfg.min_length:
                raise ValueError(
                    f"Series {i} has {s.shape[0]} points; fitting with window={cfg.window} needs at "
                    f"least {cfg.min_length} (2 x window)."
                )
        pooled = np.concatenate(series)
        self.mean_ = pooled.mean(axis=0)
        # A channel constant during training (NAB has such series) is only centred: any later
        # change then shows as reconstruction error.
        scale = pooled.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.n_features_ = pooled.shape[1]
        self.n_series_ = len(series)

        fit_windows, fit_ids, held_out = [], [], []
        for i, s in enumerate(series):
            w = _windows(self._standardize(s), cfg.window)
            n_val = max(2, round(cfg.validation_fraction * w.shape[0]))
            fit_windows.append(w[: w.shape[0] - n_val])
            fit_ids.append(np.full((w.shape[0] - n_val,), i, np.int32))
            held_out.append(w[w.shape[0] - n_val :])
        windows = np.concatenate(fit_windows)
        ids = np.concatenate(fit_ids)

        model = self._model()
        key = jax.random.key(cfg.seed)
        init_key, carry_key, train_key = jax.random.split(key, 3)
        batch = min(cfg.batch_size, windows.shape[0])
        batch -= batch % devices
        if batch == 0:
            raise ValueError(
                f"{windows.shape[0]} training windows cannot fill one batch split over "
                f"{devices} devices; use longer series or fewer devices."
            )
        params = model.init(
            {"params": init_key, "carry": carry_key},
            jnp.asarray(windows[:batch]),
            jnp.asarray(ids[:batch]),
        )["params"]
        opt_state = _optimizer(cfg.learning_rate).init(params)
        # One compiled step for fixed [batch, window, C] shapes, whatever the series' length.
        if mesh is None:
            train_step = _compiled_train(model, float(cfg.learning_rate))
            place = lambda b: jax.tree.map(jnp.asarray, b)
        else:
            train_step = _compiled_sharded_train(model, float(cfg.learning_rate), mesh)
            params, opt_state = hp.replicate(params, mesh), hp.replicate(opt_state, mesh)
            place = lambda b: hp.shard_batch(b, mesh)
        rng = np.random.default_rng(cfg.seed)
        steps = windows.shape[0] // batch
        self.loss_history_ = []
        for epoch in range(cfg.epochs):
            order = rng.permutation(windows.shape[0])[: steps * batch].reshape(steps, batch)
            keys = jax.random.split(jax.random.fold_in(train_key, epoch), steps)
            losses = []
            for step in range(steps):
                params, opt_state, step_loss = train_step(
                    params, opt_state, place((windows[order[step]], ids[order[step]])), keys[step]
                )
                losses.append(step_loss)
            loss = jnp.mean(jnp.stack(losses))
            self.loss_history_.append(float(loss))
            if callback is not None:
                callback(epoch + 1, cfg.epochs, float(loss))
        self.params_ = params
        self.mesh_ = mesh
        self._build_functions()

        self._train_values = series
        self._held_features = [self._features(w, i) for i, w in enumerate(held_out)]
        self._train_features = []
        for i, s in enumerate(series):
            features = np.full((s.shape[0], 2 * self.n_features_), np.nan)
            features[cfg.window - 1 :] = self._features(
                _windows(self._standardize(s), cfg.window), i
            )
            self._train_features.append(features)
        self._calibrate()
        self._fitted = True
        return self

    def _calibrate(self) -> None:
        """Run the scoring stages over the training series: their end states, scores, threshold."""
        cfg = self.config
        scoring = cfg.scoring()
        self._states: list[ScoringState] = []
        self._tails: list[np.ndarray] = []  # the last window - 1 standardised training points
        calibration = []
        for i, s in enumerate(self._train_values):
            state = ScoringState.initial(self._select(self._held_features[i]), self.n_features_)
            scores, state = run_stages(state, self._select(self._train_features[i]), s, scoring)
            self._tails.append(self._standardize(s[s.shape[0] - (cfg.window - 1) :]))
            self._states.append(state)
            calibration.append(scores)
        self.decision_scores_ = calibration[0] if len(calibration) == 1 else calibration
        pooled_scores = np.concatenate(calibration)
        if cfg.threshold is not None:
            self.threshold_ = float(cfg.threshold)
        elif cfg.contamination is not None:
            self.threshold_ = float(np.quantile(pooled_scores, 1 - cfg.contamination))
        else:
            self.threshold_ = max(
                float(np.quantile(pooled_scores, cfg.threshold_quantile)), cfg.min_threshold
            )

    def _select(self, features: np.ndarray) -> np.ndarray:
        """The feature columns the configuration uses (newest-point error, window error)."""
        return features if self.config.window_error else features[:, : self.n_features_]

    def with_scoring(self, **changes: Any) -> GRUAutoencoderDetector:
        """A copy with other scoring or alarm settings, sharing the trained network.

        The scoring stages are re-run over the stored training errors (no retraining), so the
        contribution of each stage can be measured on the same network.

        Args:
            **changes: Any of :data:`SCORING_FIELDS` (e.g. ``likelihood=False``).

        Returns:
            A new fitted detector.

        Raises:
            ValueError: For a setting that would change the network or its training.
        """
        self._check_fitted()
        bad = sorted(set(changes) - set(SCORING_FIELDS))
        if bad:
            raise ValueError(
                f"with_scoring cannot change {bad}: they change the network; choose among "
                f"{SCORING_FIELDS}."
            )
        other = copy.copy(self)
        other.config = dataclasses.replace(self.config, **changes)
        other._build_functions()
        other._calibrate()
        return other

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("This detector is not fitted yet: call fit(X) first.")

    def _features(
        self, windows: np.ndarray, series: int | np.ndarray, mesh: Mesh | None = None
    ) -> np.ndarray:
        """Error features ``[n, 2C]`` (newest-point error, window RMS) in fixed-size jitted batches.

        ``series`` is one training-series index for all windows, or one per window. With a mesh
        (``mesh`` or the one the detector was fitted on) each batch of windows is split over its
        devices and the parameters are replicated; the jitted function follows the shardings.
        """
        n = windows.shape[0]
        mesh = self.mesh_ if mesh is None else mesh
        devices = 1 if mesh is None else _mesh_size(mesh)
        ids_all = np.broadcast_to(np.asarray(series, np.int32), (n,))
        # Calls have a few fixed shapes (powers of two up to score_batch, rounded up to a
        # multiple of the devices), so few compilations.
        size = min(self.config.score_batch, 1 << max(n - 1, 0).bit_length())
        size = -(-size // devices) * devices
        params = self.params_ if mesh is None else hp.replicate(self.params_, mesh)
        out = []
        for start in range(0, n, size):
            chunk = np.asarray(windows[start : start + size], np.float32)
            ids = ids_all[start : start + size]
            real = chunk.shape[0]
            if real < size:
                chunk = np.concatenate(
                    [chunk, np.zeros((size - real, *chunk.shape[1:]), np.float32)]
                )
                ids = np.concatenate([ids, np.zeros((size - real,), np.int32)])
            if mesh is None:
                batch = (jnp.asarray(chunk), jnp.asarray(ids))
            else:
                batch = hp.shard_batch((chunk, ids), mesh)
            recent, whole = self._residual_fn(params, *batch)
            out.append(np.concatenate([np.asarray(recent)[:real], np.asarray(whole)[:real]], 1))
        dims = 2 * self.n_features_
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, dims))

    # ----------------------------------------------------------------------------- scoring

    def _check_series(self, X: Any, series: int) -> np.ndarray:
        self._check_fitted()
        values = as_values(X)
        if values.shape[1] != self.n_features_:
            raise ValueError(
                f"X has {values.shape[1]} channels but the detector was fitted on "
                f"{self.n_features_}."
            )
        if not 0 <= series < self.n_series_:
            raise ValueError(
                f"series={series} is not a training series index in [0, {self.n_series_})."
            )
        return values

    def score(self, X: Any, *, series: int = 0) -> np.ndarray:
        """One anomaly score per point of ``X`` (higher: more anomalous), causally.

        Args:
            X: The points after the training series ``series`` (``[T]`` or ``[T, C]``).
            series: Which training series ``X`` continues (for several training series).

        Returns:
            Scores ``[T]``, float64, mostly in [0, 1] (see the scoring stages).
        """
        scores, _ = self._score(self._check_series(X, series), series)
        return scores

    decision_function = score

    def fit_score(self, X: Any, *, train_size: int, **fit_kwargs: Any) -> np.ndarray:
        """Fit on the first ``train_size`` points of ``X`` and score all of ``X`` causally.

        This is how NAB runs a detector: train on the probationary period, then score every point
        with no look-ahead. The first ``train_size`` scores are :attr:`decision_scores_`.

        Args:
            X: One series ``[T]`` or ``[T, C]``.
            train_size: Points to train on (the first ones).
            **fit_kwargs: Passed to :meth:`fit` (e.g. ``callback``).

        Returns:
            Scores ``[T]``.
        """
        values = as_values(X)
        if not 0 < train_size < values.shape[0]:
            raise ValueError(
                f"train_size must lie in (0, {values.shape[0]}) for X of {values.shape[0]} points; "
                f"got {train_size}."
            )
        self.fit(values[:train_size], **fit_kwargs)
        return np.concatenate([self.decision_scores_, self.score(values[train_size:])])

    def _continuation(self, values: np.ndarray, series: int) -> np.ndarray:
        """The windows ending at each point of ``values``, which continue training series ``series``."""
        if values.shape[0] == 0:
            return np.zeros((0, self.config.window, self.n_features_), np.float32)
        joined = np.concatenate([self._tails[series], self._standardize(values)])
        return _windows(joined, self.config.window)

    def _score(self, values: np.ndarray, series: int) -> tuple[np.ndarray, ScoringState]:
        state = self._states[series]
        if values.shape[0] == 0:
            return np.zeros((0,)), state
        features = self._select(self._features(self._continuation(values, series), series))
        return run_stages(state, features, values, self.config.scoring())

    def score_many(self, X: Any, *, mesh: Mesh | None = None) -> list[np.ndarray]:
        """Score a fleet: ``X[i]`` continues training series ``i``; one network pass for all.

        The windows of every series are batched together (each with its series' id, so a
        ``'per_sequence'`` detector encodes it from that series' learned initial state) and, with
        a mesh, split over its devices; the causal scoring stages then run per series. The result
        equals ``[score(x, series=i) for i, x in enumerate(X)]`` (up to float32 summation order).

        Args:
            X: A list of ``n_series_`` series (``[T_i]`` or ``[T_i, C]``; lengths may differ).
            mesh: A device mesh with a ``'data'`` axis; default: the one ``fit`` used, if any.

        Returns:
            One score array ``[T_i]`` per series.

        Example:
            >>> import numpy as np
            >>> rng = np.random.default_rng(0)
            >>> fleet = [np.sin(np.arange(120) / (3 + i)) + 0.05 * rng.normal(size=120) for i in range(3)]
            >>> det = GRUAutoencoderDetector(window=8, hidden=8, epochs=1, initial_state="per_sequence")
            >>> det = det.fit([s[:80] for s in fleet])
            >>> scores = det.score_many([s[80:] for s in fleet])
            >>> [s.shape for s in scores]
            [(40,), (40,), (40,)]
            >>> bool(np.allclose(scores[2], det.score(fleet[2][80:], series=2), atol=1e-6))
            True
        """
        self._check_fitted()
        if not isinstance(X, list | tuple) or len(X) != self.n_series_:
            got = f"a list of {len(X)}" if isinstance(X, list | tuple) else type(X).__name__
            raise ValueError(
                f"X must be a list of {self.n_series_} series (one per training series, in the "
                f"order given to fit); got {got}."
            )
        values = []
        for i, x in enumerate(X):
            v = as_values(x, f"X[{i}]")
            if v.shape[1] != self.n_features_:
                raise ValueError(
                    f"X[{i}] has {v.shape[1]} channels but the detector was fitted on "
                    f"{self.n_features_}."
                )
            values.append(v)
        windows = [self._continuation(v, i) for i, v in enumerate(values)]
        counts = [w.shape[0] for w in windows]
        ids = np.repeat(np.arange(len(values), dtype=np.int32), counts)
        features = self._select(self._features(np.concatenate(windows), ids, mesh))
        parts = np.split(features, np.cumsum(counts)[:-1])
        scoring = self.config.scoring()
        return [
            run_stages(self._states[i], f, v, scoring)[0] if v.shape[0] else np.zeros((0,))
            for i, (f, v) in enumerate(zip(parts, values, strict=True))
        ]

    def predict(self, X: Any, *, series: int = 0) -> np.ndarray:
        """0/1 per point: 1 where an alarm is raised (score >= ``threshold_``, refractory applied)."""
        return alarms(self.score(X, series=series), self.threshold_, self.config.refractory).astype(
            np.int64
        )

    def stream(self, *, series: int = 0) -> DetectorStream:
        """A stream that scores the points after training series ``series`` one at a time."""
        self._check_fitted()
        if not 0 <= series < self.n_series_:
            raise ValueError(
                f"series={series} is not a training series index in [0, {self.n_series_})."
            )
        return DetectorStream(self, series)

    # ----------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to directory ``path`` (orbax checkpoint of the parameters + JSON + npz), atomically.

        The npz holds the standardisation and the training series with their reconstruction
        errors, from which :meth:`load` re-runs the (deterministic) scoring stages.

        Everything is written to a temporary directory beside ``path`` and renamed into place;
        an existing ``path`` is replaced only once the new one is complete.
        """
        import orbax.checkpoint as ocp

        self._check_fitted()
        path = Path(path).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            with ocp.PyTreeCheckpointer() as ckpt:
                ckpt.save(tmp / "params", jax.tree.map(np.asarray, self.params_))
            meta = {
                "format": _FORMAT,
                "config": dataclasses.asdict(self.config),
                "n_features": self.n_features_,
                "n_series": self.n_series_,
                "threshold": self.threshold_,
                "loss_history": self.loss_history_,
            }
            (tmp / "detector.json").write_text(json.dumps(meta, indent=1))
            arrays: dict[str, np.ndarray] = {"mean": self.mean_, "scale": self.scale_}
            for i in range(self.n_series_):
                arrays[f"s{i}_values"] = self._train_values[i]
                arrays[f"s{i}_held_features"] = self._held_features[i]
                arrays[f"s{i}_train_features"] = self._train_features[i]
            np.savez(tmp / "scoring.npz", **arrays)
            old = None
            if path.exists():
                old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
                path.rename(old)
            tmp.rename(path)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GRUAutoencoderDetector:
        """Load a detector written by :meth:`save`."""
        import orbax.checkpoint as ocp

        path = Path(path).absolute()
        meta_file = path / "detector.json"
        if not meta_file.is_file():
            raise ValueError(f"{path} is not a saved detector (no detector.json).")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(
                f"{path}: unknown format {meta.get('format')!r}; expected {_FORMAT!r}."
            )
        det = cls(**meta["config"])
        det.n_features_ = int(meta["n_features"])
        det.n_series_ = int(meta["n_series"])
        det.loss_history_ = list(meta["loss_history"])
        with ocp.PyTreeCheckpointer() as ckpt:
            params = ckpt.restore(path / "params")
        det.params_ = jax.tree.map(jnp.asarray, params)
        with np.load(path / "scoring.npz") as arrays:
            det.mean_, det.scale_ = arrays["mean"], arrays["scale"]
            n = det.n_series_
            det._train_values = [arrays[f"s{i}_values"] for i in range(n)]
            det._held_features = [arrays[f"s{i}_held_features"] for i in range(n)]
            det._train_features = [arrays[f"s{i}_train_features"] for i in range(n)]
        # The scoring stages are numpy and deterministic: re-running them restores their state.
        det._calibrate()
        det._build_functions()
        det._fitted = True
        return det


class DetectorStream:
    """Scores one new point at a time; the scores equal :meth:`GRUAutoencoderDetector.score`.

    It keeps the last ``window - 1`` points and the scoring stages' memory between calls. Each
    window is encoded from the strategy's initial state, as in training (the model is windowed:
    the recurrent carry restarts at every window).

    Attributes:
        is_anomaly: Whether the last update raised an alarm (threshold and refractory period).
    """

    def __init__(self, detector: GRUAutoencoderDetector, series: int):
        self._det = detector
        self._series = series
        state = detector._states[series]
        self._buffer = np.array(detector._tails[series], np.float32)
        self._stages = StageStream(state, detector.config.scoring())
        self._ids = jnp.full((1,), series, jnp.int32)
        self._since = 1 << 30
        self.is_anomaly = False

    def update(self, value: Any) -> float:
        """Score one new point (a number, or ``C`` numbers) and return its score."""
        det = self._det
        v = np.asarray(value, np.float64).reshape(-1)
        if v.shape != (det.n_features_,) or not np.isfinite(v).all():
            raise ValueError(
                f"value must be {det.n_features_} finite number(s); got {np.asarray(value)!r}."
            )
        standardized = det._standardize(v[None])
        window = np.concatenate([self._buffer, standardized])
        self._buffer = window[1:]
        recent, whole = det._residual_fn(det.params_, window[None], self._ids)
        features = np.concatenate([np.asarray(recent)[0], np.asarray(whole)[0]])
        score = self._stages.update(det._select(features[None])[0], v)
        self._since += 1
        self.is_anomaly = bool(score >= det.threshold_ and self._since > det.config.refractory)
        if self.is_anomaly:
            self._since = 0
        return score
