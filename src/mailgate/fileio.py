"""Durable, private file writes (temp file + fsync + rename, mode 0600) and file locks.

A file standing where a directory must be created is the user's setup, not a bug: it is
reported as a :class:`~mailgate.errors.ConfigurationError` naming the path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mailgate.errors import ConfigurationError

__all__ = ["exclusive_lock", "lock_is_held", "make_private_dir", "write_private_file"]


def make_private_dir(path: Path) -> None:
    """Create ``path`` and its parents (mode 0700) if missing; a file in the way is refused."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ConfigurationError(
            f"{path} cannot be created as a directory: a file is in the way ({exc.strerror}).",
            f"move the file away or choose another location than {path}.",
        ) from exc


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; readers see the old or the new file, never half.

    The file is created 0600 before any byte is written, so a secret is never readable by others,
    even for a moment.
    """
    make_private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def exclusive_lock(lock_file: Path, *, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created 0600) for the ``with`` block.

    Serialises read-modify-write of a state file between threads and processes alike. With
    ``timeout`` (seconds) a lock still held elsewhere after that long raises
    :class:`BlockingIOError` instead of waiting on; ``timeout=0`` tries once.
    """
    make_private_dir(lock_file.parent)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            _lock_within(fd, timeout)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _lock_within(fd: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def lock_is_held(lock_file: Path) -> bool:
    """True if some process holds a lock on ``lock_file`` right now (False if it is missing).

    The check takes a shared lock for an instant; a holder that asks for its exclusive lock at
    that very instant should wait briefly (``exclusive_lock(..., timeout=...)``), not give up.
    """
    try:
        fd = os.open(lock_file, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing releases the shared lock if it was taken
    return False
