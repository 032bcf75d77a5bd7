"""Independent detectors trained as one vmapped program equal each trained alone."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from h0.anomaly import GRUAutoencoderDetector
from h0.anomaly._detector import fit_independent

SMALL = dict(window=8, hidden=8, epochs=3, batch_size=16, seed=3)


def test_fit_independent_equals_each_alone_with_different_step_counts():
    rng = np.random.default_rng(0)
    # Different lengths: 9, 12 and 6 steps per epoch, so shorter ones are masked at the end.
    xs = [
        np.sin(np.arange(n) / (3 + i)) + 0.05 * rng.normal(size=n)
        for i, n in enumerate((200, 260, 140))
    ]
    together = fit_independent(xs, **SMALL)
    for x, det in zip(xs, together, strict=True):
        alone = GRUAutoencoderDetector(**SMALL).fit(x)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
            det.params_,
            alone.params_,
        )
        np.testing.assert_allclose(det.loss_history_, alone.loss_history_, rtol=1e-4)
        test = x[:60].copy()
        test[30] += 3
        np.testing.assert_allclose(det.score(test), alone.score(test), rtol=1e-3, atol=1e-4)
        assert det.threshold_ == pytest.approx(alone.threshold_, rel=1e-3)


def test_fit_independent_fits_odd_batch_shapes_alone():
    xs = [np.sin(np.arange(200) / 3), np.sin(np.arange(20) / 3)]  # the second: batch of 10
    dets = fit_independent(xs, **SMALL)
    alone = GRUAutoencoderDetector(**SMALL).fit(xs[1])
    np.testing.assert_allclose(dets[1].score(xs[1][:10]), alone.score(xs[1][:10]), rtol=1e-6)
    with pytest.raises(ValueError, match="needs at least 16"):
        fit_independent([np.zeros(10)], **SMALL)
