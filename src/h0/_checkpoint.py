"""Checkpoints: orbax-checkpoint underneath, atomic writes, and clear errors on the way back.

A checkpoint is a directory written by orbax's ``StandardCheckpointHandler`` plus a manifest,
``h0_checkpoint.json``, with every leaf's path, shape and dtype and every file's size and SHA-256.
:func:`save` writes into a temporary sibling directory and renames it into place only once
everything is on disk, so a process killed mid-save leaves the previous checkpoint readable;
:func:`restore` checks the manifest against the files and against ``like`` before reading, so a
truncated, corrupted or mismatched checkpoint raises a ``ValueError`` that names the path and
what differs.

Trees may hold Linen variables dicts, optax states, numbers, typed PRNG keys, and ``flax.nnx``
modules, optimizers or states (saved as their pure-dict state; restored in place into the modules of
``like``).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from h0._typing import PyTree

MANIFEST = "h0_checkpoint.json"
FORMAT = "h0-checkpoint"
VERSION = 1
_TMP = ".h0-tmp-"
_OLD = ".h0-old-"


def _is_nnx(x: Any) -> bool:
    return isinstance(x, nnx.Pytree | nnx.State)


def _is_key(x: Any) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_pure(tree: PyTree) -> PyTree:
    """NNX modules/states to pure dicts, typed PRNG keys to their raw data."""

    def nnx_to_pure(x: Any) -> Any:
        if isinstance(x, nnx.Pytree):
            x = nnx.state(x)
        return nnx.to_pure_dict(x) if isinstance(x, nnx.State) else x

    tree = jax.tree.map(nnx_to_pure, tree, is_leaf=_is_nnx)
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _leaf_specs(tree: PyTree) -> list[dict[str, Any]]:
    specs = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = leaf if hasattr(leaf, "dtype") and hasattr(leaf, "shape") else np.asarray(leaf)
        specs.append(
            {
                "path": jax.tree_util.keystr(path),
                "shape": list(array.shape),
                "dtype": str(array.dtype),
            }
        )
    return specs


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _file_table(root: Path) -> dict[str, dict[str, Any]]:
    table = {}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if rel != MANIFEST:
            table[rel] = {"size": file.stat().st_size, "sha256": _hash(file)}
    return table


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_manifest(root: Path, tree: PyTree) -> None:
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "leaves": _leaf_specs(tree),
        "files": _file_table(root),
    }
    with (root / MANIFEST).open("w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(root)


def _write(tmp: Path, tree: PyTree) -> None:
    """Write the orbax checkpoint and then the manifest into the temporary directory ``tmp``."""
    checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    checkpointer.save(tmp, args=ocp.args.StandardSave(tree))
    _write_manifest(tmp, tree)


def _rename(src: Path, dst: Path) -> None:
    """Rename a directory (atomic within one file system)."""
    os.rename(src, dst)


def _siblings(path: Path, marker: str) -> list[Path]:
    pattern = glob.escape(f".{path.name}{marker}") + "*"
    return sorted(path.parent.glob(pattern), key=lambda p: p.stat().st_mtime)


def save(path: str | os.PathLike, tree: PyTree, *, overwrite: bool = True) -> Path:
    """Save a pytree (params, optimiser state, step, NNX modules...) as a checkpoint directory.

    The write is atomic: everything goes to a temporary directory beside ``path``, which is
    renamed to ``path`` only when complete. Replacing an existing checkpoint renames the old one
    aside first and deletes it last; if the process dies in between, :func:`restore` still finds
    the old one. Use one writer per ``path`` (a save clears leftovers of earlier killed saves).

    Args:
        path: The checkpoint directory to create (or replace).
        tree: A pytree of arrays and numbers; ``flax.nnx`` modules and states inside it are saved
            as their state.
        overwrite: Replace an existing h0 checkpoint at ``path`` (a directory that is not an h0
            checkpoint is never replaced).

    Returns:
        The checkpoint's absolute path.

    Raises:
        FileExistsError: When ``path`` exists and ``overwrite`` is ``False``.
        ValueError: When ``path`` exists but is not an h0 checkpoint.

    Example:
        >>> import tempfile, jax.numpy as jnp, h0
        >>> path = h0.save(tempfile.mkdtemp() + '/ckpt', {'w': jnp.arange(3.0), 'step': 7})
        >>> h0.restore(path, like={'w': jnp.zeros(3), 'step': 0})['step']
        7
    """
    path = Path(path).absolute()
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        if not (path / MANIFEST).is_file():
            raise ValueError(
                f"{path} exists but is not an h0 checkpoint (no {MANIFEST}); refusing to replace "
                "it. Choose another path or remove it."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    pure = _to_pure(tree)
    tmp = path.parent / f".{path.name}{_TMP}{uuid.uuid4().hex}"
    try:
        _write(tmp, pure)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}{_OLD}{uuid.uuid4().hex}"
        _rename(path, old)
    _rename(tmp, path)
    _fsync_dir(path.parent)
    # Only now is the new checkpoint in place: clear the old one and leftovers of killed saves.
    for stale in [*([old] if old else []), *_siblings(path, _OLD), *_siblings(path, _TMP)]:
        shutil.rmtree(stale, ignore_errors=True)
    return path


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if not path.is_dir():
        raise ValueError(f"{path} is not a checkpoint: no such directory.")
    if not file.is_file():
        raise ValueError(f"{path} is not an h0 checkpoint: it has no {MANIFEST}.")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} has a corrupted {MANIFEST}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an h0 checkpoint: {MANIFEST} has the wrong format.")
    return manifest


def _check_files(path: Path, manifest: dict[str, Any]) -> None:
    for rel, expected in manifest["files"].items():
        file = path / rel
        if not file.is_file():
            raise ValueError(f"Checkpoint {path} is incomplete: file {rel} is missing.")
        size = file.stat().st_size
        if size != expected["size"]:
            raise ValueError(
                f"Checkpoint {path} is corrupted: file {rel} has {size} bytes, expected "
                f"{expected['size']} (truncated?)."
            )
        if _hash(file) != expected["sha256"]:
            raise ValueError(f"Checkpoint {path} is corrupted: file {rel} fails its checksum.")


def _check_like(path: Path, manifest: dict[str, Any], like: PyTree) -> None:
    saved = {leaf["path"]: leaf for leaf in manifest["leaves"]}
    wanted = {leaf["path"]: leaf for leaf in _leaf_specs(like)}
    problems = []
    missing = [p for p in wanted if p not in saved]
    extra = [p for p in saved if p not in wanted]
    if missing:
        problems.append(f"leaves not in the checkpoint: {', '.join(missing[:5])}")
    if extra:
        problems.append(f"leaves in the checkpoint but not in like: {', '.join(extra[:5])}")
    for p, want in wanted.items():
        have = saved.get(p)
        if have is None:
            continue
        if have["shape"] != want["shape"]:
            problems.append(
                f"{p} has shape {tuple(have['shape'])} in the checkpoint but {tuple(want['shape'])} "
                "in like"
            )
        elif have["dtype"] != want["dtype"]:
            problems.append(
                f"{p} has dtype {have['dtype']} in the checkpoint but {want['dtype']} in like"
            )
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise ValueError(f"Checkpoint {path} does not match like: {shown}.")


def _locate(path: Path) -> Path:
    """``path``, or the previous checkpoint a save killed mid-swap left beside it."""
    if path.exists():
        return path
    for old in reversed(_siblings(path, _OLD)):
        if (old / MANIFEST).is_file():
            return old
    return path


def _from_pure(restored: PyTree, like: PyTree) -> PyTree:
    """Put restored pure values back into ``like``'s NNX modules/states and typed keys."""
    like_leaves, treedef = jax.tree.flatten(like, is_leaf=_is_nnx)
    restored_parts = treedef.flatten_up_to(restored)
    out = []
    for like_leaf, part in zip(like_leaves, restored_parts, strict=True):
        if _is_nnx(like_leaf):
            state = nnx.state(like_leaf) if isinstance(like_leaf, nnx.Pytree) else like_leaf
            part = jax.tree.map(
                lambda r, s: (
                    jax.random.wrap_key_data(r, impl=jax.random.key_impl(s)) if _is_key(s) else r
                ),
                part,
                nnx.to_pure_dict(state),
            )
            state = nnx.replace_by_pure_dict(state, part) or state
            if isinstance(like_leaf, nnx.Pytree):
                nnx.update(like_leaf, state)
                out.append(like_leaf)
            else:
                out.append(state)
        elif _is_key(like_leaf):
            out.append(jax.random.wrap_key_data(part, impl=jax.random.key_impl(like_leaf)))
        else:
            out.append(part)
    return jax.tree.unflatten(treedef, out)


