"""Atomic file writes: a temporary name in the target's folder, then a rename.

A run killed mid-write (Ctrl-C, the OOM killer, a power cut) never leaves a half-written
file under its final name; the cache, the manifest, the extraction markers and a run's
JSON files are all written this way. The file gets the mode a plain ``open()`` would give
it under the current umask (``tempfile.mkstemp`` alone makes it 0600, so caches and runs
could not be shared on JupyterHub or a Docker volume), and an error while writing (a full
disk) names the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process umask, read without changing it where the system tells it (Linux ``/proc``).

    Elsewhere it is set and put back at once (``os.umask`` only answers by setting it).
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _named(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``path`` in it: the OS errors of ``write`` or ``fsync`` (ENOSPC) name no file."""
    if exc.errno is None or exc.filename is not None:
        return exc  # our own errors (they name their file already), or the OS named one
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))  # str(): "[Errno 28] ...: 'path'"


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any], suffix: str = ".tmp") -> None:
    """Call ``write(file_object)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        named = _named(exc, path)
        if named is exc:
            raise
        raise named from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path``, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False).encode("utf-8")
    write_atomic(Path(path), lambda f: f.write(text))
