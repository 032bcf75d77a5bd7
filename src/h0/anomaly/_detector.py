"""``GRUAutoencoderDetector``: an sklearn-style estimator (fit / score / predict / alarms / stream).

Three outputs, three contracts (sklearn and PyOD conventions):

- :meth:`~GRUAutoencoderDetector.score` (= ``decision_function``): a dense, causal score per point,
  higher is more anomalous, in decades of rarity against the training part's errors (see
  ``h0.anomaly._scoring``); any quantile is a usable threshold;
- :meth:`~GRUAutoencoderDetector.predict`: 0/1 per point, 1 = the point is anomalous
  (``score >= threshold_``, with hysteresis so a long segment stays flagged);
- :meth:`~GRUAutoencoderDetector.alarms`: alarm events (onset, end, peak, channel) with a
  refractory period, what a streaming operator wants.

Settings live in ``h0.anomaly._config`` (one owner); the estimator's keyword arguments, its
``get_params`` and its validation are generated from there.
"""

from __future__ import annotations

import copy
import inspect
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from sklearn.base import BaseEstimator

from h0 import _parallel as hp
from h0._typing import PyTree
from h0.anomaly import _config
from h0.anomaly._adapt import score_adaptively
from h0.anomaly._alarms import AlarmRule, decide
from h0.anomaly._config import DetectorConfig
from h0.anomaly._io import as_values
from h0.anomaly._model import EncDecAD
from h0.anomaly._names import detector_strategy
from h0.anomaly._reportdata import Event
from h0.anomaly._scoring import (
    Calibration,
    Echo,
    clean_rows,
    fit_calibration,
    modelled_channels,
    point_scores,
    score_features,
    split_features,
)
from h0.anomaly._train import make_residual_fn, optimizer, train_step

_FORMAT = "h0-gru-autoencoder-detector/5"
#: Older formats :meth:`GRUAutoencoderDetector.load` still reads, with the settings they predate:
#: format 2 had no forecasting head, formats 2 and 3 no spread feature (format 4 made it the
#: default, so a file that does not name it was scored without it), and formats 2-4 were scored
#: without robust history where they do not name it (format 5 made it the default).
_LEGACY_FORMATS = {
    "h0-gru-autoencoder-detector/2": {
        "forecast_horizon": 0,
        "spread_error": False,
        "robust_history": False,
    },
    "h0-gru-autoencoder-detector/3": {"spread_error": False, "robust_history": False},
    "h0-gru-autoencoder-detector/4": {"robust_history": False},
}
#: The kind of output directory :meth:`GRUAutoencoderDetector.save` writes (see ``h0._atomic``).
DETECTOR_KIND = "detector"
#: Standardised values are clipped to this magnitude before the network (float32 stays finite).
INPUT_CLIP = 1e6
#: Fewest held-out windows the calibration uses alone; with fewer, it uses every training window.
MIN_HELD_OUT = 200


def _mesh_size(mesh: Mesh) -> int:
    if hp.DATA_AXIS not in mesh.shape:
        raise ValueError(
            f"mesh must have a {hp.DATA_AXIS!r} axis (build it with h0.parallel.data_mesh()); got "
            f"axes {tuple(mesh.axis_names)}."
        )
    return int(mesh.shape[hp.DATA_AXIS])


def windows_of(values: np.ndarray, window: int) -> np.ndarray:
    """All windows ``[T - window + 1, window, C]`` of ``values [T, C]`` (a view)."""
    view = np.lib.stride_tricks.sliding_window_view(values, window, axis=0)
    return np.moveaxis(view, -1, 1)


def initial_params(
    model: EncDecAD, init_key: jax.Array, carry_key: jax.Array, windows: np.ndarray, ids: np.ndarray
) -> PyTree:
    """The network's initial parameters: ``model.init`` as one compiled program.

    Run eagerly, Flax's ``init`` compiles each operation on its own (the initialisers, the
    scan, every matmul): dozens of small compilations, about 3 s of a first ``fit`` on 2 cores.
    Under ``jit`` it is one program with the same values.
    """
    init = jax.jit(lambda rngs, w, i: model.init(rngs, w, i)["params"])
    return init({"params": init_key, "carry": carry_key}, jnp.asarray(windows), jnp.asarray(ids))


def _check_training(series: list[np.ndarray], window: int) -> None:
    channels = {s.shape[1] for s in series}
    if len(channels) != 1:
        raise ValueError(f"All series must have the same channels; got {sorted(channels)}.")
    for i, s in enumerate(series):
        if s.shape[0] < 2 * window:
            raise ValueError(
                f"Series {i} has {s.shape[0]} points; fitting with window={window} needs at "
                f"least {2 * window} (2 x window)."
            )


def _epochs(cfg: DetectorConfig, n_windows: int, batch: int, train_key: jax.Array):
    """``(epoch, order [steps, batch], keys [steps])`` for each epoch: one owner of the shuffle.

    The same for a detector trained alone and as one of an ensemble (:func:`fit_independent`).
    """
    rng = np.random.default_rng(cfg.training.seed)
    steps = n_windows // batch
    for epoch in range(cfg.training.epochs):
        order = rng.permutation(n_windows)[: steps * batch].reshape(steps, batch)
        yield epoch, order, jax.random.split(jax.random.fold_in(train_key, epoch), steps)