def restore(path: str | os.PathLike, like: PyTree = None) -> PyTree:
    """Read a checkpoint written by :func:`save`.

    Args:
        path: The checkpoint directory.
        like: A pytree with the structure, shapes and dtypes to restore into: freshly
            initialised variables, or only their shapes (``jax.eval_shape(model.init, key, x)``,
            which computes nothing), for any batch size: h0's parameters do not depend on it.
            ``flax.nnx`` modules in it are updated in place and returned. ``None`` returns the
            saved tree as nested dicts and lists of arrays.

    Returns:
        The restored pytree, structured like ``like``.

    Raises:
        ValueError: When ``path`` is not an h0 checkpoint, its files are truncated or corrupted,
            or it does not match ``like`` (the message names the path and the leaves that differ).
    """
    path = _locate(Path(path).absolute())
    manifest = _read_manifest(path)
    _check_files(path, manifest)
    checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    if like is None:
        try:
            return checkpointer.restore(path)
        except Exception as e:
            raise ValueError(f"Checkpoint {path} could not be read: {e}") from e
    pure_like = _to_pure(like)
    _check_like(path, manifest, pure_like)
    try:
        restored = checkpointer.restore(path, args=ocp.args.StandardRestore(pure_like))
    except Exception as e:
        raise ValueError(f"Checkpoint {path} could not be read: {e}") from e
    restored = jax.tree.map(
        lambda r, x: type(x)(np.asarray(r)) if isinstance(x, int | float | bool) else r,
        restored,
        pure_like,
    )
    return _from_pure(restored, like)
