"""The command line's persistent compilation cache (``h0._compilecache``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from h0 import _compilecache

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = ["--window", "8", "--hidden", "8", "--epochs", "1", "--train-fraction", "0.5", "--quiet"]


@pytest.mark.parametrize("value", ["off", "0", "", "OFF", "no"])
def test_off_values_turn_it_off(monkeypatch, value):
    monkeypatch.setenv(_compilecache.ENV, value)
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert _compilecache.cache_dir() is None
    assert _compilecache.enable() is None


def test_default_directory_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(_compilecache.ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _compilecache.cache_dir() == tmp_path / "h0" / "jax"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert _compilecache.cache_dir() == Path.home() / ".cache" / "h0" / "jax"


def test_entries_that_do_not_decompress_are_dropped(tmp_path):
    from jax._src.compilation_cache import compress_executable

    good, cut, other = tmp_path / "a-cache", tmp_path / "b-cache", tmp_path / "notes.txt"
    good.write_bytes(compress_executable(b"x" * 1000))
    cut.write_bytes(compress_executable(b"y" * 1000)[:5])
    other.write_text("not jax's")
    assert _compilecache._drop_unreadable(tmp_path) == [cut]
    assert good.exists() and other.exists() and not cut.exists()


def test_jax_own_setting_wins_and_an_unusable_directory_is_skipped(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(_compilecache.ENV, str(blocker / "cache"))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    assert _compilecache.enable() is None  # cannot be created under a file: no cache, no error
    assert blocker.read_text() == "not a directory"
    monkeypatch.setenv(_compilecache.ENV, str(tmp_path / "mine"))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert _compilecache.enable() is None and not (tmp_path / "mine").exists()


def _detect(tmp_path: Path, csv: Path, out: str, cache: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC), _compilecache.ENV: cache}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "h0._cli", "detect", str(csv), "--out", str(tmp_path / out), *FAST],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_a_second_run_loads_the_cache_and_scores_the_same(tmp_path):
    csv = tmp_path / "s.csv"
    pd.DataFrame({"value": np.sin(np.arange(400) / 5.0)}).to_csv(csv, index=False)
    cache = tmp_path / "cache"
    first = _detect(tmp_path, csv, "first", str(cache))
    assert first.returncode == 0, first.stderr
    entries = sorted(p.name for p in cache.iterdir())
    assert entries  # the compiled programs were written
    second = _detect(tmp_path, csv, "second", str(cache))
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in cache.iterdir()) == entries  # loaded, nothing new compiled
    # Entries cut short (a process killed while JAX wrote them) are dropped and written again,
    # not read and warned about on every run.
    for entry in cache.iterdir():
        entry.write_bytes(entry.read_bytes()[:100])
    fourth = _detect(tmp_path, csv, "fourth", str(cache))
    assert fourth.returncode == 0, fourth.stderr
    assert "Error reading persistent compilation cache" not in fourth.stderr
    assert sorted(p.name for p in cache.iterdir()) == entries
    assert all(len(entry.read_bytes()) > 100 for entry in cache.iterdir())
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    third = _detect(tmp_path, csv, "third", str(blocked / "cache"))  # unusable: runs without
    assert third.returncode == 0, third.stderr
    runs = ("first", "second", "third", "fourth")
    scores = [pd.read_csv(tmp_path / o / "scores.csv") for o in runs]
    for other in scores[1:]:
        pd.testing.assert_frame_equal(scores[0], other)
