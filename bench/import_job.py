"""Import-job benchmark: ``mailgate import dovecot --to DIR`` (state recorded, files synced per
batch) against the same in-run imaplib baseline and 10,000-message Dovecot workload as
bench/imap_import.py, whose helpers it uses.

Run: ``.venv/bin/python bench/import_job.py [--messages 10000] [--rounds 3]``. Prints, as ratios
to the baseline: the import with and without attachments (target >= 0.4x; the default two
connections, and one), and the cost of an fsync per message against one sync per batch, on tmpfs
and on the disk holding the temp dir. Each run follows a baseline run of its own; the median of
those pairs is printed beside best against best.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.imap_import import alice_token, baseline, cli_setup, load  # noqa: E402

from mailgate.interop.dovecot import start_dovecot  # noqa: E402
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


def timed(run: Callable[[], int], out: Path, count: int) -> float:
    """Seconds ``run`` takes to put ``count`` messages into a fresh ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    done = run()
    elapsed = time.perf_counter() - start
    assert done == count, done
    return elapsed


def paired(
    run: Callable[[], int], base: Callable[[], int], out: Path, rounds: int, count: int
) -> tuple[list[float], list[float]]:
    """Times of ``rounds`` runs, each right after a baseline run, and those baseline times
    (pairs drift less with the machine's load than runs far apart)."""
    runs, bases = [], []
    for _ in range(rounds):
        bases.append(timed(base, out, count))
        runs.append(timed(run, out, count))
    return runs, bases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per variant (each paired)")
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

            def base_run() -> int:
                return baseline(port, context, user["upn"], token, tmpfs)

            variants = {
                "import --no-attachments (tmpfs)": (tmpfs, r, ("--no-attachments",)),
                "import --no-attachments --connections 1 (tmpfs)": (
                    tmpfs,
                    r,
                    ("--no-attachments", "--connections", "1"),
                ),
                "import with attachments (tmpfs)": (tmpfs, r, ()),
                "import --no-attachments, fsync per message (tmpfs)": (
                    tmpfs,
                    r,
                    ("--no-attachments", "--sync", "message"),
                ),
                "import --no-attachments (disk)": (disk, 1, ("--no-attachments",)),
                "import --no-attachments, fsync per message (disk)": (
                    disk,
                    1,
                    ("--no-attachments", "--sync", "message"),
                ),
            }
            rows = {
                name: paired(lambda o=o, f=f: run(o, *f), base_run, o, k, n)
                for name, (o, k, f) in variants.items()
            }
            base = min(t for _, bases in rows.values() for t in bases)
        finally:
            dovecot.stop()
            shutil.rmtree(tmpfs, ignore_errors=True)
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"baseline imaplib: {n / base:.0f} msg/s ({base:.2f} s for {n}, best run)")
    print(f"{'variant':55} {'msg/s':>8} {'x base':>7} {'paired':>7} {'pairs':>10}")
    for name, (times, bases) in rows.items():
        ratios = [b / t for b, t in zip(bases, times, strict=True)]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        print(
            f"{name:55} {n / min(times):8.0f} {min(bases) / min(times):7.2f} "
            f"{statistics.median(ratios):7.2f} {spread:>10}"
        )
    print(
        "x base: best run against the best of its own baseline runs; paired: median of each\n"
        "run against a baseline run just before it (pairs: their range).\n"
        "target: mailgate import --to DIR >= 0.40x baseline"
    )


if __name__ == "__main__":
    main()
