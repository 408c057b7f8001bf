"""other_process_alive: a stale file's writer counts as gone once it exited, reaped or not."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mailgate.processes import other_process_alive


def test_running_exited_unreaped_and_reaped_processes() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert other_process_alive(child.pid)
    finally:
        child.kill()
    time.sleep(0.3)  # killed, not yet waited for: a zombie
    assert not other_process_alive(child.pid)
    child.wait()
    assert not other_process_alive(child.pid)
    assert not other_process_alive(os.getpid())  # our own pid names an earlier process
