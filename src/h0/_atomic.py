"""Interim atomic directory writer (replaced by the full implementation on branch ``atomic``)."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

MARKER = ".h0-kind"


@contextlib.contextmanager
def atomic_directory(path: Path, *, kind: str) -> Iterator[Path]:
    """Build a sibling temporary directory and swap it in as ``path`` when the block succeeds."""
    path = Path(path).absolute()
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"{path} exists and is not a directory; refusing to replace it.")
        marker = path / MARKER
        if any(path.iterdir()) and not (marker.is_file() and marker.read_text() == kind):
            raise FileExistsError(
                f"{path} exists and is not an h0 output ({kind}); refusing to replace it."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / MARKER).write_text(kind)
        yield tmp
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(path, old)
        os.rename(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
