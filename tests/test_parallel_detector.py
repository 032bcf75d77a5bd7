"""The detector trained and scored on 4 host devices equals the single-device run.

JAX fixes its device count when it starts, so the 4-device run happens in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys, tempfile
    from pathlib import Path
    import jax, numpy as np, pandas as pd
    jax.config.update("jax_numpy_rank_promotion", "raise")
    import h0._parallel as parallel
    import h0.parallel as hp
    from h0._cli import main
    from h0.anomaly import GRUAutoencoderDetector

    assert len(jax.devices()) == 4, jax.devices()
    rng = np.random.default_rng(0)
    fleet = [np.sin(np.arange(160) / (3 + i)) + 0.05 * rng.normal(size=160) for i in range(3)]
    train, test = [s[:110] for s in fleet], [s[110:] for s in fleet]
    test[1][30] += 3.0

    # Record the shards of every batch the training loop places on the mesh.
    placed = []
    original = parallel.shard_batch
    def recording(batch, mesh):
        out = original(batch, mesh)
        windows = out[0]
        placed.append({
            "shards": sorted(tuple(s.data.shape) for s in windows.addressable_shards),
            "devices": len({s.device for s in windows.addressable_shards}),
            "spec": str(windows.sharding.spec),
        })
        return out
    parallel.shard_batch = recording

    kw = dict(window=8, hidden=8, epochs=3, batch_size=16, initial_state="per_sequence", seed=0)
    single = GRUAutoencoderDetector(**kw).fit(train)
    n_single = len(placed)
    sharded = GRUAutoencoderDetector(**kw).fit(train, mesh=hp.data_mesh())
    param = jax.tree.leaves(sharded.params_)[0]
    result = {
        "placed_single": n_single,
        "placed": placed[:3],
        "param_replicated": bool(param.sharding.is_fully_replicated),
        "param_devices": len(param.sharding.device_set),
        "loss_single": single.loss_history_,
        "loss_sharded": sharded.loss_history_,
        "params_single": [np.asarray(p).ravel().tolist() for p in jax.tree.leaves(single.params_)],
        "params_sharded": [np.asarray(p).ravel().tolist() for p in jax.tree.leaves(sharded.params_)],
        "scores_single": [single.score(x, series=i).tolist() for i, x in enumerate(test)],
        "scores_sharded": [s.tolist() for s, _ in sharded.score_many(test)],
        "score_on_fit_mesh": sharded.score(test[2], series=2).tolist(),
    }
    stream = sharded.stream(series=1)
    result["stream"] = [stream.update(v) for v in test[1][:5]]
    try:
        GRUAutoencoderDetector(**{**kw, "batch_size": 6}).fit(train, mesh=hp.data_mesh())
    except ValueError as error:
        result["uneven_error"] = str(error)

    # The CLI's fleet mode shards over every device and checks --batch-size against them.
    folder = Path(tempfile.mkdtemp())
    for i, s in enumerate(fleet):
        pd.DataFrame({"value": s}).to_csv(folder / f"s{i}.csv", index=False)
    args = ["detect", str(folder), "--window", "8", "--hidden", "8", "--epochs", "1",
            "--train-fraction", "0.7", "--quiet", "--out", str(folder / "out")]
    result["cli_uneven"] = main([*args, "--batch-size", "6"])
    result["cli_uneven_out"] = (folder / "out").exists()
    result["cli_ok"] = main([*args, "--batch-size", "16"])
    result["cli_fleet"] = json.loads((folder / "out" / "fleet.json").read_text())["settings"]["devices"]
    json.dump(result, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def four_devices():
    # This checkout's h0 (not an installed copy) runs in the subprocess.
    src = str(Path(__file__).resolve().parents[1] / "src")
    path = os.pathsep.join(p for p in [src, os.environ.get("PYTHONPATH", "")] if p)
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        JAX_PLATFORMS="cpu",
        PYTHONPATH=path,
    )
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_batches_are_split_over_four_devices(four_devices):
    # The single-device fit places nothing on a mesh; the sharded one splits every batch of 16
    # windows into 4 shards of 4 along the 'data' axis, one per device.
    assert four_devices["placed_single"] == 0
    for placed in four_devices["placed"]:
        assert placed["shards"] == [[4, 8, 1]] * 4
        assert placed["devices"] == 4 and "data" in placed["spec"]
    assert four_devices["param_replicated"] and four_devices["param_devices"] == 4


def test_sharded_losses_parameters_and_scores_match_single_device(four_devices):
    r = four_devices
    np.testing.assert_allclose(r["loss_sharded"], r["loss_single"], rtol=1e-5)
    assert r["loss_single"][-1] < r["loss_single"][0]
    for a, b in zip(r["params_sharded"], r["params_single"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(r["scores_sharded"], r["scores_single"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # scores are decades: relative
    # score() and the stream of a detector fitted on a mesh run on it and agree with score_many.
    np.testing.assert_allclose(r["score_on_fit_mesh"], r["scores_sharded"][2], atol=1e-6)
    np.testing.assert_allclose(r["stream"], r["scores_sharded"][1][:5], atol=1e-6)
    # The injected spike is the top score of its series on both runs.
    assert int(np.argmax(r["scores_sharded"][1])) == int(np.argmax(r["scores_single"][1])) == 30


def test_uneven_batch_is_a_clear_error(four_devices):
    assert "batch_size=6 cannot be split over the mesh's 4 devices" in four_devices["uneven_error"]
    assert four_devices["cli_uneven"] == 2 and not four_devices["cli_uneven_out"]
    assert four_devices["cli_ok"] == 0 and four_devices["cli_fleet"] == 4
