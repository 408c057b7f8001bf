"""Exactly once across crashes: ``mailgate import --after delete`` killed with SIGKILL, again and
again, then run to completion; every message ends up at the destination exactly once and gone
from the Inbox exactly when delivered.

Against the sandbox's IMAP server rather than Dovecot: it serves Exchange's folder model (the
``--after delete`` target is Deleted Items, found by SPECIAL-USE as on Exchange) and runs in this
process, so after every kill the test reads the mailbox straight from the store, with no second
client whose own connection could change what it observes. Dovecot is covered by the benchmark.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.jobs.conftest import Sandboxed, eml_hashes, make_message, sha

USER = "approvals"


def _count(directory: Path) -> int:
    return sum(1 for _ in directory.glob("*.eml")) if directory.is_dir() else 0


def _check_invariants(s: Sandboxed, out: Path, originals: set[str]) -> None:
    """What must hold at every instant, killed or not."""
    delivered = eml_hashes(out)
    assert len(delivered) == len(set(delivered)), "a message was delivered twice"
    assert set(delivered) <= originals, "a file at the destination is not a whole message"
    gone = set(s.hashes(USER, "deleteditems"))
    missing = gone - set(delivered)
    assert not missing, f"{len(missing)} messages left the Inbox before they were delivered"
    assert set(s.hashes(USER, "inbox")) | gone == originals, "a message was lost"


def _kill_repeatedly(
    s: Sandboxed, out: Path, originals: set[str], *, seed: int, kills: int, env: dict[str, str]
) -> int:
    rng = random.Random(seed)
    args = [sys.executable, "-m", "mailgate", "import", "in", "--to", str(out)]
    args += ["--after", "delete", "--batch-size", "10", "--json"]
    done = 0
    runs = 0
    while done < kills and runs < kills * 3:
        runs += 1
        before = _count(out)
        process = subprocess.Popen(
            args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if runs % 2:  # kill after a random delay: start-up, search, fetch, sync, delete...
            deadline = time.monotonic() + rng.uniform(0.2, 2.0)
            while time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.005)
        else:  # kill once a random number of further files has been published
            wanted = before + rng.randint(1, 25)
            deadline = time.monotonic() + 20
            while _count(out) < wanted and process.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            done += 1
        process.wait()
        _check_invariants(s, out, originals)
        if not s.hashes(USER, "inbox"):
            break  # nothing left to interrupt
    return done


def _run_test(s: Sandboxed, tmp_path: Path, count: int, kills: int, seed: int) -> None:
    s.clear(USER)
    messages = [make_message(i, attachment=i % 3 == 0, tag=f"k{seed}") for i in range(count)]
    s.fill(USER, messages)
    originals = {sha(m) for m in messages}
    assert len(originals) == count
    s.mailbox("in", "imap", USER)
    out = tmp_path / "out"
    env = {**s.cli.env, "PYTHONPATH": os.pathsep.join(sys.path)}
    killed = _kill_repeatedly(s, out, originals, seed=seed, kills=kills, env=env)
    assert killed >= min(kills, 1)
    final = s.cli("import", "in", "--to", str(out), "--after", "delete", "--batch-size", "10")
    assert final.code == 0, final.text
    _check_invariants(s, out, originals)
    assert sorted(eml_hashes(out)) == sorted(originals), "not every message was delivered once"
    assert s.hashes(USER, "inbox") == []
    assert sorted(s.hashes(USER, "deleteditems")) == sorted(originals)
    assert not list(out.glob(".mailgate-import-*")), "temporary files were left behind"
    again = s.cli("import", "in", "--to", str(out), "--after", "delete", "--json")
    assert again.code == 0 and '"delivered": 0' in again.out, again.text
    return None


def test_sigkill_500_messages_sqlite(sandboxed: Sandboxed, tmp_path: Path) -> None:
    _run_test(sandboxed, tmp_path, count=500, kills=22, seed=20261123)
    db = sqlite3.connect(sandboxed.cli.home / "state.db")
    states = dict(db.execute("SELECT state, count(*) FROM processed_messages GROUP BY state"))
    assert states == {"done": 500}


@pytest.mark.parametrize("seed", [7])
def test_sigkill_postgresql(
    sandboxed: Sandboxed, tmp_path: Path, postgres_url: str, seed: int
) -> None:
    sandboxed.cli.env["MAILGATE_DATABASE_URL"] = postgres_url
    _run_test(sandboxed, tmp_path, count=120, kills=8, seed=seed)
