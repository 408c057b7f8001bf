"""Import-job benchmark: ``mailgate import dovecot --to DIR`` (state recorded, files synced per
batch) against the same in-run imaplib baseline and 10,000-message Dovecot workload as
bench/imap_import.py, whose helpers it uses.

Run: ``.venv/bin/python bench/import_job.py [--messages 10000] [--rounds 2]``. Prints, as ratios
to the baseline: the import with and without attachments (target >= 0.4x; the default two
connections, and one), and the cost of an fsync per message against one sync per batch, on tmpfs
and on the disk holding the temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.imap_import import alice_token, baseline, cli_setup, load  # noqa: E402
from tests.interop.dovecot import start_dovecot  # noqa: E402

from mailgate.testing import SandboxController  # noqa: E402


def importer(scratch: Path) -> Callable[..., int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env |= {
        "MAILGATE_HOME": str(scratch / "home"),
        "MAILGATE_SANDBOX": str(scratch / "idp" / "sandbox.json"),
    }
    runs = 0

    def run(out: Path, *flags: str) -> int:
        nonlocal runs
        runs += 1  # a new job each time: every run imports every message afresh
        args = ["import", "dovecot", "--to", str(out), "--job", f"bench-{runs}", "--json", *flags]
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "mailgate"), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"mailgate import failed:\n{done.stderr}")
        return int(json.loads(done.stdout)["delivered"])

    return run


def best(run: Callable[[], int], out: Path, rounds: int, count: int) -> float:
    times = []
    for _ in range(rounds):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        start = time.perf_counter()
        done = run()
        times.append(time.perf_counter() - start)
        assert done == count, done
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else scratch
    tmpfs = Path(tempfile.mkdtemp(prefix="mailgate-bench-out-", dir=shm))
    disk = scratch / "disk-out"
    with SandboxController(scratch / "idp") as idp:
        dovecot = start_dovecot(scratch / "idp", idp.description)
        try:
            user = idp.user("alice")
            token = alice_token(idp)
            port, context = dovecot.ports["imaps"], idp.ssl_context()
            load(dovecot, user["upn"], args.messages)
            tmpfs.mkdir(exist_ok=True)
            baseline(port, context, user["upn"], token, tmpfs)  # let Dovecot index once
            cli_setup(idp, scratch, port, user)
            run = importer(scratch)
            n, r = args.messages, args.rounds
            base = best(lambda: baseline(port, context, user["upn"], token, tmpfs), tmpfs, r, n)
            rows = {
                "import --no-attachments (tmpfs)": best(
                    lambda: run(tmpfs, "--no-attachments"), tmpfs, r, n
                ),
                "import --no-attachments --connections 1 (tmpfs)": best(
                    lambda: run(tmpfs, "--no-attachments", "--connections", "1"), tmpfs, r, n
                ),
                "import with attachments (tmpfs)": best(lambda: run(tmpfs), tmpfs, r, n),
                "import --no-attachments, fsync per message (tmpfs)": best(
                    lambda: run(tmpfs, "--no-attachments", "--sync", "message"), tmpfs, r, n
                ),
                "import --no-attachments (disk)": best(
                    lambda: run(disk, "--no-attachments"), disk, 1, n
                ),
                "import --no-attachments, fsync per message (disk)": best(
                    lambda: run(disk, "--no-attachments", "--sync", "message"), disk, 1, n
                ),
            }
        finally:
            dovecot.stop()
            shutil.rmtree(tmpfs, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"baseline imaplib: {n / base:.0f} msg/s ({base:.2f} s for {n})")
    print(f"{'variant':55} {'msg/s':>8} {'x base':>7}")
    for name, elapsed in rows.items():
        print(f"{name:55} {n / elapsed:8.0f} {base / elapsed:7.2f}")
    print("target: mailgate import --to DIR >= 0.40x baseline")


if __name__ == "__main__":
    main()
