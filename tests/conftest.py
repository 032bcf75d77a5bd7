"""Test configuration: strict JAX, and where the NAB corpus lives."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jax
import pytest

from h0 import _compilecache

jax.config.update("jax_numpy_rank_promotion", "raise")
# The command line's compilation cache stays off in tests (they compile afresh and write nothing
# outside their tmp directories); tests/test_compilecache.py turns it on where it is the subject.
os.environ.setdefault("H0_COMPILATION_CACHE", "off")

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Environment variable naming the run's shared JAX compilation cache (see ``pytest_configure``).
TEST_CACHE_ENV = "H0_TEST_JAX_CACHE"


def pytest_configure(config: pytest.Config) -> None:
    """A JAX compilation cache for the run, one directory per xdist worker, deleted at the end.

    Many tests compile the same programs (the detector's train step at the same shapes, built
    anew by each test); reading them back from disk instead of compiling again halved a busy
    2-core run of the fast tests (23 to 12 minutes). The first process (xdist's controller, whose environment the workers
    inherit) makes a fresh temporary directory, so no run reads another run's entries; each
    worker writes its own subdirectory, because JAX writes entries in place and a reader in
    another process could meet one half-written. Subprocesses (the command line under test)
    keep ``H0_COMPILATION_CACHE=off``. ``H0_TEST_JAX_CACHE=off`` compiles everything afresh.
    """
    if os.environ.get(TEST_CACHE_ENV) == "off":
        return
    if TEST_CACHE_ENV not in os.environ:
        os.environ[TEST_CACHE_ENV] = tempfile.mkdtemp(prefix="h0-test-jax-cache-")
        config._h0_cache_owner = os.environ[TEST_CACHE_ENV]  # deleted by pytest_unconfigure
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    _compilecache.use(Path(os.environ[TEST_CACHE_ENV]) / worker)


def pytest_unconfigure(config: pytest.Config) -> None:
    owned = getattr(config, "_h0_cache_owner", None)
    if owned:
        shutil.rmtree(owned, ignore_errors=True)


def nab_root() -> Path | None:
    """The NAB corpus: ``$H0_NAB_ROOT``, else ``../shared/datasets/nab`` beside the checkout."""
    env = os.environ.get("H0_NAB_ROOT")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared" / "datasets" / "nab"]
    for path in candidates:
        if (path / "labels" / "combined_windows.json").is_file():
            return path
    return None


@pytest.fixture
def nab() -> Path:
    """Path to the NAB corpus; skips the test with a clear reason when it is absent."""
    root = nab_root()
    if root is None:
        pytest.skip("NAB corpus not found: set H0_NAB_ROOT or place it at ../shared/datasets/nab")
    return root
