"""Whether a process that left something behind (a temp file, a lease) may still be running."""

from __future__ import annotations

import os

__all__ = ["other_process_alive"]


def other_process_alive(pid: int) -> bool:
    """True if another process with ``pid`` exists on this host.

    Our own pid counts as gone: what it names was left by an earlier process that had the same
    pid (containers reuse low pids) or by this one, which is not using it now.
    """
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has exited but not been reaped yet (a killed import's helper, until
    init collects it) still answers ``kill(pid, 0)``: it runs nothing any more."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rpartition(b")")[2].split()[:1]
    except OSError:
        return False  # no /proc: trust kill()
    return state in ([b"Z"], [b"X"])
