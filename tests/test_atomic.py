"""h0._atomic, the one writer of h0's output directories, met as a user meets faults.

Writers run in subprocesses and are SIGKILLed at each step of a write (and after random delays);
targets h0 did not write must survive untouched; a read-only parent is a one-line error; a
corrupted checkpoint is a one-line ValueError naming the file.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import h0
from h0 import _atomic, _checkpoint
from h0._atomic import (
    MARKER,
    OutputError,
    TargetExistsError,
    atomic_directory,
    check_target,
    output_kind,
    recover,
    same_kind,
)
from h0._errors import UsageError

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC), "JAX_PLATFORMS": "cpu"}
# Imports h0._atomic without the package's __init__ (jax, flax): a writer starts in ~0.1 s.
LIGHT = f"""
import sys, types
_pkg = types.ModuleType("h0")
_pkg.__path__ = [{str(SRC / "h0")!r}]
sys.modules["h0"] = _pkg
from h0 import _atomic
"""
BIG = 1 << 18  # bytes of c.bin: large enough for a random kill to land mid-write


def write_version(root: Path, version: int) -> None:
    """One output: three files (one in a subfolder) that all name the same version."""
    (root / "a.txt").write_text(str(version))
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text(str(version))
    (root / "c.bin").write_bytes(str(version).encode().ljust(BIG, b"."))


WRITER = """
from pathlib import Path
def write_version(root, version):
    (root / "a.txt").write_text(str(version))
    (root / "sub").mkdir()
    (root / "sub" / "b.txt").write_text(str(version))
    (root / "c.bin").write_bytes(str(version).encode().ljust(BIG, b"."))
