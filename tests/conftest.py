"""Test configuration: strict JAX, and where the NAB corpus lives."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
# The command line's compilation cache stays off in tests (they compile afresh and write nothing
# outside their tmp directories); tests/test_compilecache.py turns it on where it is the subject.
os.environ.setdefault("H0_COMPILATION_CACHE", "off")

REPO_ROOT = Path(__file__).resolve().parents[1]


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
