"""One atomic directory writer for everything h0 writes: checkpoints, detectors, reports, fleets.

An output is a directory built whole in a temporary sibling (same parent, so the same file
system) and then put in place of its target as one unit:

* **It never replaces what h0 did not write.** The target may be missing, an empty directory, or
  an h0 output of the same *kind* (a ``.h0-output.json`` marker inside names the kind; outputs
  written by h0 before the marker existed are recognised by their files). A file, a symbolic
  link, or a directory holding anything else raises :class:`TargetExistsError`, before any work
  when callers run :func:`check_target` first.
* **There is no moment without an output.** On Linux the new directory and the old one are
  swapped by one ``renameat2(RENAME_EXCHANGE)`` call and the old one is deleted afterwards.
  Elsewhere (or on file systems without the exchange) the old one is renamed aside to
  ``.NAME.h0-old-*`` first; a process killed before the second rename leaves it there, and
  :func:`recover`, which loaders call, puts it back.
* **Killed writes leave nothing behind for long.** Their ``.NAME.h0-tmp-*`` / ``.NAME.h0-old-*``
  siblings are deleted by the next successful write of the same target; other names are never
  touched.
* Every file and directory is fsynced before the swap, the parent after it; the marker is
  written last, so an output with a marker is complete.

Writes of one target by several processes at once each complete, the last one's output staying:
a lock beside each temporary marks it as live, so a write clears only the leftovers of killed ones.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from h0._atomic import atomic_directory, output_kind
    >>> out = Path(tempfile.mkdtemp()) / 'report'
    >>> with atomic_directory(out, kind='report') as tmp:
    ...     _ = (tmp / 'scores.csv').write_text('t,score')
    >>> sorted(p.name for p in out.iterdir()), output_kind(out)
    (['.h0-output.json', 'scores.csv'], 'report')
    >>> _ = (out.parent / 'thesis').mkdir()
    >>> _ = (out.parent / 'thesis' / 'thesis.txt').write_text('four years of work')
    >>> with atomic_directory(out.parent / 'thesis', kind='report') as tmp:  # doctest: +ELLIPSIS
    ...     pass
    Traceback (most recent call last):
    ...
    h0._atomic.TargetExistsError: .../thesis exists but is not an h0 report (it holds 'thesis.txt', which h0 did not write); refusing to replace it. Choose another path or remove it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from h0._errors import UsageError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; other writers' leftovers are cleared anyway
    fcntl = None

MARKER = ".h0-output.json"
_MARKER_FORMAT = "h0-output"
_TMP = "h0-tmp"
_OLD = "h0-old"
_KIND = re.compile(r"[a-z][a-z0-9-]*")
# Errors of the write itself (not of reading inputs): reported in one line naming the target.
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class OutputError(UsageError):
    """h0 cannot or will not write an output at this path; the message is one line naming it.

    A :class:`~h0._errors.UsageError`, so the command line prints it as one line (exit code 2).
    """


class TargetExistsError(OutputError, FileExistsError):
    """The target exists and is not an h0 output of the kind being written: it is left alone."""


# --------------------------------------------------------------------------------- what is ours


def _read_json(file: Path) -> object:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError):
        return None


def _only(root: Path, allowed: set[str], required: set[str]) -> bool:
    """``root`` holds only files named in ``allowed``, and all of ``required``."""
    entries = list(root.iterdir())
    names = {e.name for e in entries}
    return required <= names <= allowed and all(e.is_file() for e in entries)


def _legacy_checkpoint(root: Path) -> bool:
    return (root / "h0_checkpoint.json").is_file()


def _legacy_detector(root: Path) -> bool:
    meta = _read_json(root / "detector.json")
    names = {e.name for e in root.iterdir()}
    return (
        isinstance(meta, dict)
        and str(meta.get("format", "")).startswith("h0-gru-autoencoder-detector/")
        and names <= {"detector.json", "params", "scoring.npz"}
    )


_REPORT_FILES = {"scores.csv", "anomalies.json", "report.html"}


def _legacy_report(root: Path) -> bool:
    return _only(root, _REPORT_FILES | {"report.png"}, _REPORT_FILES)


def _legacy_fleet(root: Path) -> bool:
    if not ((root / "fleet.json").is_file() and (root / "fleet.csv").is_file()):
        return False
    for entry in root.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            if not _only(entry, {"scores.csv", "anomalies.json"}, set()):
                return False
        elif entry.name not in {"fleet.csv", "fleet.json"}:
            return False
    return True


# Outputs h0 wrote before the marker existed, recognised by their files.
_LEGACY: dict[str, Callable[[Path], bool]] = {
    "checkpoint": _legacy_checkpoint,
    "detector": _legacy_detector,
    "report": _legacy_report,
    "fleet": _legacy_fleet,
}


def output_kind(path: str | os.PathLike[str]) -> str | None:
    """The kind of h0 output the directory ``path`` holds, or ``None`` if it is not one.

    Args:
        path: A directory.

    Returns:
        The kind named by its marker (``'checkpoint'``, ``'detector'``, ``'report'``...), the
        kind of an output written by an h0 without markers, or ``None``.

    Example:
        >>> import tempfile
        >>> output_kind(tempfile.mkdtemp()) is None
        True
    """
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return None
    marker = _read_json(path / MARKER)
    if isinstance(marker, dict) and marker.get("format") == _MARKER_FORMAT:
        kind = marker.get("kind")
        return kind if isinstance(kind, str) else None
    if (path / MARKER).exists():
        return None  # an unreadable marker: not trusted
    try:
        return next((kind for kind, test in _LEGACY.items() if test(path)), None)
    except OSError:
        return None


def _check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError(f"kind must be a lower-case word such as 'report'; got {kind!r}.")


def _canonical(kind: str) -> str:
    name = kind.removeprefix("h0-")
    return name.removesuffix("-report") or name


def same_kind(a: str | None, b: str | None) -> bool:
    """Whether two kinds name the same output.

    An ``h0-`` prefix and a ``-report`` suffix are ignored: ``'h0-report'`` is ``'report'``,
    ``'h0-fleet-report'`` is ``'fleet'``.

    Example:
        >>> same_kind('h0-fleet-report', 'fleet'), same_kind('report', 'fleet')
        (True, False)
    """
    return a is not None and b is not None and _canonical(a) == _canonical(b)


def _name(kind: str) -> str:
    """``'h0 fleet report'`` for the kind ``'h0-fleet-report'``: how messages name a kind."""
    return "h0 " + kind.removeprefix("h0-").replace("-", " ")


def check_target(path: str | os.PathLike[str], kind: str) -> Path:
    """Check, before any work, that an h0 output of ``kind`` can be written at ``path``.

    Run it before training or scoring, so that a run which could not save its result fails at
    once. :func:`atomic_directory` runs it again before it starts and before it swaps.

    Args:
        path: The output directory to create or replace.
        kind: What is written, e.g. ``'checkpoint'``, ``'detector'``, ``'report'``, ``'fleet'``
            (compared by :func:`same_kind`).

    Returns:
        ``path`` made absolute.

    Raises:
        TargetExistsError: ``path`` is a file, a symbolic link, a directory that holds files h0
            did not write, or an h0 output of another kind. Nothing is changed.
        OutputError: ``path``'s parent cannot be written (a read-only file system, no
            permission, or a file where a folder should be).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> file = Path(tempfile.mkdtemp()) / 'notes.txt'
        >>> _ = file.write_text('mine')
        >>> check_target(file, 'report')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        h0._atomic.TargetExistsError: .../notes.txt is a file, not an h0 report directory; refusing to replace it. Choose another path.
    """
    _check_kind(kind)
    path = Path(path).absolute()
    if path.is_symlink():
        raise TargetExistsError(
            f"{path} is a symbolic link; refusing to replace it with an {_name(kind)}. "
            "Pass the directory it points to, or another path."
        )
    if path.exists():
        if not path.is_dir():
            raise TargetExistsError(
                f"{path} is a file, not an {_name(kind)} directory; refusing to replace it. "
                "Choose another path."
            )
        try:
            entries = sorted(e.name for e in path.iterdir())
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror}.") from None
        found = output_kind(path) if entries else kind
        if found is None:
            more = f" and {len(entries) - 1} more entries" if len(entries) > 1 else ""
            raise TargetExistsError(
                f"{path} exists but is not an {_name(kind)} (it holds {entries[0]!r}{more}, which "
                "h0 did not write); refusing to replace it. Choose another path or remove it."
            )
        if not same_kind(found, kind):
            raise TargetExistsError(
                f"{path} is an {_name(found)}, not an {_name(kind)}; refusing to replace it. "
                "Choose another path or remove it."
            )
    _check_parent(path)
    return path


def _check_parent(path: Path) -> None:
    """The nearest existing ancestor of ``path`` is a directory we can create entries in."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(f"cannot write {path}: {ancestor} is a file, not a directory.")
    try:
        read_only = bool(os.statvfs(ancestor).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        read_only = False
    if read_only:
        raise OutputError(f"cannot write {path}: {ancestor} is on a read-only file system.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: no permission to create files in {ancestor}.")


# --------------------------------------------------------------------------------- file system


def _fsync(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some file systems cannot fsync directories
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            file = Path(folder) / name
            if not file.is_symlink():
                _fsync(file)
        _fsync(Path(folder), directory=True)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Callable[..., int] | None = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError, AttributeError):
        _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
        _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        _renameat2.argtypes += [ctypes.c_uint]
        _renameat2.restype = ctypes.c_int


def _exchange(a: Path, b: Path) -> bool:
    """Swap directories ``a`` and ``b`` in one step; ``False`` where the system cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}:
        return False  # the kernel or the file system does not support the exchange
    raise OSError(err, os.strerror(err), str(b))


def _stage(name: str) -> None:
    """A no-op called at each step of a write; tests replace it to stop a writer there."""


def _siblings(path: Path, which: str) -> list[Path]:
    """``path``'s ``.NAME.h0-tmp-*`` or ``.NAME.h0-old-*`` siblings, oldest first.

    Also those of h0's earlier writers (``.NAME.tmp-XXXXXXXX``, ``.NAME.old-XXXXXXXX``) and the
    temporaries orbax builds beside an ``h0-tmp`` directory.
    """
    legacy = which.removeprefix("h0-")
    name = re.escape(path.name)
    pattern = re.compile(rf"\.{name}\.(?:{which}-[0-9a-f]{{32}}(?:\..*)?|{legacy}-[0-9a-f]{{8}})")
    found = []
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            if pattern.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    found.append((entry.lstat().st_mtime, entry))
    return [entry for _, entry in sorted(found)]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _write_marker(root: Path, kind: str) -> None:
    with (root / MARKER).open("w") as f:
        json.dump({"format": _MARKER_FORMAT, "version": 1, "kind": kind}, f)
        f.flush()
        os.fsync(f.fileno())
    _fsync(root, directory=True)


def _lock_file(path: Path, token: str) -> Path:
    return path.parent / f".{path.name}.{_TMP}-{token}.lock"


def _lock(path: Path, token: str) -> int | None:
    """Hold a lock that marks the write ``token`` of ``path`` as live (released if killed)."""
    if fcntl is None:
        return None
    fd = os.open(_lock_file(path, token), os.O_CREAT | os.O_RDWR, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _live(path: Path, sibling: Path) -> bool:
    """Whether ``sibling`` belongs to a write of ``path`` still running in some process."""
    match = re.search(r"-([0-9a-f]{32})", sibling.name[len(path.name) + 1 :])
    if fcntl is None or match is None:
        return False
    try:
        fd = os.open(_lock_file(path, match.group(1)), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the lock just taken
    return False


def _put_in_place(tmp: Path, path: Path, aside: Path) -> Path | None:
    """Move the complete ``tmp`` to ``path``; returns where the previous output now is."""
    if path.exists() and _exchange(tmp, path):
        _stage("exchanged")
        return tmp  # the old output now has the temporary name
    old = None
    if path.exists():
        old = aside
        os.rename(path, old)
        _fsync(path.parent, directory=True)
        _stage("aside")  # the one window (without the exchange) where recover() is needed
    os.rename(tmp, path)
    return old


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str], *, kind: str) -> Iterator[Path]:
    """Build an output directory beside ``path`` and put it in place of ``path`` as one unit.

    The body writes into the yielded directory (empty, beside ``path``). When it returns, every
    file is fsynced, the marker of ``kind`` is written, and the directory replaces ``path`` in one
    step; the previous output is deleted, with the leftovers of earlier killed writes of ``path``.
    When the body raises, ``path`` is untouched and the temporary directory is deleted.

    Args:
        path: The output directory: missing, empty, or an h0 output of the same ``kind``.
        kind: What is written, e.g. ``'checkpoint'``, ``'detector'``, ``'report'``, ``'fleet'``.

    Yields:
        The temporary directory to write into.

    Raises:
        TargetExistsError: ``path`` holds something else (see :func:`check_target`); raised
            before the body runs, and again before the swap if it changed meanwhile.
        OutputError: ``path`` cannot be written: a read-only file system, no permission, a full
            disk (``ENOSPC``, ``EDQUOT`` and ``EROFS`` raised by the body become one too).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> out = Path(tempfile.mkdtemp()) / 'fleet'
        >>> for run in range(2):
        ...     with atomic_directory(out, kind='fleet') as tmp:
        ...         _ = (tmp / 'fleet.json').write_text(str(run))
        >>> (out / 'fleet.json').read_text(), sorted(p.name for p in out.parent.iterdir())
        ('1', ['fleet'])
    """
    path = check_target(path, kind)
    token = uuid.uuid4().hex
    tmp = path.parent / f".{path.name}.{_TMP}-{token}"
    aside = path.parent / f".{path.name}.{_OLD}-{token}"
    lock = None
    done = False
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = _lock(path, token)
            tmp.mkdir()
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror} ({e.filename}).") from None
        try:
            yield tmp
        except OSError as e:
            if e.errno in _WRITE_ERRNOS:
                raise OutputError(f"cannot write {path}: {e.strerror} ({e.filename}).") from e
            raise
        if not tmp.is_dir():
            raise RuntimeError(f"the temporary directory {tmp} was removed while writing {path}.")
        _stage("written")
        try:
            _fsync_tree(tmp)
            _write_marker(tmp, kind)
            check_target(path, kind)  # it may have changed while the body ran
            _stage("marked")
            old = _put_in_place(tmp, path, aside)
            _fsync(path.parent, directory=True)
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror} ({e.filename}).") from e
        done = True
        _stage("replaced")
        if old is not None:
            _remove(old)
        # Leftovers of killed writes of ``path``; those of writes still running are theirs.
        for stale in [*_siblings(path, _OLD), *_siblings(path, _TMP)]:
            if token not in stale.name and not _live(path, stale):
                _remove(stale)
    finally:
        if not done and aside.exists() and not path.exists():
            with contextlib.suppress(OSError):  # failed between the renames: put the old back
                os.rename(aside, path)
        for leftover in _siblings(path, _TMP):  # this write's: its directory, orbax's, the lock
            if token in leftover.name and leftover != _lock_file(path, token):
                _remove(leftover)
        if lock is not None:
            os.close(lock)
            _remove(_lock_file(path, token))


def recover(path: str | os.PathLike[str], kind: str | None = None) -> Path:
    """Where to read the output ``path``: puts back an output a killed write left aside.

    A write without the atomic exchange renames the previous output to ``.NAME.h0-old-*`` just
    before renaming the new one in; a process killed in between leaves ``path`` missing. Loaders
    call this first: when ``path`` is missing (or an empty directory) and a complete output of
    ``kind`` was left aside, it is renamed back to ``path``. Nothing else is changed.

    Args:
        path: The output directory.
        kind: The kind to look for; ``None`` accepts any h0 output.

    Returns:
        ``path``; or, when it had to be recovered but cannot be renamed (a read-only parent),
        the directory the output was left in.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> missing = Path(tempfile.mkdtemp()) / 'ckpt'
        >>> recover(missing) == missing
        True
    """
    path = Path(path).absolute()
    with contextlib.suppress(OSError):
        if path.is_symlink() or (path.is_dir() and any(path.iterdir())) or path.is_file():
            return path
    candidates = [
        old
        for old in reversed(_siblings(path, _OLD))
        if output_kind(old) is not None and (kind is None or same_kind(output_kind(old), kind))
    ]
    if not candidates:
        return path
    if _live(path, candidates[0]):
        return candidates[0]  # a write running now moved it aside: read it there, leave it
    try:
        os.rename(candidates[0], path)
    except OSError:
        if path.is_dir() and output_kind(path) is not None:
            return path  # a writer put a new output in place meanwhile
        return candidates[0]
    _fsync(path.parent, directory=True)
    return path
