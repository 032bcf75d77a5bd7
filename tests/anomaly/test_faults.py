"""Faults as a user meets them: killed saves, corrupted models, outputs that are not h0's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from h0._cli import main
from h0.anomaly import GRUAutoencoderDetector

SRC = Path(__file__).resolve().parents[2] / "src"
SMALL = dict(window=8, hidden=8, epochs=2, batch_size=32)
FAST = ["--window", "8", "--hidden", "8", "--epochs", "1", "--train-fraction", "0.5", "--quiet"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    x = np.sin(np.arange(300) / 5.0)
    det = GRUAutoencoderDetector(**SMALL).fit(x[:200])
    path = det.save(tmp_path_factory.mktemp("m") / "model")
    return det, path, x


def write_csv(path: Path) -> Path:
    pd.DataFrame({"value": np.sin(np.arange(200) / 5.0)}).to_csv(path, index=False)
    return path


def test_save_refuses_a_user_directory_and_a_file(saved, tmp_path):
    det, _, _ = saved
    user = tmp_path / "thesis"
    (user / "sub").mkdir(parents=True)
    (user / "thesis.txt").write_text("two years of work")
    with pytest.raises(ValueError, match=r"refusing|not an h0"):
        det.save(user)
    assert (user / "thesis.txt").read_text() == "two years of work" and (user / "sub").is_dir()
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    with pytest.raises(ValueError):
        det.save(file)
    assert file.read_text() == "keep me"


def test_cli_save_model_and_out_refuse_what_is_not_h0s_before_training(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv")
    file = tmp_path / "model.txt"
    file.write_text("keep me")
    user = tmp_path / "docs"
    user.mkdir()
    (user / "thesis.txt").write_text("keep")
    cases = [
        (["--save-model", str(file), "--out", str(tmp_path / "o1")], "--save-model"),
        (["--out", str(user)], "--out"),
        (["--out", str(file / "x")], "--out"),
    ]
    for extra, flag in cases:
        started = time.perf_counter()
        assert main(["detect", str(csv), *FAST, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"h0 detect: error: {flag}: ") and err.count("\n") == 1, err
        assert time.perf_counter() - started < 5  # refused before training
    assert file.read_text() == "keep me" and (user / "thesis.txt").read_text() == "keep"
    assert not (tmp_path / "o1").exists()


def test_report_is_replaced_as_one_unit(tmp_path):
    csv = write_csv(tmp_path / "s.csv")
    out = tmp_path / "out"
    assert main(["detect", str(csv), *FAST, "--out", str(out)]) == 0
    assert (out / "report.png").exists()
    assert main(["detect", str(csv), *FAST, "--out", str(out), "--no-plot"]) == 0
    assert not (out / "report.png").exists()  # no file of the older report survives
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "s.csv"]


def test_corrupted_model_is_a_clear_error_naming_the_file(saved, tmp_path):
    det, path, x = saved
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(path, copy)
    files = [p for p in copy.rglob("*") if p.is_file() and not p.name.endswith(".json")]
    victim = max(files, key=lambda p: p.stat().st_size)  # the parameter / array data
    data = bytearray(victim.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(255 - b for b in data[middle : middle + 16])
    victim.write_bytes(bytes(data))
    with pytest.raises(ValueError) as info:
        GRUAutoencoderDetector.load(copy)
    assert str(copy) in str(info.value) and "\n" not in str(info.value)
    np.testing.assert_array_equal(
        GRUAutoencoderDetector.load(path).score(x[200:]), det.score(x[200:])
    )


@pytest.mark.slow  # two processes that import jax and fit
@pytest.mark.parametrize("point", ["written", "aside"])
def test_save_killed_mid_write_keeps_the_previous_model(saved, tmp_path, point):
    det, original, x = saved
    import shutil

    path = tmp_path / "model"
    shutil.copytree(original, path)
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from h0 import _atomic
        from h0.anomaly import GRUAutoencoderDetector
        det = GRUAutoencoderDetector.load({str(path)!r})
        det.refractory = 7  # the new version differs
        def pause(*_):
            Path({str(ready)!r}).write_text("ready")
            time.sleep(120)
        _atomic._exchange = lambda a, b: False  # the two-rename path: the riskier one
        _atomic._stage = lambda name: pause() if name == {point!r} else None
        det.save({str(path)!r})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(SRC), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.time() + 240
        while not ready.exists():
            assert proc.poll() is None, "the writer exited early"
            assert time.time() < deadline, "the writer never reached the point"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    loaded = GRUAutoencoderDetector.load(path)  # recovers the old model where needed
    assert loaded.refractory == det.refractory
    np.testing.assert_array_equal(loaded.score(x[200:]), det.score(x[200:]))
    loaded.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "ready"]
