"""The ``h0`` command line's persistent compilation cache: where it lives and how it is switched.

Most of a short ``h0 detect`` is XLA compiling the same few programs (the network's
initialisation, its train step, its scoring): about 6 of 16 s on the bundled series on 2 cores.
The command line therefore keeps JAX's persistent compilation cache, so that a second run with
the same settings loads those programs instead of compiling them. The library itself never turns
it on (an application decides where its files go); this module is the one owner of the setting.

``$H0_COMPILATION_CACHE`` chooses: unset, the cache lives in ``$XDG_CACHE_HOME/h0/jax`` (default
``~/.cache/h0/jax``); ``off`` (or ``0``, or empty) turns it off; any other value is the directory.
When ``$JAX_COMPILATION_CACHE_DIR`` is set, JAX's own setting wins and h0 leaves it alone. A cache
that cannot be created (a read-only home, a full disk) is skipped without a word: it only ever
saves time, and JAX itself only warns when writing an entry fails. JAX writes an entry in place
and never replaces one, so an entry cut short (a process killed while writing it, a full disk)
would be read, warned about and recompiled on every later run: :func:`enable` drops entries
that do not decompress before JAX reads any, and the next run writes them again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The environment variable that chooses the cache directory (or turns the cache off).
ENV = "H0_COMPILATION_CACHE"
_OFF = ("", "0", "off", "false", "no")


def cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """The directory the command line caches compiled programs in, or None when it is off.

    Args:
        environ: The environment to read (default ``os.environ``).

    Example:
        >>> cache_dir({"H0_COMPILATION_CACHE": "off"}) is None
        True
        >>> str(cache_dir({"H0_COMPILATION_CACHE": "/tmp/h0-jax"}))
        '/tmp/h0-jax'
        >>> str(cache_dir({"XDG_CACHE_HOME": "/var/cache"}))
        '/var/cache/h0/jax'
    """
    environ = os.environ if environ is None else environ
    value = environ.get(ENV)
    if value is None:
        base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "h0" / "jax"
    if value.strip().lower() in _OFF:
        return None
    return Path(value).expanduser()


def enable() -> Path | None:
    """Turn JAX's persistent compilation cache on at :func:`cache_dir`; the directory used.

    Every compiled program is kept (also the ones that compile in well under a second: a first
    ``fit`` compiles about 16). Returns None when the cache is off, when JAX's own
    ``JAX_COMPILATION_CACHE_DIR`` is set, or when the directory cannot be created.
    """
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK):
            return None
    except OSError:
        return None
    _drop_unreadable(path)
    use(path)
    return path


def use(path: Path) -> None:
    """Point JAX's persistent compilation cache at ``path`` and keep every compiled program.

    The one place that sets JAX's cache options: :func:`enable` (the command line) and the test
    suite's per-run cache call it.
    """
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _drop_unreadable(path: Path) -> list[Path]:
    """Delete the cache entries in ``path`` that do not decompress; the ones deleted.

    Only JAX's entry files (``*-cache``) are read. Without JAX's (private) decompressor, as in a
    JAX version that moved it, nothing is checked.
    """
    try:
        from jax._src.compilation_cache import decompress_executable
    except ImportError:  # pragma: no cover - a JAX without it
        return []
    dropped = []
    for entry in path.glob("*-cache"):
        try:
            decompress_executable(entry.read_bytes())
        except Exception:  # whatever the decompressor raises, the entry is unusable
            try:
                entry.unlink()
                dropped.append(entry)
            except OSError:
                pass
    return dropped