class GRUAutoencoderDetector(BaseEstimator):
    """Reconstruction-based anomaly detector: a GRU encoder-decoder with an h0 initial state.

    A GRU encoder reads each window of ``window`` points; its final carry starts a GRU decoder
    that reconstructs the window in reverse order (Malhotra et al. 2016, EncDec-AD). The
    encoder's initial carry comes from an h0 strategy (``initial_state``). The error of each
    window's newest point and the window's RMS error, judged against the errors of the training
    part (robust scale, empirical distribution with an exponential tail, channels combined by
    Šidák's rule), give one dense score per point (higher: more anomalous) that uses data up to
    that point only. Every keyword argument is a setting of ``h0.anomaly._config`` (see
    ``docs/detect.md``); they are stored unchanged (``get_params``, ``set_params`` and
    ``sklearn.base.clone`` work) and validated when the detector is built and when it is fitted.

    ``score(X)`` treats ``X`` as the continuation of the series given to ``fit``.

    Attributes:
        params_: The network's parameters.
        threshold_: The threshold ``predict`` applies (float).
        decision_scores_: Scores of the training part, all training series concatenated.
        series_decision_scores_: The same, one array per training series.
        calibrations_: The score's calibration, one per training series.
        mean_: Mean of each training series' values ``[n_series, C]`` (each series is standardised
            by its own training part).
        scale_: Their standard deviations ``[n_series, C]`` (1 for a constant channel).
        calibration_kept_: Per training series, which calibration rows the calibration was
            fitted on ``[N_i]`` (all, unless ``calibration_cutoff`` left some out).
        modelled_: Which channels each series' score and network model ``[n_series, C]``: those
            not constant in training (all, if every one was); the others are held at their
            training value at the network's input and left out of the score.
        n_features_: Channels ``C``.
        n_series_: Training series.
        loss_history_: Mean training loss per epoch.
        mesh_: The mesh ``fit`` trained on, or ``None``.

    Example:
        >>> import numpy as np
        >>> t = np.arange(400)
        >>> x = np.sin(t / 5) + 0.05 * np.random.default_rng(0).normal(size=400)
        >>> det = GRUAutoencoderDetector(window=8, hidden=8, epochs=2).fit(x[:300])
        >>> test = x[300:].copy(); test[50] += 3.0
        >>> scores = det.score(test)
        >>> scores.shape, int(np.argmax(scores)), int(det.predict(test)[50])
        ((100,), 50, 1)
    """

    def __init__(self, **settings: Any):
        names, defaults = _config.setting_names(), _config.defaults()
        unknown = sorted(set(settings) - set(names))
        if unknown:
            raise TypeError(
                f"unknown detector setting(s) {unknown}; the settings are {list(names)}."
            )
        for name in names:
            setattr(self, name, settings.get(name, defaults[name]))
        _ = self.config  # validate now, so a bad setting fails before any work

    @property
    def config(self) -> DetectorConfig:
        """The current settings, validated and nested by concern."""
        return DetectorConfig.from_flat(
            **{n: getattr(self, n, d) for n, d in _config.defaults().items()}
        )

    @classmethod
    def _get_param_names(cls) -> list[str]:
        # sklearn's get_params / clone: the settings of h0.anomaly._config (read each time).
        return sorted(_config.setting_names())

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "params_")

    # ----------------------------------------------------------------------------- building

    def _model(self, n_series: int | None = None) -> EncDecAD:
        cfg = self.config.model
        strategy = detector_strategy(
            cfg.initial_state, window=cfg.window, num_sequences=n_series or self.n_series_
        )
        return EncDecAD(
            features=self.n_features_,
            hidden=cfg.hidden,
            strategy=strategy,
            forecast_horizon=cfg.forecast_horizon,
            context=cfg.context,
        )

    def _standardize(self, values: np.ndarray, series: int) -> np.ndarray:
        """The network's input: standardised values, unmodelled channels held at their mean."""
        z = (values - self.mean_[series]) / self.scale_[series]
        # A channel constant in training is not scored (``modelled_channels``); shown to the
        # network, its change (a set point moving to 20) pushed every other channel's error up
        # for as long as it lasted: 73% of a 24-channel test series flagged, AUC-PR 0.54 -> 0.24
        # (benchmarks/wide_channels.py).
        z = np.where(self.modelled_[series], z, 0.0)
        return np.clip(z, -INPUT_CLIP, INPUT_CLIP).astype(np.float32)

    def _padded(self, z: np.ndarray) -> np.ndarray:
        """Standardised points ``z [T, C]`` after ``context`` rows of NaN (unknown history)."""
        context = self.config.model.context
        if not context:
            return z
        return np.concatenate([np.full((context, z.shape[1]), np.nan, np.float32), z])

    def _model_inputs(self, z: np.ndarray) -> np.ndarray:
        """The model's inputs ``[T - window + 1, span, C]`` over standardised points ``z [T, C]``.

        Row ``p`` ends at point ``p + window - 1``. Each input starts with the ``context`` points
        before its window (``initial_state='conditional'``), NaN before the series' start.
        """
        return windows_of(self._padded(z), self.config.model.span)

    @staticmethod
    def _as_list(X: Any) -> list[np.ndarray]:
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
        """Train on normal data and calibrate the score and the threshold.

        With a ``mesh`` (:func:`h0.parallel.data_mesh`) training is data parallel: parameters and
        optimiser state are replicated on every device, each batch of windows is split over the
        mesh's ``'data'`` axis, and XLA averages the gradients across devices, so the steps compute
        the same numbers as on one device (up to float32 summation order). ``batch_size`` must be
        a multiple of the number of devices.

        Args:
            X: One series ``[T]``/``[T, C]`` (array, Series, DataFrame) or a list of series with the
                same channels (trained together; with ``initial_state='per_sequence'`` each gets
                its own learned initial state, ids in list order).
            y: Ignored (sklearn convention).
            callback: Called after each epoch as ``callback(epoch, epochs, mean_loss)``.
            mesh: A device mesh with a ``'data'`` axis to train (and score) on.

        Returns:
            ``self``.

        Raises:
            ValueError: For bad shapes, NaN/inf, series shorter than ``2 * window``, a
                ``batch_size`` that does not divide over the mesh's devices, or a training run
                whose loss stops being finite (naming ``learning_rate``).
        """
        del y
        cfg = self.config
        window = cfg.model.window
        devices = 1 if mesh is None else _mesh_size(mesh)
        batch_size = cfg.training.batch_size
        if batch_size % devices:
            raise ValueError(
                f"batch_size={batch_size} cannot be split over the mesh's {devices} devices: "
                f"it must be a multiple of {devices} (e.g. {batch_size // devices * devices or devices})."
            )
        series = self._as_list(X)
        _check_training(series, window)
        self._standardization(series)

        windows, ids = self._training_windows(series)
        model = self._model(len(series))
        init_key, carry_key, train_key = jax.random.split(jax.random.key(cfg.training.seed), 3)
        batch = min(batch_size, windows.shape[0])
        batch -= batch % devices
        if batch == 0:
            raise ValueError(
                f"{windows.shape[0]} training windows cannot fill one batch split over "
                f"{devices} devices; use longer series or fewer devices."
            )
        params = initial_params(model, init_key, carry_key, windows[:batch], ids[:batch])
        lr = float(cfg.training.learning_rate)
        opt_state = jax.jit(optimizer(lr).init)(params)
        step_fn = train_step(model, lr, mesh, float(cfg.training.forecast_weight))
        if mesh is None:
            place = lambda b: jax.tree.map(jnp.asarray, b)
        else:
            params, opt_state = hp.replicate(params, mesh), hp.replicate(opt_state, mesh)
            place = lambda b: hp.shard_batch(b, mesh)
        epochs = cfg.training.epochs
        self.loss_history_: list[float] = []
        for epoch, order, keys in _epochs(cfg, windows.shape[0], batch, train_key):
            losses = []
            # Keys as host data, wrapped per step: indexing the device key array costs a
            # dispatch per step, a large share of a small model's step.
            key_data, key_impl = np.asarray(jax.random.key_data(keys)), jax.random.key_impl(keys)
            for step in range(order.shape[0]):
                params, opt_state, step_loss = step_fn(
                    params,
                    opt_state,
                    place((windows[order[step]], ids[order[step]])),
                    jax.random.wrap_key_data(key_data[step], impl=key_impl),
                )
                losses.append(step_loss)
            loss = float(np.mean(np.asarray(jnp.stack(losses))))
            self._record_loss(loss, epoch, lr)
            if callback is not None:
                callback(epoch + 1, epochs, loss)
        self._finish(series, params, mesh)
        return self

    def _standardization(self, series: list[np.ndarray]) -> None:
        """Each series' mean and scale (of its training part); channel and series counts."""
        # Each series is standardised by its own training part: in a fleet of differently scaled
        # series this alone was worth +0.078 AUC-PR (docs/study: NAB's realAWSCloudwatch as one
        # model). A channel constant during training is held at its value (see ``_standardize``).
        self.mean_ = np.stack([s.mean(axis=0) for s in series])
        scale = np.stack([s.std(axis=0) for s in series])
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.modelled_ = np.stack([modelled_channels(s) for s in series])
        self.n_features_ = series[0].shape[1]
        self.n_features_in_ = self.n_features_
        self.n_series_ = len(series)

    def _training_windows(self, series: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The windows trained on (all but each series' latest held-out share) and their ids."""
        fraction = self.config.training.validation_fraction
        fit_windows, fit_ids, self._held_out = [], [], []
        for i, s in enumerate(series):
            w = self._model_inputs(self._standardize(s, i))
            n_val = max(2, round(fraction * w.shape[0]))
            fit_windows.append(w[: w.shape[0] - n_val])
            fit_ids.append(np.full((w.shape[0] - n_val,), i, np.int32))
            self._held_out.append(n_val)
        return np.concatenate(fit_windows), np.concatenate(fit_ids)

    def _record_loss(self, loss: float, epoch: int, lr: float) -> None:
        if not np.isfinite(loss):
            raise ValueError(
                f"training diverged: the loss is {loss} after epoch {epoch + 1}; lower "
                f"learning_rate (now {lr:g})."
            )
        self.loss_history_.append(loss)

    def _finish(self, series: list[np.ndarray], params: Any, mesh: Mesh | None) -> None:
        """Keep the trained parameters, compute the training errors, calibrate."""
        window = self.config.model.window
        self.params_ = params
        self.mesh_ = mesh
        self._train_values = series
        self._train_features = []
        for i, s in enumerate(series):
            features = np.full((s.shape[0], self._blocks() * self.n_features_), np.nan)
            features[window - 1 :] = self._features(self._model_inputs(self._standardize(s, i)), i)
            self._train_features.append(features)
        self._calibrate()

    def _calibrate(self) -> None:
        """Fit each series' calibration on its training errors; the threshold; the alarm states."""
        cfg = self.config
        window = cfg.model.window
        self.calibrations_: list[Calibration] = []
        self.series_decision_scores_: list[np.ndarray] = []
        self._train_channel_scores: list[np.ndarray] = []
        # The last span - 1 standardised training points (NaN before the start, see _model_inputs).
        self._tails: list[np.ndarray] = []
        # The echo rule's point-level scores of the last window - 1 training points.
        self._echo_tails: list[np.ndarray] = []
        reference, clean_reference = [], []
        cutoff = cfg.scoring.calibration_cutoff
        self.calibration_kept_: list[np.ndarray] = []
        for i, values in enumerate(self._train_values):
            features = self._select(self._train_features[i])
            usable = features[window - 1 :]
            held = self._held_out[i]
            rows = usable[-held:] if held >= MIN_HELD_OUT else usable
            cal = self._fit_calibration(rows, values)
            scores, channel_scores = self._score_features(cal, features, values)
            keep = np.ones(rows.shape[0], bool)
            if cutoff is not None:
                keep = clean_rows(scores[-rows.shape[0] :], cutoff, cfg.model.span)
                if keep.all() or keep.sum() < min(MIN_HELD_OUT, rows.shape[0] // 2):
                    keep[:] = True  # nothing to leave out, or too little would be left
                else:
                    cal = self._fit_calibration(rows[keep], values)
                    scores, channel_scores = self._score_features(cal, features, values)
            self.calibration_kept_.append(keep)
            self._echo_tails.append(self._echo_tail(cal, features))
            self._train_channel_scores.append(channel_scores)
            self.calibrations_.append(cal)
            self.series_decision_scores_.append(scores)
            reference.append(scores[-rows.shape[0] :])
            clean_reference.append(reference[-1][keep])
            self._tails.append(self._tail(self._standardize(values, i)))
        self.decision_scores_ = np.concatenate(self.series_decision_scores_)
        # A given contamination is a share of all training points (PyOD's meaning); the default
        # quantile rule reads the points the calibration kept.
        pooled, clean = np.concatenate(reference), np.concatenate(clean_reference)
        alarms = cfg.alarms
        if alarms.threshold is not None:
            self.threshold_ = float(alarms.threshold)
        else:
            # The quantile of the calibration points' scores, but at least what that quantile is
            # under the fitted error model (-log10(1 - q) decades): a few hundred calibration
            # points cannot resolve a 0.9999 quantile.
            given = alarms.contamination is not None
            q = 1 - alarms.contamination if given else alarms.threshold_quantile
            floor = -math.log10(max(1 - q, 1e-300))
            self.threshold_ = max(float(np.quantile(pooled if given else clean, q)), floor)
        # Robust history replaces points from the default threshold on, whatever the alarm
        # settings, so that the score does not depend on them.
        default_q = _config.defaults()["threshold_quantile"]
        self._robust_cutoff = max(float(np.quantile(clean, default_q)), -math.log10(1 - default_q))
        rule = self.alarm_rule_
        self._alarm_states = [decide(rule, s)[3] for s in self.series_decision_scores_]

    def _fit_calibration(self, rows: np.ndarray, values: np.ndarray) -> Calibration:
        """The calibration of feature rows ``[N, F * C]`` of a training series ``values``."""
        return fit_calibration(
            split_features(rows, self.n_features_),
            values,
            tail_quantile=self.config.scoring.tail_quantile,
            one_sided=self._one_sided(),
        )

    def _residual_fn(self) -> Any:
        """The jitted error features of this detector's network (:func:`make_residual_fn`)."""
        scoring = self.config.scoring
        return make_residual_fn(
            self._model(),
            scoring.error_span,
            scoring.window_trim,
            scoring.spread_error,
            scoring.level_error,
            scoring.roughness_error,
        )

    def _tail(self, z: np.ndarray) -> np.ndarray:
        """The last ``span - 1`` points of ``z``, NaN-padded at the front when ``z`` is shorter."""
        need = self.config.model.span - 1
        if z.shape[0] < need:
            z = np.concatenate([np.full((need - z.shape[0], z.shape[1]), np.nan, np.float32), z])
        return z[z.shape[0] - need :]

    @property
    def alarm_rule_(self) -> AlarmRule:
        """The decision rule: ``threshold_``, ``hysteresis`` and ``refractory``."""
        self._check_fitted()
        return AlarmRule(float(self.threshold_), float(self.hysteresis), int(self.refractory))

    def _block_names(self) -> list[str]:
        """The error features per channel the residual function gives, in order."""
        names = ["point", "window"]
        if self.config.model.forecast_horizon:
            names.append("forecast")
        if self.config.scoring.spread_error:
            names.append("spread")
        if self.config.scoring.level_error:
            names.append("level")
        if self.config.scoring.roughness_error:
            names.append("roughness")
        return names

    def _blocks(self) -> int:
        """Error features per channel the network gives (:meth:`_block_names`)."""
        return len(self._block_names())

    def _used_blocks(self) -> list[int]:
        """Which of the :meth:`_blocks` the score uses (0 newest point, 1 window, 2 forecast)."""
        names = self._block_names()
        used = [0, 1] if self.window_error else [0]
        if "forecast" in names and self.forecast_error:
            used.append(names.index("forecast"))
        used += [names.index(n) for n in ("spread", "level", "roughness") if n in names]
        return used

    def _one_sided(self) -> np.ndarray | None:
        """The used features that count upwards only (the window RMS); None: the default rule.

        Without the forecast feature the default rule (every feature after the first) is that
        mask, and calibrations saved before the head existed keep reading the same way.
        """
        used = self._used_blocks()
        return None if max(used) < 2 else np.array([b == 1 for b in used])

    def _select(self, features: np.ndarray) -> np.ndarray:
        """The feature columns the configuration uses (newest-point error, window error, forecast)."""
        c = self.n_features_
        used = self._used_blocks()
        if used == list(range(features.shape[1] // c)):
            return features
        return np.concatenate([features[:, b * c : (b + 1) * c] for b in used], axis=1)

    def _used_named(self, *kinds: str) -> np.ndarray:
        """Which used features ``[F]`` are of the named kinds (:meth:`_block_names`)."""
        names = self._block_names()
        return np.array([names[b] in kinds for b in self._used_blocks()])

    def _echo(self, before: np.ndarray | None) -> Echo | None:
        """The echo rule after the point-level scores ``before`` (None: the rule is off)."""
        if self.echo_keep >= 1 or not self._used_named("window").any():
            return None
        return Echo(
            float(self.echo_keep),
            self.config.model.window,
            point_level=self._used_named("point", "forecast"),
            echoing=self._used_named("window"),
            before=np.zeros(0) if before is None else before,
        )

    def _echo_tail(self, cal: Calibration, features: np.ndarray, before=None) -> np.ndarray:
        """Point-level scores of the last ``window - 1`` rows (after ``before``), for the echo rule."""
        if self._echo(None) is None:
            return np.zeros(0)
        lag = self.config.model.window - 1
        recent = features[max(features.shape[0] - lag, 0) :]
        point = point_scores(
            cal, split_features(recent, self.n_features_), self._used_named("point", "forecast")
        )
        joined = point if before is None else np.concatenate([before, point])
        return joined[max(joined.shape[0] - lag, 0) :]

    def _point_level_of(self, series: int, features: np.ndarray) -> np.ndarray:
        """Point-level scores (newest-point and forecast errors) of all-block feature rows."""
        return point_scores(
            self.calibrations_[series],
            split_features(self._select(features), self.n_features_),
            self._used_named("point", "forecast"),
        )

    def _replacement(self, features: np.ndarray, point: float, since: int) -> np.ndarray | None:
        """Robust history: the forecast to read instead of a point (standardised), or None.

        ``features`` is the point's row of all error features, ``point`` its point-level score,
        ``since`` the points since the last replacement (a point is replaced only if no point of
        the ``span - 1`` before it was).
        """
        if point < self._robust_cutoff or since < self.config.model.span:
            return None
        c = self.n_features_
        b = self._block_names().index("forecast")
        return features[b * c : (b + 1) * c]  # the newest point minus its forecast

    def _robust(
        self, windows: np.ndarray, features: np.ndarray, series: int, mesh: Mesh | None
    ) -> np.ndarray:
        """All-block features ``[n, B * C]`` of ``windows`` with robust history (in order).

        A replaced point changes only the ``span - 1`` later windows that hold it: those are
        scored again, from the modified points.
        """
        span = self.config.model.span
        n = windows.shape[0]
        # The points of all windows, row p + span - 1 the newest point of window p.
        points = np.concatenate([windows[0], windows[1:, -1]]) if n else windows[:0, 0]
        points = np.array(points, np.float32)
        features = np.array(features)
        point = self._point_level_of(series, features)
        since = span  # no replacement in training
        for t in range(n):
            ahead = self._replacement(features[t], point[t], since)
            if ahead is None:
                since += 1
                continue
            since = 1
            points[t + span - 1] -= ahead.astype(np.float32)
            stop = min(t + span, n)
            if stop > t + 1:  # the later windows that hold point t
                rows = windows_of(points[t + 1 : stop + span - 1], span)
                features[t + 1 : stop] = self._features(rows, series, mesh)
                point[t + 1 : stop] = self._point_level_of(series, features[t + 1 : stop])
        return features

    def _score_features(
        self,
        cal: Calibration,
        features: np.ndarray,
        values: np.ndarray,
        before: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and channel scores of feature rows; ``before``: the echo rule's history."""
        return score_features(
            cal,
            split_features(features, self.n_features_),
            values,
            range_rule=bool(self.range_rule),
            range_margin=float(self.range_margin),
            echo=self._echo(before),
        )

    def with_scoring(self, **changes: Any) -> GRUAutoencoderDetector:
        """A copy with other scoring or alarm settings, sharing the trained network.

        The calibration and the threshold are re-fitted on the stored training errors (no
        retraining), so each setting's contribution can be measured on the same network.

        Args:
            **changes: Settings of the scoring and alarm groups (``_config.scoring_names()``).

        Returns:
            A new fitted detector.

        Raises:
            ValueError: For a setting that would change the network or its training.
        """
        self._check_fitted()
        allowed = _config.scoring_names()
        bad = sorted(set(changes) - set(allowed))
        if bad:
            raise ValueError(
                f"with_scoring cannot change {bad}: they change the network; choose among "
                f"{list(allowed)}."
            )
        other = copy.copy(self)
        for name, value in changes.items():
            setattr(other, name, value)
        _ = other.config
        other._calibrate()
        return other

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise RuntimeError("This detector is not fitted yet: call fit(X) first.")

    def _features(
        self,
        windows: np.ndarray,
        series: int | np.ndarray,
        mesh: Mesh | None = None,
        *,
        params: Any = None,
    ) -> np.ndarray:
        """Error features ``[n, 2C]`` (newest-point error, window RMS) in fixed-size jitted batches.

        With a forecasting head ``[n, 3C]``: then the one-step forecast error. ``series`` is one
        training-series index for all windows, or one per window. With a mesh
        (``mesh`` or the one the detector was fitted on) each batch of windows is split over its
        devices and the parameters are replicated. ``params`` replaces ``params_`` (adaptation).
        """
        n = windows.shape[0]
        mesh = self.mesh_ if mesh is None else mesh
        devices = 1 if mesh is None else _mesh_size(mesh)
        ids_all = np.broadcast_to(np.asarray(series, np.int32), (n,))
        residual_fn = self._residual_fn()
        # Calls have a few fixed shapes (powers of two up to score_batch), so few compilations.
        size = min(self.config.scoring.score_batch, 1 << max(n - 1, 0).bit_length())
        size = -(-size // devices) * devices
        params = self.params_ if params is None else params
        params = params if mesh is None else hp.replicate(params, mesh)
        dims, c = self._blocks() * self.n_features_, self.n_features_
        out = np.empty((n, dims), np.float64)  # filled chunk by chunk: no copies of all windows
        for start in range(0, n, size):
            chunk = np.asarray(windows[start : start + size], np.float32)
            arrays = [chunk, ids_all[start : start + size]]
            real = chunk.shape[0]
            if real < size:  # padded to the compiled size (zeros: any finite rows do)
                arrays = [
                    np.concatenate([a, np.zeros((size - real, *a.shape[1:]), a.dtype)])
                    for a in arrays
                ]
            if mesh is None:
                batch = tuple(jnp.asarray(a) for a in arrays)
            else:
                batch = hp.shard_batch(tuple(arrays), mesh)
            for b, block in enumerate(residual_fn(params, *batch)):
                out[start : start + real, b * c : (b + 1) * c] = hp.to_host(block)[:real]
        return out

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

    def _continuation(self, values: np.ndarray, series: int) -> np.ndarray:
        """The windows ending at each point of ``values``, which continue training series ``series``."""
        if values.shape[0] == 0:
            return np.zeros((0, self.config.model.span, self.n_features_), np.float32)
        joined = np.concatenate([self._tails[series], self._standardize(values, series)])
        return windows_of(joined, self.config.model.span)

    def _scores(
        self, values: np.ndarray, series: int, mesh: Mesh | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and channel scores of the continuation ``values`` (adapting if configured)."""
        if values.shape[0] == 0:
            return np.zeros((0,)), np.zeros((0, self.n_features_))
        if self.config.training.adapts:
            return score_adaptively(self, values, series, mesh)[:2]
        # Each series' windows are views of its points; the network reads them chunk by chunk,
        # so a fleet never holds a copy of all its windows (window x the data).
        windows = self._continuation(values, series)
        features = self._features(windows, series, mesh)
        if self.config.robust_history_applies:
            features = self._robust(windows, features, series, mesh)
        features = self._select(features)
        return self._score_features(
            self.calibrations_[series], features, values, self._echo_tails[series]
        )

    def score(self, X: Any, *, series: int = 0) -> np.ndarray:
        """A dense anomaly score per point of ``X`` (higher: more anomalous), causally.

        The score is in decades of rarity against the training part's errors: 3 means an error
        this large happened once in a thousand training points.
        With ``adapt_every > 0`` the network keeps training while ``X`` is scored, block by
        block, on points before each block (``h0.anomaly._adapt``); each call starts from the
        fitted network.

        Args:
            X: The points after the training series ``series`` (``[T]`` or ``[T, C]``).
            series: Which training series ``X`` continues (for several training series).

        Returns:
            Scores ``[T]``, float64, >= 0.
        """
        return self._scores(self._check_series(X, series), series)[0]

    decision_function = score

    def score_channels(self, X: Any, *, series: int = 0) -> np.ndarray:
        """Per-channel scores ``[T, C]`` (decades), for attribution: which channel drove a score."""
        return self._scores(self._check_series(X, series), series)[1]

    def predict(self, X: Any, *, series: int = 0) -> np.ndarray:
        """0/1 per point: 1 where the point is anomalous (``score >= threshold_``, hysteresis)."""
        scores = self.score(X, series=series)
        labels, _, _, _ = decide(self.alarm_rule_, scores, self._alarm_states[series])
        return labels.astype(np.int64)

    def alarms(self, X: Any, *, series: int = 0) -> list[Event]:
        """Alarm events whose onset lies in ``X``: start, end, peak, peak score, channel (rows of ``X``).

        A run of flagged points raises an alarm at its onset unless it starts within
        ``refractory`` points of the previous alarm's onset (then it extends that alarm).
        """
        values = self._check_series(X, series)
        scores, channels = self._scores(values, series)
        _, _, events, _ = decide(self.alarm_rule_, scores, self._alarm_states[series], channels)
        return events

    def fit_score(self, X: Any, *, train_size: int, **fit_kwargs: Any) -> np.ndarray:
        """Fit on the first ``train_size`` points of ``X`` and score all of ``X`` causally.

        The first ``train_size`` scores are :attr:`decision_scores_`.
        """
        values = as_values(X)
        if not 0 < train_size < values.shape[0]:
            raise ValueError(
                f"train_size must lie in (0, {values.shape[0]}) for X of {values.shape[0]} points; "
                f"got {train_size}."
            )
        self.fit(values[:train_size], **fit_kwargs)
        return np.concatenate([self.decision_scores_, self.score(values[train_size:])])

    def score_many(
        self, X: Any, *, mesh: Mesh | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Score a fleet: ``X[i]`` continues training series ``i`` (on the mesh, if any).

        Returns ``[(scores [T_i], channel scores [T_i, C])]``, equal to scoring each series alone.

        Example:
            >>> import numpy as np
            >>> rng = np.random.default_rng(0)
            >>> fleet = [np.sin(np.arange(120) / (3 + i)) + 0.05 * rng.normal(size=120) for i in range(3)]
            >>> det = GRUAutoencoderDetector(window=8, hidden=8, epochs=1, initial_state="per_sequence")
            >>> det = det.fit([s[:80] for s in fleet])
            >>> scored = det.score_many([s[80:] for s in fleet])
            >>> [s.shape for s, _ in scored]
            [(40,), (40,), (40,)]
            >>> bool(np.allclose(scored[2][0], det.score(fleet[2][80:], series=2), atol=1e-6))
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
        return [self._scores(v, i, mesh) for i, v in enumerate(values)]

    def stream(self, *, series: int = 0) -> DetectorStream:
        """A stream that scores the points after training series ``series`` one at a time.

        The stream scores with the fitted network: it does not adapt (``adapt_every``).
        """
        self._check_fitted()
        if not 0 <= series < self.n_series_:
            raise ValueError(
                f"series={series} is not a training series index in [0, {self.n_series_})."
            )
        return DetectorStream(self, series)

    # ----------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save to directory ``path`` with :func:`h0.save` (one checkpoint format), atomically.

        The checkpoint holds the parameters, the standardisation, the training series and their
        error features (from which :meth:`load` re-fits the deterministic calibration), and the
        settings, every file checksummed. The old model is swapped out in one step (a killed save
        leaves it loadable); a file or a directory that is not a saved detector is never replaced.
        """
        from h0._checkpoint import save

        self._check_fitted()
        meta = {
            "format": _FORMAT,
            "settings": self.get_params(),
            "n_features": self.n_features_,
            "n_series": self.n_series_,
            "held_out": self._held_out,
            "loss_history": self.loss_history_,
        }
        arrays: dict[str, Any] = {"mean": self.mean_, "scale": self.scale_}
        for i in range(self.n_series_):
            arrays[f"s{i}_values"] = self._train_values[i]
            arrays[f"s{i}_features"] = self._train_features[i]
        tree = {"params": jax.tree.map(np.asarray, self.params_), "arrays": arrays}
        return save(path, tree, metadata=meta, kind=DETECTOR_KIND)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GRUAutoencoderDetector:
        """Load a detector written by :meth:`save` (checksums verified by :func:`h0.restore`)."""
        from h0._checkpoint import restore

        path = Path(path).absolute()
        tree, meta = restore(path, with_metadata=True, kind=DETECTOR_KIND)
        try:
            version = meta.get("format")
            if version != _FORMAT and version not in _LEGACY_FORMATS:
                raise ValueError(f"unknown format {version!r}; expected {_FORMAT!r}")
            det = cls(**{**_LEGACY_FORMATS.get(version, {}), **meta["settings"]})
            det.n_features_ = det.n_features_in_ = int(meta["n_features"])
            det.n_series_ = int(meta["n_series"])
            det._held_out = [int(h) for h in meta["held_out"]]
            det.loss_history_ = [float(v) for v in meta["loss_history"]]
            arrays = tree["arrays"]
            det.mean_, det.scale_ = np.asarray(arrays["mean"]), np.asarray(arrays["scale"])
            n = det.n_series_
            det._train_values = [np.asarray(arrays[f"s{i}_values"]) for i in range(n)]
            det.modelled_ = np.stack([modelled_channels(v) for v in det._train_values])
            det._train_features = [np.asarray(arrays[f"s{i}_features"]) for i in range(n)]
            det.params_ = jax.tree.map(jnp.asarray, tree["params"])
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as error:
            raise ValueError(f"{path} is not a saved h0 detector: {error}") from None
        det.mesh_ = None
        det._calibrate()
        return det


def fit_independent(
    X: list[Any], callback: Callable[[int, int, float], None] | None = None, **settings: Any
) -> list[GRUAutoencoderDetector]:
    """Fit one independent detector per series, all trained in one vmapped program.

    Detector ``i`` is exactly ``GRUAutoencoderDetector(**settings).fit(X[i])`` (same seed, same
    shuffles, same keys; parameters equal to float32 rounding): the ``N`` training loops run as one
    jitted step over stacked parameters (:func:`h0.parallel.make_ensemble_train_step`'s idea, with
    each model's step masked once its own epoch is over, because series of different lengths take
    different numbers of steps). Many short series (NAB's 58) train in one program instead of ``N``
    processes.

    Args:
        X: The series, ``[T_i]`` or ``[T_i, C]`` each.
        callback: Called after each epoch as ``callback(epoch, epochs, mean loss over models)``.
        **settings: Detector settings, the same for every series.

    Returns:
        The fitted detectors, in the order of ``X``.

    Example:
        >>> import numpy as np
        >>> xs = [np.sin(np.arange(200) / (3 + i)) for i in range(3)]
        >>> dets = fit_independent(xs, window=8, hidden=8, epochs=2)
        >>> alone = GRUAutoencoderDetector(window=8, hidden=8, epochs=2).fit(xs[2])
        >>> bool(np.allclose(dets[2].score(xs[2][:50]), alone.score(xs[2][:50]), rtol=1e-3, atol=1e-3))
        True
    """
    from h0.anomaly._train import masked_ensemble_step

    dets = [GRUAutoencoderDetector(**settings) for _ in X]
    if not dets:
        return []
    cfg = dets[0].config
    window, lr = cfg.model.window, float(cfg.training.learning_rate)
    prepared = []
    for i, (det, x) in enumerate(zip(dets, X, strict=True)):
        series = [as_values(x, f"X[{i}]")]
        _check_training(series, window)
        det._standardization(series)
        windows, ids = det._training_windows(series)
        batch = min(cfg.training.batch_size, windows.shape[0])
        prepared.append((series, windows, ids, batch))
    batches = {p[3] for p in prepared}
    if len(batches) != 1:  # one compiled shape: fit the odd ones alone
        common = max(batches, key=[p[3] for p in prepared].count)
    else:
        common = batches.pop()
    together = [i for i, p in enumerate(prepared) if p[3] == common]
    for i, p in enumerate(prepared):
        if i not in together:
            dets[i].fit(p[0][0])
    if not together:
        return dets
    model = dets[together[0]]._model(1)
    init_key, carry_key, train_key = jax.random.split(jax.random.key(cfg.training.seed), 3)
    first = prepared[together[0]]
    # The same seed and shapes: every model starts where it would alone.
    params = initial_params(model, init_key, carry_key, first[1][:common], first[2][:common])
    n = len(together)
    stacked = jax.tree.map(lambda a: jnp.stack([a] * n), params)
    opt_state = jax.jit(jax.vmap(optimizer(lr).init))(stacked)  # one program, as in fit
    step_fn = masked_ensemble_step(model, lr, float(cfg.training.forecast_weight))
    schedules = [_epochs(cfg, prepared[i][1].shape[0], common, train_key) for i in together]
    for d in (dets[i] for i in together):
        d.loss_history_ = []
    for epoch in range(cfg.training.epochs):
        plans = [next(sched)[1:] for sched in schedules]
        steps = max(order.shape[0] for order, _ in plans)
        counts = np.array([order.shape[0] for order, _ in plans])
        active = np.arange(steps)[:, None] < counts[None, :]  # [steps, models]
        # Each model's keys for the epoch as one host array (a finished model reuses its first
        # key; its step is masked): indexing device arrays per model and step was most of the
        # wall time of NAB's 58 series (one dispatch each).
        key_data = np.stack(
            [
                np.asarray(jax.random.key_data(k))[np.where(active[:, j], np.arange(steps), 0)]
                for j, (_, k) in enumerate(plans)
            ],
            axis=1,
        )
        key_impl = jax.random.key_impl(plans[0][1])
        step_losses = []
        for step in range(steps):
            wins, ids = [], []
            for (order, _), i, on in zip(plans, together, active[step], strict=True):
                rows = order[step] if on else order[0]
                wins.append(prepared[i][1][rows])
                ids.append(prepared[i][2][rows])
            stacked, opt_state, losses = step_fn(
                stacked,
                opt_state,
                (jnp.asarray(np.stack(wins), jnp.float32), jnp.asarray(np.stack(ids))),
                jax.random.wrap_key_data(key_data[step], impl=key_impl),
                jnp.asarray(active[step]),
            )
            step_losses.append(losses)
        per_step = np.asarray(jnp.stack(step_losses))  # [steps, models], fetched once an epoch
        means = [float(np.mean(per_step[: counts[j], j])) for j in range(len(together))]
        for j, i in enumerate(together):
            dets[i]._record_loss(means[j], epoch, lr)
        if callback is not None:
            callback(epoch + 1, cfg.training.epochs, float(np.mean(means)))
    for j, i in enumerate(together):
        params_j = jax.tree.map(lambda a, j=j: a[j], stacked)
        dets[i]._finish(prepared[i][0], params_j, None)
    return dets


def _signature() -> inspect.Signature:
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
        for name, default in _config.defaults().items()
    ]
    return inspect.Signature(params)


# The keyword arguments are the settings of h0.anomaly._config, one per field: sklearn's
# get_params / set_params / clone read this signature.
GRUAutoencoderDetector.__init__.__signature__ = _signature()  # type: ignore[attr-defined]


class DetectorStream:
    """Scores one new point at a time; scores, labels and alarms equal the batch methods'.

    It keeps the last ``span - 1`` points (the window's and, with ``initial_state='conditional'``,
    the history before it) and the alarm state between calls. Each window is encoded from the
    strategy's initial state, as in training (the model is windowed).

    The stream does not adapt (``adapt_every``): it scores with the fitted network and
    calibration, so with adaptation on it equals the batch methods of the same detector with
    ``adapt_every=0``.

    Attributes:
        is_anomaly: Whether the last point is flagged (``predict``'s label).
        alarm: Whether the last point raised an alarm (an event's onset).
    """

    def __init__(self, detector: GRUAutoencoderDetector, series: int):
        self._det = detector
        self._series = series
        self._buffer = np.array(detector._tails[series], np.float32)
        self._state = detector._alarm_states[series].copy()
        self._echo = detector._echo_tails[series]
        self._since = detector.config.model.span  # points since robust history's last replacement
        self._rule = detector.alarm_rule_
        self._residual_fn = detector._residual_fn()
        self._ids = jnp.full((1,), series, jnp.int32)
        self.is_anomaly = False
        self.alarm = False

    def update(self, value: Any) -> float:
        """Score one new point (a number, or ``C`` numbers) and return its score."""
        det = self._det
        v = np.asarray(value, np.float64).reshape(-1)
        if v.shape != (det.n_features_,) or not np.isfinite(v).all():
            raise ValueError(
                f"value must be {det.n_features_} finite number(s); got {np.asarray(value)!r}."
            )
        window = np.concatenate([self._buffer, det._standardize(v[None], self._series)])
        blocks = self._residual_fn(det.params_, window[None], self._ids)
        raw = np.concatenate([np.asarray(b) for b in blocks], 1).astype(np.float64)
        if det.config.robust_history_applies:
            point = det._point_level_of(self._series, raw)[0]
            ahead = det._replacement(raw[0], point, self._since)
            self._since = self._since + 1 if ahead is None else 1
            if ahead is not None:  # the later windows read the point's forecast
                window[-1] -= ahead.astype(np.float32)
        self._buffer = window[1:]
        features = det._select(raw)
        cal = det.calibrations_[self._series]
        scores, channels = det._score_features(cal, features, v[None], self._echo)
        self._echo = det._echo_tail(cal, features, self._echo)
        channel = None if det.n_features_ < 2 else int(np.argmax(channels[0]))
        self.is_anomaly, self.alarm, _ = self._state.step(self._rule, float(scores[0]), channel)
        return float(scores[0])