"""


def read_version(root: Path) -> int:
    """The version of a complete output; fails on a partial or mixed one."""
    assert same_kind(output_kind(root), "report"), sorted(p.name for p in root.iterdir())
    version = (root / "a.txt").read_text()
    assert (root / "sub" / "b.txt").read_text() == version
    assert (root / "c.bin").read_bytes() == version.encode().ljust(BIG, b".")
    assert sorted(p.name for p in root.iterdir()) == [MARKER, "a.txt", "c.bin", "sub"]
    return int(version)


def leftovers(parent: Path, name: str = "out") -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def write(path: Path, version: int, kind: str = "report") -> None:
    with atomic_directory(path, kind=kind) as tmp:
        write_version(tmp, version)


def pause_script(path: Path, ready: Path, stage: str, *, exchange: bool) -> str:
    """A writer of version 2 that stops at ``stage`` (or inside the body) and waits to be killed."""
    return (
        LIGHT
        + WRITER.replace("BIG", str(BIG))
        + textwrap.dedent(
            f"""
        import time
        ready = Path({str(ready)!r})
        def pause():
            ready.write_text("ready")
            time.sleep(120)
        if not {exchange}:
            _atomic._exchange = lambda a, b: False
        def stage(name):
            if name == {stage!r}:
                pause()
        _atomic._stage = stage
        with _atomic.atomic_directory({str(path)!r}, kind="report") as tmp:
            (tmp / "a.txt").write_text("2")
            if {stage!r} == "body":
                pause()
            (tmp / "a.txt").unlink()
            write_version(tmp, 2)
        """
        )
    )


def run_until_ready(script: str, ready: Path, *, timeout: float = 120) -> None:
    """Start ``script``, wait until it says it reached its point, SIGKILL it."""
    proc = subprocess.Popen([sys.executable, "-c", script], env=ENV)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"the writer exited with {proc.returncode} before reaching its point")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the writer never reached its point")
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL


def neighbours(parent: Path) -> dict[str, str]:
    """Names beside the target that look like, but are not, its temporaries: never touched."""
    files = {
        "out.bak": "mine",
        ".out.h0-tmp-notes": "mine",  # not 32 hex digits
        ".out.tmp-notes": "mine",
        f".outer.h0-tmp-{'a' * 32}": "another target's",
        f".outer.h0-old-{'b' * 32}": "another target's",
    }
    for name, text in files.items():
        (parent / name).write_text(text)
    return files


# --- SIGKILL at each step ----------------------------------------------------------------------

STAGES = {
    # stage: (uses the exchange, version found afterwards)
    "body": [(True, 1), (False, 1)],
    "written": [(True, 1), (False, 1)],
    "marked": [(True, 1), (False, 1)],
    "aside": [(False, 1)],  # old renamed aside, new not yet in: recover() puts the old back
    "exchanged": [(True, 2)],  # swapped, the old not yet deleted
    "replaced": [(True, 2), (False, 2)],  # in place, leftovers not yet cleared
}
CASES = [(stage, ex, v) for stage, runs in STAGES.items() for ex, v in runs]


@pytest.mark.parametrize(
    ("stage", "exchange", "expected"),
    CASES,
    ids=[f"{s}-{'exchange' if e else 'rename'}" for s, e, _ in CASES],
)
def test_a_writer_killed_at_any_step_leaves_a_complete_output(tmp_path, stage, exchange, expected):
    path = tmp_path / "out"
    write(path, 1)
    mine = neighbours(tmp_path)
    ready = tmp_path / "ready"
    run_until_ready(pause_script(path, tmp_path / "ready", stage, exchange=exchange), ready)
    ready.unlink()
    if stage == "aside":
        assert not path.exists()
        assert [n for n in leftovers(tmp_path) if n.startswith(".out.h0-old-")]
    assert recover(path, "report") == path
    assert read_version(path) == expected
    write(path, 3)  # the next successful write clears what the killed one left
    assert read_version(path) == 3
    assert leftovers(tmp_path) == [".out.h0-tmp-notes", ".out.tmp-notes"]
    assert {n: (tmp_path / n).read_text() for n in mine} == mine
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*mine, "out"])


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "rename"])
def test_writers_killed_after_random_delays(tmp_path, exchange):
    """A writer rewrites the output in a loop; killed at a random moment, N times over."""
    path = tmp_path / "out"
    write(path, 0)
    script = (
        LIGHT
        + WRITER.replace("BIG", str(BIG))
        + textwrap.dedent(
            f"""
        import itertools
        if not {exchange}:
            _atomic._exchange = lambda a, b: False
        for version in itertools.count(1):
            with _atomic.atomic_directory({str(path)!r}, kind="report") as tmp:
                write_version(tmp, version)
        """
        )
    )
    rng = random.Random(13)
    seen = set()
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", script], env=ENV)
        time.sleep(rng.uniform(0.1, 0.6))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        assert recover(path, "report") == path
        seen.add(read_version(path))
    assert len(seen) > 1  # the kills did land while writes went on
    write(path, 10**6)
    assert read_version(path) == 10**6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.slow  # three processes that import jax: ~20 s on 2 busy cores
def test_checkpoint_saves_killed_mid_write_and_mid_swap(tmp_path):
    """h0.save itself, SIGKILLed inside orbax's write, between the renames, and after the swap."""
    path = h0.save(tmp_path / "ckpt", {"w": np.arange(4.0), "step": 1}, metadata={"v": 1})
    for point, exchange, expected in [
        ("orbax", True, 1),
        ("aside", False, 1),
        ("exchanged", True, 2),
    ]:
        ready = tmp_path / "ready"
        script = textwrap.dedent(
            f"""
            import time
            from pathlib import Path
            import numpy as np, h0
            from h0 import _atomic, _checkpoint
            def pause(*_):
                Path({str(ready)!r}).write_text("ready")
                time.sleep(120)
            if {point!r} == "orbax":  # after orbax has written some files, before the manifest
                _checkpoint._write_manifest = pause
            if not {exchange}:
                _atomic._exchange = lambda a, b: False
            _atomic._stage = lambda name: pause() if name == {point!r} else None
            h0.save({str(path)!r}, {{"w": np.arange(4.0) + 10, "step": 2}}, metadata={{"v": 2}})
            """
        )
        run_until_ready(script, ready)
        ready.unlink()
        tree, meta = h0.restore(path, like={"w": np.zeros(4), "step": 0}, with_metadata=True)
        assert tree["step"] == expected and meta == {"v": expected}
        np.testing.assert_array_equal(tree["w"], np.arange(4.0) + (10 if expected == 2 else 0))
        h0.save(path, {"w": np.arange(4.0), "step": 1}, metadata={"v": 1})
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_concurrent_writers_each_complete_and_the_last_stays(tmp_path):
    path = tmp_path / "out"
    write(path, 1)
    with atomic_directory(path, kind="report") as slow:
        write_version(slow, 2)
        write(path, 3)  # another writer, started later, finishes first: slow's files are kept
        assert slow.is_dir() and read_version(path) == 3
    assert read_version(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_reader_during_a_live_writers_renames_reads_the_old_output_where_it_is(
    tmp_path, monkeypatch
):
    path = tmp_path / "out"
    write(path, 1)
    monkeypatch.setattr(_atomic, "_exchange", lambda a, b: False)
    found = []

    def stage(name):
        if name == "aside":  # the writer is alive: recover() must not take its old output back
            found.append(recover(path, "report"))
            found.append(read_version(found[0]))

    monkeypatch.setattr(_atomic, "_stage", stage)
    write(path, 2)
    assert found[0].name.startswith(".out.h0-old-") and found[1] == 1
    assert read_version(path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_without_the_exchange_the_rename_fallback_is_used(tmp_path, monkeypatch):
    """A file system without RENAME_EXCHANGE answers EINVAL: the write renames aside instead."""
    import ctypes

    def renameat2(*args):
        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(_atomic, "_renameat2", renameat2)
    stages = []
    monkeypatch.setattr(_atomic, "_stage", stages.append)
    path = tmp_path / "out"
    write(path, 1)
    write(path, 2)
    assert read_version(path) == 2
    assert stages == ["written", "marked", "replaced", "written", "marked", "aside", "replaced"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    monkeypatch.setattr(_atomic, "_stage", lambda name: None)
    if _atomic._renameat2 is not None and sys.platform.startswith("linux"):
        monkeypatch.undo()
        stages = []
        monkeypatch.setattr(_atomic, "_stage", stages.append)
        write(path, 3)
        assert "exchanged" in stages and "aside" not in stages


def test_every_file_and_folder_is_fsynced_before_the_swap(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the synced files")
    monkeypatch.setattr(os, "fsync", fsync)
    write(tmp_path / "out", 1)
    names = {Path(p).name for p in synced}
    assert {"a.txt", "b.txt", "c.bin", "sub", MARKER, tmp_path.name} <= names


# --- Never replace what h0 did not write -------------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def test_a_user_directory_is_never_replaced(tmp_path):
    user = tmp_path / "results"
    (user / "sub").mkdir(parents=True)
    (user / "thesis.txt").write_text("four years of work")
    (user / "sub" / "data.csv").write_text("1,2\n")
    before = snapshot(user)
    ran = []
    with pytest.raises(TargetExistsError), atomic_directory(user, kind="report"):
        ran.append(True)  # never reached: refused before any work
    for attempt in [
        lambda: check_target(user, "report"),
        lambda: write(user, 1),
        lambda: h0.save(user, {"w": np.ones(2)}),
        lambda: h0.save(user, {"w": np.ones(2)}, kind="detector"),
    ]:
        with pytest.raises(TargetExistsError) as info:
            attempt()
        message = str(info.value)
        assert "\n" not in message and str(user) in message
        assert "refusing to replace it" in message and "'sub' and 1 more entries" in message
    assert not ran
    assert snapshot(user) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
    error = info.value  # what the command line catches and prints as one line (exit code 2)
    assert isinstance(error, UsageError | ValueError) and isinstance(error, FileExistsError)


def test_a_file_is_never_replaced(tmp_path):
    file = tmp_path / "out"
    file.write_text("not a directory")
    for attempt in [lambda: write(file, 1), lambda: h0.save(file, {"w": np.ones(2)})]:
        with pytest.raises(TargetExistsError, match=r"out is a file, not an h0 \w+ directory"):
            attempt()
    assert file.read_text() == "not a directory"
    link = tmp_path / "link"
    (tmp_path / "elsewhere").mkdir()
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(TargetExistsError, match="link is a symbolic link"):
        write(link, 1)
    assert link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "link", "out"]


def test_what_may_be_replaced(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    write(empty, 1)
    assert read_version(empty) == 1
    with pytest.raises(TargetExistsError, match=r"empty is an h0 report, not an h0 fleet"):
        write(empty, 2, kind="fleet")
    ckpt = h0.save(tmp_path / "ckpt", {"w": np.ones(2)})
    with pytest.raises(TargetExistsError, match="ckpt is an h0 checkpoint, not an h0 detector"):
        h0.save(ckpt, {"w": np.ones(2)}, kind="detector")
    with pytest.raises(ValueError, match="ckpt is an h0 checkpoint, not an h0 detector"):
        h0.restore(ckpt, kind="detector")
    # Outputs of h0 versions that wrote no marker are recognised by their files...
    old_report = tmp_path / "h0-report"
    old_report.mkdir()
    for name in ["scores.csv", "anomalies.json", "report.html", "report.png"]:
        (old_report / name).write_text("old")
    assert output_kind(old_report) == "report"
    write(old_report, 1)
    assert read_version(old_report) == 1
    # Kinds compare without an "h0-" prefix or a "-report" suffix.
    write(old_report, 2, kind="h0-report")
    assert read_version(old_report) == 2 and output_kind(old_report) == "h0-report"
    with pytest.raises(TargetExistsError, match="is an h0 report, not an h0 fleet report"):
        write(old_report, 3, kind="h0-fleet-report")
    # ...but not once a user's file is among them.
    for name in ["scores.csv", "anomalies.json", "report.html", "notes.txt"]:
        (tmp_path / "mixed").mkdir(exist_ok=True)
        (tmp_path / "mixed" / name).write_text("old")
    with pytest.raises(TargetExistsError, match="mixed exists but is not an h0 report"):
        write(tmp_path / "mixed", 1)
    assert len(list((tmp_path / "mixed").iterdir())) == 4
    old_ckpt = h0.save(tmp_path / "old-ckpt", {"w": np.ones(2)})
    (old_ckpt / MARKER).unlink()  # as h0.save wrote it before the marker existed...
    manifest = json.loads((old_ckpt / _checkpoint.MANIFEST).read_text())
    for key in ["metadata", "manifest_sha256"]:  # ...with the manifest it wrote then
        del manifest[key]
    (old_ckpt / _checkpoint.MANIFEST).write_text(json.dumps(manifest))
    assert h0.restore(old_ckpt, with_metadata=True, kind="checkpoint")[1] == {}
    assert output_kind(old_ckpt) == "checkpoint"
    h0.save(old_ckpt, {"w": np.zeros(2)})
    np.testing.assert_array_equal(h0.restore(old_ckpt)["w"], np.zeros(2))


def test_a_failing_body_leaves_the_previous_output(tmp_path):
    path = tmp_path / "out"
    write(path, 1)
    with (
        pytest.raises(RuntimeError, match="render failed"),
        atomic_directory(path, kind="report") as tmp,
    ):
        (tmp / "a.txt").write_text("2")
        raise RuntimeError("render failed")
    assert read_version(path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# --- Read-only and full file systems -----------------------------------------------------------

READ_ONLY_PROBE = textwrap.dedent(
    """
    import sys, numpy as np, h0
    from h0._atomic import OutputError, atomic_directory, check_target
    target = sys.argv[1]
    for attempt in (
        lambda: check_target(target, "report"),
        lambda: atomic_directory(target, kind="report").__enter__(),
        lambda: h0.save(target, {"w": np.ones(2)}),
    ):
        try:
            attempt()
            print("WROTE")
        except OutputError as error:
            print(f"OutputError: {error}")
    """
)


def _read_only_run(parent: Path, target: Path) -> subprocess.CompletedProcess:
    """Run the probe with ``parent`` read-only: a chmod, or (as root, which ignores the mode) a
    read-only bind mount in a private mount namespace; skips where neither is possible."""
    command = [sys.executable, "-c", READ_ONLY_PROBE, str(target)]
    if os.geteuid() != 0:
        parent.chmod(0o555)
        try:
            return subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        finally:
            parent.chmod(0o755)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("running as root (chmod 0o555 does not stop root) and unshare is missing")
    check = subprocess.run(
        [unshare, "-m", "sh", "-c", f"mount --bind -o ro '{parent}' '{parent}'"],
        capture_output=True,
        text=True,
    )
    if check.returncode != 0:
        pytest.skip(
            "running as root (chmod 0o555 does not stop root) and a read-only bind mount is not "
            f"allowed here: {check.stderr.strip()}"
        )
    script = f"mount --bind -o ro '{parent}' '{parent}' && exec \"$@\""
    return subprocess.run(
        [unshare, "-m", "sh", "-c", script, "sh", *command],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_read_only_parent_is_one_line_naming_the_path(tmp_path):
    parent = tmp_path / "readonly"
    parent.mkdir()
    (parent / "keep.txt").write_text("mine")
    result = _read_only_run(parent, parent / "out")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    reason = "read-only file system" if os.geteuid() == 0 else "no permission to create files"
    for line in lines:
        assert line.startswith(f"OutputError: cannot write {parent / 'out'}: ") and reason in line
    assert "Traceback" not in result.stderr and "Errno 30" not in result.stdout
    assert sorted(p.name for p in parent.iterdir()) == ["keep.txt"]


def test_a_full_disk_mid_write_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "out"
    write(path, 1)
    for code in [errno.ENOSPC, errno.EROFS]:
        with (
            pytest.raises(OutputError, match=rf"cannot write {path}: .*\(.*c\.bin\)\.$"),
            atomic_directory(path, kind="report") as tmp,
        ):
            raise OSError(code, os.strerror(code), str(tmp / "c.bin"))
    assert read_version(path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_missing_parent_chain_is_created_and_a_file_in_it_is_named(tmp_path):
    write(tmp_path / "a" / "b" / "out", 1)
    assert read_version(tmp_path / "a" / "b" / "out") == 1
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/out: .*file is a file"):
        check_target(tmp_path / "file" / "out", "report")


# --- Checkpoints: metadata, any array, corruption ----------------------------------------------


DETECTOR_LIKE = {
    "params": {"enc": {"kernel": np.ones((3, 4), np.float32)}, "init_h": np.zeros(4, np.float32)},
    "mean": np.array([0.5]),
    "scale": np.array([2.0]),
    "series": [
        {"values": np.linspace(0, 1, 7)[:, None], "features": np.zeros((0, 3))},
        {"values": np.arange(5.0)[:, None], "features": np.ones((2, 3))},
    ],
    "scalar": np.float64(1.5) * np.ones(()),
    "flags": np.array([True, False]),
    "counts": np.arange(3, dtype=np.int64),
}
META = {"config": {"window": 32, "hidden": [16, 8]}, "threshold": 0.53, "n_series": 2}


def assert_same(a, b):
    import jax

    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes())


def test_metadata_and_numpy_arrays_of_any_shape(tmp_path):
    path = h0.save(tmp_path / "det", DETECTOR_LIKE, metadata=META, kind="detector")
    assert output_kind(path) == "detector"
    assert _checkpoint.read_metadata(path, kind="detector") == META
    tree, meta = h0.restore(path, with_metadata=True, kind="detector")
    assert meta == META
    assert_same(tree, DETECTOR_LIKE)
    like = {**DETECTOR_LIKE, "mean": np.zeros(1)}
    assert_same(h0.restore(path, like=like), DETECTOR_LIKE)
    scalars = {"threshold": np.float32(0.5), "history": [np.float64(0.25)], "n": np.int64(2)}
    path2 = h0.save(tmp_path / "det2", DETECTOR_LIKE, metadata=scalars, kind="detector")
    assert _checkpoint.read_metadata(path2) == {"threshold": 0.5, "history": [0.25], "n": 2}
    with pytest.raises(TypeError, match="metadata must be JSON-serialisable"):
        h0.save(tmp_path / "det", DETECTOR_LIKE, metadata={"f": np.ones(2)}, kind="detector")
    assert h0.restore(path, with_metadata=True)[1] == META  # the failed save touched nothing


def _largest_data_file(path: Path) -> Path:
    files = [p for p in path.rglob("*") if p.is_file() and "/d/" in p.as_posix()]
    return max(files, key=lambda p: p.stat().st_size)


def _fails(path: Path, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        h0.restore(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_corrupted_checkpoints_are_one_line_naming_the_file(tmp_path):
    tree = {"w": np.random.default_rng(0).normal(size=(64, 64)), "step": 3}
    path = h0.save(tmp_path / "ckpt", tree, metadata=META)
    target = _largest_data_file(path)
    rel = target.relative_to(path).as_posix()
    good = target.read_bytes()
    flipped = bytearray(good)
    for i in range(100, 116):  # 16 flipped bytes
        flipped[i] ^= 0xFF
    target.write_bytes(bytes(flipped))
    _fails(path, f"ckpt is corrupted: file {rel} fails its checksum")
    target.write_bytes(good[:-7])
    _fails(path, rf"ckpt is corrupted: file {rel} has \d+ bytes, expected \d+ \(truncated\?\)")
    target.write_bytes(good)
    assert h0.restore(path)["step"] == 3

    manifest_file = path / _checkpoint.MANIFEST
    text = manifest_file.read_text()
    manifest_file.write_text(text[: len(text) // 2])
    _fails(path, r"ckpt has a corrupted h0_checkpoint\.json: ")
    manifest = json.loads(text)
    manifest["metadata"]["threshold"] = 0.73  # a flipped digit in the metadata
    manifest_file.write_text(json.dumps(manifest))
    _fails(path, r"ckpt has a corrupted h0_checkpoint\.json: it fails its checksum")
    del manifest["files"], manifest["manifest_sha256"]  # as a manifest without its own checksum
    manifest_file.write_text(json.dumps(manifest))
    _fails(path, r"ckpt has a corrupted h0_checkpoint\.json: its 'files' are missing or malformed")
    manifest_file.write_text(text)
    (path / "_CHECKPOINT_METADATA").unlink()
    _fails(path, "ckpt is incomplete: file _CHECKPOINT_METADATA is missing")


def test_a_corrupted_checkpoint_is_one_line_from_a_user_script(tmp_path):
    path = h0.save(tmp_path / "ckpt", {"w": np.ones((32, 32))})
    target = _largest_data_file(path)
    data = bytearray(target.read_bytes())
    data[40:56] = bytes(b ^ 0xFF for b in data[40:56])
    target.write_bytes(bytes(data))
    script = textwrap.dedent(
        f"""
        import sys, h0
        try:
            h0.restore({str(path)!r})
        except ValueError as error:
            sys.exit(f"error: {{error}}")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: Checkpoint {path} is corrupted: file "
        f"{target.relative_to(path).as_posix()} fails its checksum."
    )
