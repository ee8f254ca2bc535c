"""Writing the app's files safely: whole or not at all, and one writer at a time.

* :func:`atomic_write`: a temporary file in the same folder, flushed to disk, then renamed over the
  target, so the file is always the old complete one or the new complete one (a crash mid-write
  leaves at most a stray temporary file, removed when it can be).
* :func:`locked`: an exclusive lock on ``<path>.lock`` (``fcntl.flock`` on POSIX, ``msvcrt.locking``
  on Windows) held while a file is read, changed and written, so that two processes recording at
  once (``workbook check`` grading chapters, a notebook kernel, a terminal) lose nothing.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # the process's umask: the only way to read it is to set it and set it back


def atomic_write(path: Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8) in one step; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600): give it the mode the file had, or the usual one
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` while inside (blocks until it is free)."""
    lock_path = Path(path).with_name(Path(path).name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        if os.name == "nt":  # pragma: no cover - Windows
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
