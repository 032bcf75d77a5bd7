"""Causal online adaptation: keep training the network, with a budget, while a continuation is scored.

With ``adapt_every = N > 0`` a continuation is scored in blocks of ``N`` points. Before each block
after the first, the network takes ``adapt_steps`` Adam steps of ``batch_size`` windows drawn from
the latest ``adapt_history`` points *before the block* (training data included, standardised as in
training), and the block is scored with the adapted parameters. With ``adapt_calibration`` the
score's calibration is also refitted before each block, on the error features of the latest
``adapt_history`` points as they were scored (each by the network of its own block: out-of-sample
errors; the training part's calibration rows where the continuation is still short).

The score at ``t`` therefore depends on points up to ``t`` only (the network on points before
``t``'s block, the window on points up to ``t``). The threshold and the alarm state are the
fitted detector's; :meth:`GRUAutoencoderDetector.stream` does not adapt.

The optimiser state starts fresh at the start of each continuation and carries over between its
blocks; the windows and keys of block ``k`` come from ``(seed, series, k)``, so scoring the same
continuation twice gives the same scores.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from h0._typing import PyTree
from h0.anomaly._model import EncDecAD
from h0.anomaly._scoring import fit_calibration, split_features
from h0.anomaly._train import optimizer, train_step

if TYPE_CHECKING:
    from h0.anomaly._detector import GRUAutoencoderDetector

#: Folded into the seed's key for adaptation keys (a stream apart from training's).
_ADAPT_STREAM = 0xADA


@dataclasses.dataclass(frozen=True)
class Adaptation:
    """What one adaptation did (for budgets and tests).

    Attributes:
        block: The block's index (its first point is ``block * adapt_every`` of the continuation).
        first: First point trained on, as an index into training part + continuation.
        end: One past the last point trained on (the block's first point, same indexing).
        steps: Adam steps taken.
        windows: Windows trained on (``steps x batch``).
    """

    block: int
    first: int
    end: int
    steps: int
    windows: int


@functools.lru_cache(maxsize=32)
def adapt_fn(
    model: EncDecAD, learning_rate: float, forecast_weight: float = 1.0
) -> Callable[..., Any]:
    """``run(params, opt_state, windows [s, b, t, c], ids [s, b], keys [s]) -> (params, opt_state, losses [s])``.

    ``s`` steps of :func:`h0.anomaly._train.train_step` in one jitted ``lax.scan``.
    """
    step = train_step(model, learning_rate, None, forecast_weight)

    def run(params: PyTree, opt_state: PyTree, windows: Any, ids: Any, keys: Any):
        def body(carry, xs):
            p, o, loss = step(*carry, xs[:2], xs[2])
            return (p, o), loss

        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), (windows, ids, keys))
        return params, opt_state, losses

    return jax.jit(run)


def score_adaptively(
    det: GRUAutoencoderDetector, values: np.ndarray, series: int, mesh: Any = None
) -> tuple[np.ndarray, np.ndarray, list[Adaptation]]:
    """Score ``values`` (the continuation of training series ``series``) with online adaptation.

    Args:
        det: A fitted detector with ``adapt_every > 0``.
        values: The continuation ``[T, C]`` (float64).
        series: The training series it continues.
        mesh: Score (not adapt) on this mesh.

    Returns:
        ``(scores [T], channel scores [T, C], one Adaptation per adapted block)``.

    Example:
        >>> import numpy as np
        >>> from h0.anomaly import GRUAutoencoderDetector
        >>> x = np.sin(np.arange(300) / 4.0)[:, None]
        >>> det = GRUAutoencoderDetector(window=8, hidden=4, epochs=1, adapt_every=40,
        ...                              adapt_history=64, adapt_steps=2, batch_size=16).fit(x[:200])
        >>> scores, _, log = score_adaptively(det, x[200:], 0)
        >>> scores.shape, [(a.block, a.first, a.end, a.windows) for a in log][:2]
        ((100,), [(1, 176, 240, 32), (2, 216, 280, 32)])
    """
    from h0.anomaly._detector import windows_of  # _detector imports this module

    cfg = det.config
    tr, window, n_c = cfg.training, cfg.model.window, det.n_features_
    every, history, steps = tr.adapt_every, tr.adapt_history, tr.adapt_steps
    lr = float(tr.learning_rate if tr.adapt_learning_rate is None else tr.adapt_learning_rate)
    train_values = det._train_values[series]
    n0 = train_values.shape[0]
    z = np.concatenate([det._standardize(train_values, series), det._standardize(values, series)])
    z = det._padded(z)  # point p is row p + context
    context, span = cfg.model.context, cfg.model.span
    windows = det._continuation(values, series)  # row p: the window ending at point n0 + p
    model = det._model()
    run = adapt_fn(model, lr, float(tr.forecast_weight))
    params, opt_state = det.params_, None
    base_key = jax.random.fold_in(jax.random.key(tr.seed), _ADAPT_STREAM)
    calibration = det.calibrations_[series]
    echo = det._echo_tails[series]  # the echo rule's point-level history
    # The calibration rows the fit used, then the continuation's features as they are scored.
    train_rows = det._select(det._train_features[series])[window - 1 :]
    held = det._held_out[series]
    seen = [train_rows[-held:] if held >= _min_held_out() else train_rows]
    scores = np.empty((values.shape[0],))
    channels = np.empty((values.shape[0], n_c))
    log: list[Adaptation] = []
    for block, start in enumerate(range(0, values.shape[0], every)):
        stop = min(start + every, values.shape[0])
        if block:
            end = n0 + start
            first = max(0, end - history)
            batch = 0
            if steps:
                # A view: pool[order] below gathers the batches (a copy).
                pool = windows_of(z[first : end + context], span)
                batch = min(tr.batch_size, pool.shape[0])
                rng = np.random.default_rng([tr.seed, series, block])
                need = steps * batch
                order = np.concatenate(
                    [rng.permutation(pool.shape[0]) for _ in range(-(-need // pool.shape[0]))]
                )[:need].reshape(steps, batch)
                if opt_state is None:
                    opt_state = optimizer(lr).init(params)
                keys = jax.random.split(
                    jax.random.fold_in(jax.random.fold_in(base_key, series), block), steps
                )
                params, opt_state, losses = run(
                    params,
                    opt_state,
                    pool[order],
                    np.full((steps, batch), series, np.int32),
                    keys,
                )
                if not np.isfinite(np.asarray(losses)).all():
                    raise ValueError(
                        f"adaptation diverged before point {start} of the continuation: the loss is "
                        f"not finite; lower adapt_learning_rate (now {lr:g})."
                    )
            log.append(Adaptation(block, first, end, steps, steps * batch))
            if tr.adapt_calibration:
                rows = np.concatenate(seen)[-history:]
                calibration = fit_calibration(
                    split_features(rows, n_c),
                    train_values,
                    tail_quantile=cfg.scoring.tail_quantile,
                    one_sided=det._one_sided(),
                )
        features = det._select(det._features(windows[start:stop], series, mesh, params=params))
        scores[start:stop], channels[start:stop] = det._score_features(
            calibration, features, values[start:stop], echo
        )
        echo = det._echo_tail(calibration, features, echo)
        seen.append(features)
    return scores, channels, log


def _min_held_out() -> int:
    from h0.anomaly._detector import MIN_HELD_OUT

    return MIN_HELD_OUT
