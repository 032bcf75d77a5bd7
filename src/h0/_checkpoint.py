"""Checkpoints: orbax-checkpoint underneath, atomic writes, and clear errors on the way back.

A checkpoint is a directory written by orbax's ``StandardCheckpointHandler`` plus a manifest,
``h0_checkpoint.json``, with every leaf's path, shape and dtype, every file's size and SHA-256,
the caller's JSON metadata and a checksum of the manifest itself. :func:`save` writes through
:func:`h0._atomic.atomic_directory`: into a temporary sibling directory, swapped into place only
once everything is on disk, so a process killed mid-save leaves the previous checkpoint readable,
and a directory that is not an h0 checkpoint is never replaced. :func:`restore` checks the
manifest against the files and against ``like`` before reading, so a truncated, corrupted or
mismatched checkpoint raises a ``ValueError`` that names the path, the file and what differs.

Trees may hold Linen variables dicts, optax states, numbers, typed PRNG keys, numpy arrays of any
shape and dtype (zero-size ones included), and ``flax.nnx`` modules, optimizers or states (saved
as their pure-dict state; restored in place into the modules of ``like``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from h0._atomic import (
    MARKER,
    TargetExistsError,
    atomic_directory,
    output_kind,
    recover,
    same_kind,
)
from h0._typing import PyTree

MANIFEST = "h0_checkpoint.json"
FORMAT = "h0-checkpoint"
VERSION = 1
_SELF_HASH = "manifest_sha256"


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


def _as_array(leaf: Any) -> Any:
    return leaf if hasattr(leaf, "dtype") and hasattr(leaf, "shape") else np.asarray(leaf)


def _leaf_specs(tree: PyTree) -> list[dict[str, Any]]:
    specs = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = _as_array(leaf)
        specs.append(
            {
                "path": jax.tree_util.keystr(path),
                "shape": list(array.shape),
                "dtype": str(array.dtype),
            }
        )
    return specs


def _is_empty(leaf: Any) -> bool:
    return math.prod(_as_array(leaf).shape) == 0


def _stand_in(leaf: Any) -> Any:
    """Orbax cannot store zero-size arrays; one element of their dtype stands in for them.

    Their shape and dtype, all there is to them, are in the manifest.
    """
    return np.zeros((1,), _as_array(leaf).dtype) if _is_empty(leaf) else leaf


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
        if rel not in {MANIFEST, MARKER}:
            table[rel] = {"size": file.stat().st_size, "sha256": _hash(file)}
    return table


def _self_hash(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != _SELF_HASH}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _write_manifest(root: Path, tree: PyTree, metadata: dict[str, Any] | None = None) -> None:
    leaves = _leaf_specs(tree)
    for spec, leaf in zip(leaves, jax.tree.leaves(tree), strict=True):
        if _is_empty(leaf):
            spec["empty"] = True
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "leaves": leaves,
        "files": _file_table(root),
        "metadata": metadata or {},
    }
    manifest[_SELF_HASH] = _self_hash(manifest)
    with (root / MANIFEST).open("w") as f:
        json.dump(manifest, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _write(tmp: Path, tree: PyTree, metadata: dict[str, Any] | None) -> None:
    """Write the orbax checkpoint and then the manifest into the directory ``tmp``."""
    tmp.rmdir()  # orbax builds the directory itself (in its own temporary beside it)
    checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    checkpointer.save(tmp, args=ocp.args.StandardSave(jax.tree.map(_stand_in, tree)))
    _write_manifest(tmp, tree, metadata)


def _check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(f"metadata must be a dict with str keys; got {type(metadata).__name__}.")

    def numpy_scalar(x: Any) -> Any:
        if isinstance(x, np.generic):  # np.float32(0.5) from a computation: stored as 0.5
            return x.item()
        raise TypeError(f"Object of type {type(x).__name__} is not JSON serializable")

    try:
        return json.loads(json.dumps(metadata, default=numpy_scalar))
    except (TypeError, ValueError) as e:
        raise TypeError(f"metadata must be JSON-serialisable: {e}") from None


def save(
    path: str | os.PathLike,
    tree: PyTree,
    *,
    overwrite: bool = True,
    metadata: dict[str, Any] | None = None,
    kind: str = "checkpoint",
) -> Path:
    """Save a pytree (params, optimiser state, step, NNX modules...) as a checkpoint directory.

    The write is atomic (:func:`h0._atomic.atomic_directory`): everything goes to a temporary
    directory beside ``path``, which replaces ``path`` in one step only when complete; a process
    killed at any point leaves the previous checkpoint for :func:`restore`. The next save clears
    what killed saves left behind.

    Args:
        path: The checkpoint directory to create (or replace).
        tree: A pytree of arrays (jax or numpy, any shape, zero-size too) and numbers;
            ``flax.nnx`` modules and states inside it are saved as their state.
        overwrite: Replace an existing h0 checkpoint of the same ``kind`` at ``path``.
        metadata: JSON-serialisable dict (numpy scalars are stored as Python numbers) kept in
            the manifest, under its checksum; read it back with ``restore(..., with_metadata=True)`` or :func:`read_metadata`.
        kind: What the checkpoint holds, e.g. ``'detector'``: a save replaces only a checkpoint
            of the same kind, and ``restore(..., kind=...)`` checks it.

    Returns:
        The checkpoint's absolute path.

    Raises:
        FileExistsError: When ``path`` exists and ``overwrite`` is ``False``.
        ValueError: When ``path`` is a file, a directory h0 did not write or an h0 output of
            another kind (a :class:`h0._atomic.TargetExistsError`, also a ``FileExistsError``),
            or cannot be written (:class:`h0._atomic.OutputError`); raised before any work.
        TypeError: When ``metadata`` is not JSON-serialisable.

    Example:
        >>> import tempfile, jax.numpy as jnp, h0
        >>> path = h0.save(tempfile.mkdtemp() + '/ckpt', {'w': jnp.arange(3.0), 'step': 7})
        >>> h0.restore(path, like={'w': jnp.zeros(3), 'step': 0})['step']
        7
    """
    path = Path(path).absolute()
    if not overwrite and (path.exists() or path.is_symlink()):
        raise TargetExistsError(f"{path} exists; pass overwrite=True to replace it.")
    metadata = _check_metadata(metadata)
    pure = _to_pure(tree)
    with atomic_directory(path, kind=kind) as tmp:
        _write(tmp, pure, metadata)
    return path


def _corrupted(path: Path, what: str) -> ValueError:
    return ValueError(f"{path} has a corrupted {MANIFEST}: {what}.")


def _check_manifest(path: Path, manifest: Any) -> dict[str, Any]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path} is not an h0 checkpoint: {MANIFEST} has the wrong format.")
    version = manifest.get("version")
    if not isinstance(version, int):
        raise _corrupted(path, "no version")
    if version > VERSION:
        raise ValueError(
            f"{path} was written by a newer h0 (checkpoint version {version}; this h0 reads "
            f"{VERSION}). Upgrade h0."
        )
    if _SELF_HASH in manifest and manifest[_SELF_HASH] != _self_hash(manifest):
        raise _corrupted(path, "it fails its checksum")
    leaves, files = manifest.get("leaves"), manifest.get("files")
    if not isinstance(leaves, list) or not all(
        isinstance(leaf, dict)
        and isinstance(leaf.get("path"), str)
        and isinstance(leaf.get("dtype"), str)
        and isinstance(leaf.get("shape"), list)
        and all(isinstance(n, int) for n in leaf["shape"])
        for leaf in leaves
    ):
        raise _corrupted(path, "its 'leaves' are missing or malformed")
    if not isinstance(files, dict) or not all(
        isinstance(rel, str)
        and not Path(rel).is_absolute()
        and ".." not in Path(rel).parts
        and isinstance(entry, dict)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("sha256"), str)
        for rel, entry in files.items()
    ):
        raise _corrupted(path, "its 'files' are missing or malformed")
    if not isinstance(manifest.get("metadata", {}), dict):
        raise _corrupted(path, "its 'metadata' is not a dict")
    return manifest


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / MANIFEST
    if path.is_file():
        raise ValueError(f"{path} is not a checkpoint: it is a file, not a directory.")
    if not path.is_dir():
        raise ValueError(f"{path} is not a checkpoint: no such directory.")
    if not file.is_file():
        raise ValueError(f"{path} is not an h0 checkpoint: it has no {MANIFEST}.")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise _corrupted(path, str(e)) from None
    return _check_manifest(path, manifest)


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


def _open(path: str | os.PathLike, kind: str | None) -> tuple[Path, dict[str, Any]]:
    """The directory to read (recovered if a killed save left it aside), its checked manifest."""
    path = recover(Path(path).absolute(), kind)
    manifest = _read_manifest(path)
    if kind is not None:
        found = output_kind(path)
        if not same_kind(found, kind):
            raise ValueError(f"{path} is an h0 {found}, not an h0 {kind}.")
    return path, manifest


def read_metadata(path: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """The metadata dict saved with a checkpoint (``{}`` if none), without reading its arrays.

    Args:
        path: The checkpoint directory.
        kind: When given, the checkpoint must have been saved with this ``kind``.

    Returns:
        The ``metadata`` passed to :func:`save`.

    Raises:
        ValueError: When ``path`` is not an h0 checkpoint (of ``kind``) or its manifest is
            corrupted.

    Example:
        >>> import tempfile, numpy as np, h0
        >>> path = h0.save(tempfile.mkdtemp() + '/d', {'x': np.ones(2)}, metadata={'n': 2})
        >>> read_metadata(path)
        {'n': 2}
    """
    return _open(path, kind)[1].get("metadata", {})


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


def _fill_empty(restored: PyTree, manifest: dict[str, Any]) -> PyTree:
    """Zero-size leaves (stored as a one-element stand-in) back to their saved shape."""
    empty = {
        leaf["path"]: np.zeros(leaf["shape"], leaf["dtype"])
        for leaf in manifest["leaves"]
        if leaf.get("empty")
    }
    if not empty:
        return restored
    return jax.tree_util.tree_map_with_path(
        lambda p, x: empty.get(jax.tree_util.keystr(p), x), restored
    )


def restore(
    path: str | os.PathLike,
    like: PyTree = None,
    *,
    with_metadata: bool = False,
    kind: str | None = None,
) -> PyTree:
    """Read a checkpoint written by :func:`save`.

    Args:
        path: The checkpoint directory. If a save killed while replacing it left it missing,
            the previous checkpoint is put back first (:func:`h0._atomic.recover`).
        like: A pytree with the structure, shapes and dtypes to restore into: freshly
            initialised variables, or only their shapes (``jax.eval_shape(model.init, key, x)``,
            which computes nothing), for any batch size: h0's parameters do not depend on it.
            ``flax.nnx`` modules in it are updated in place and returned. ``None`` returns the
            saved tree as nested dicts and lists of arrays (numpy arrays keep their dtype).
        with_metadata: Also return the ``metadata`` dict given to :func:`save`.
        kind: When given, the checkpoint must have been saved with this ``kind``.

    Returns:
        The restored pytree, structured like ``like``; with ``with_metadata``, a pair
        ``(tree, metadata)``.

    Raises:
        ValueError: When ``path`` is not an h0 checkpoint (of ``kind``), its manifest or files are
            truncated or corrupted, or it does not match ``like``: the message names the path
            and the file or leaves that differ.

    Example:
        >>> import tempfile, numpy as np, h0
        >>> tree = {'series': [np.arange(3.0), np.zeros((0, 2))], 'n': 2}
        >>> path = h0.save(tempfile.mkdtemp() + '/d', tree, metadata={'kind': 'demo'})
        >>> back, meta = h0.restore(path, with_metadata=True)
        >>> [a.shape for a in back['series']], meta
        ([(3,), (0, 2)], {'kind': 'demo'})
    """
    path, manifest = _open(path, kind)
    _check_files(path, manifest)
    checkpointer = ocp.Checkpointer(ocp.StandardCheckpointHandler())
    if like is None:
        try:
            restored = checkpointer.restore(path)
        except Exception as e:
            raise ValueError(f"Checkpoint {path} could not be read: {e}") from e
        restored = _fill_empty(restored, manifest)
    else:
        pure_like = _to_pure(like)
        _check_like(path, manifest, pure_like)
        try:
            restored = checkpointer.restore(
                path, args=ocp.args.StandardRestore(jax.tree.map(_stand_in, pure_like))
            )
        except Exception as e:
            raise ValueError(f"Checkpoint {path} could not be read: {e}") from e
        restored = _fill_empty(restored, manifest)
        restored = jax.tree.map(
            lambda r, x: type(x)(np.asarray(r)) if isinstance(x, int | float | bool) else r,
            restored,
            pure_like,
        )
        restored = _from_pure(restored, like)
    return (restored, manifest.get("metadata", {})) if with_metadata else restored
