"""IMAP import benchmark: mailgate's ImapMailbox against a bare imaplib baseline, on Dovecot.

Run: ``.venv/bin/python bench/imap_import.py [--messages 10000]``. Not a test: it prints figures.

1. Starts the sandbox identity platform and a Dovecot trusting its tokens (mailgate.interop),
   gets a token for alice with MSAL, writes N messages of ~20 KB (each with an ~11 KB PDF
   attachment) straight into the maildir, and lets Dovecot index them once.
2. Baseline: stdlib imaplib, raw SASL-IR XOAUTH2, ``UID FETCH (BODY.PEEK[])`` in batches of
   1,000, each message's bytes written to ``<uid>.eml``; no parsing.
3. mailgate: ``ImapMailbox.search`` + :func:`mailgate.protocols.imap.bulk.fetch_many` writing
   ``<uid>.eml`` (variant A), and also the decoded attachments (variant B, BODYSTRUCTURE +
   BODY.PEEK[n]); plus ``fetch_mime`` one message at a time (variant C, for reference).
4. ``mailgate get --save`` as a separate process, exactly as a user runs it (with and without
   ``--no-attachments``), and the same through the Python API in-process (``get_messages``).
5. After every timed run (outside the timing) checks the output: each ``.eml`` byte-identical
   to a message that was loaded, every message saved once, and with attachments each message's
   PDF decoded to the bytes that were encoded. A variant that writes anything else fails.
6. Prints rates, ratios to the baseline (targets, for ``mailgate get --save``: .eml only
   ≥ 0.8x, with attachments ≥ 0.5x):
   best against best, and the median and range over the rounds of each run against a baseline
   run made just before it (pairs drift less with the load of a shared machine), and the
   peak RSS of each variant (VmHWM reset between in-process variants; the CLI child's own
   maximum from wait4), then streams one 50 MB message in a subprocess and prints its peak RSS
   growth (target ≤ 2x the message size).

``DirectorySink`` below is the shape ``mailgate get --save`` can use (temp names + rename).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import imaplib
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import msal  # noqa: E402

from mailgate.interop.dovecot import (  # noqa: E402
    DovecotServer,
    big_message,
    put,
    start_dovecot,
    stream_in_probe,
)
from mailgate.mail.filenames import reserve_path, safe_filename  # noqa: E402
from mailgate.protocols.base import MessageRef, SearchCriteria, Security  # noqa: E402
from mailgate.protocols.imap.adapter import ImapMailbox  # noqa: E402
from mailgate.protocols.imap.bulk import fetch_many  # noqa: E402
from mailgate.protocols.imap.results import AttachmentPart  # noqa: E402
from mailgate.protocols.sasl import xoauth2_initial_response  # noqa: E402
from mailgate.testing import SandboxController  # noqa: E402

SCOPE = ["https://outlook.office365.com/IMAP.AccessAsUser.All"]


def peak_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> None:
    with contextlib.suppress(OSError):  # Linux >= 4.0: "5" resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")


Expected = dict[str, tuple[str, str]]
"""sha256 of a loaded message → (its attachment's file name, sha256 of the decoded bytes)."""


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def message(i: int, pdf: bytes | None = None) -> bytes:
    attachment = base64.encodebytes(pdf or os.urandom(11_000)).replace(b"\n", b"\r\n")
    text = (f"Invoice {i} for services rendered. " * 110).encode()
    return (
        (
            f"From: Vendor {i % 50} <vendor{i % 50}@example.com>\r\n"
            f"To: alice@contoso.onmicrosoft.com\r\nSubject: Invoice {i}\r\n"
            f"Date: Mon, 01 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
            f"Message-ID: <bench-{i}@example.com>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="BOUNDARY"\r\n\r\n'
            "--BOUNDARY\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        ).encode()
        + text
        + (
            f'\r\n--BOUNDARY\r\nContent-Type: application/pdf; name="invoice-{i}.pdf"\r\n'
            f'Content-Disposition: attachment; filename="invoice-{i}.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + attachment
        + b"--BOUNDARY--\r\n"
    )


def load(dovecot: DovecotServer, address: str, count: int) -> tuple[int, Expected]:
    folder = dovecot.maildir(address, "INBOX") / "cur"
    total = 0
    expected: Expected = {}
    stamp = int(time.time())
    for i in range(count):
        pdf = os.urandom(11_000)
        raw = message(i, pdf)
        total += len(raw)
        expected[digest(raw)] = (f"invoice-{i}.pdf", digest(pdf))
        (folder / f"{stamp}.M{i}P{os.getpid()}.bench,S={len(raw)}:2,").write_bytes(raw)
    dovecot.chown(folder)
    return total, expected


def check_output(out: Path, expected: Expected, attachments: bool) -> None:
    """Every loaded message saved once, byte for byte; its attachment decoded, if asked for.

    Attachments are found where the variant puts them: ``<eml stem>.attachments/<name>``
    (mailgate get) or ``attachments/<uid>-<name>`` (this file's DirectorySink).
    """
    seen: dict[str, Path] = {}
    for path in out.glob("*.eml"):
        key = digest(path.read_bytes())
        if key not in expected:
            raise SystemExit(f"{path.name} is not byte-identical to any loaded message")
        if key in seen:
            raise SystemExit(f"{path.name} and {seen[key].name} hold the same message")
        seen[key] = path
    if len(seen) != len(expected):
        raise SystemExit(f"{len(expected) - len(seen)} messages were not saved")
    if not attachments:
        return
    flat = out / "attachments"
    for key, path in seen.items():
        name, pdf = expected[key]
        nested = path.with_name(path.stem + ".attachments")
        if nested.is_dir():
            found = {f.name: f for f in nested.iterdir()}
        else:
            prefix = f"{path.stem}-"
            found = {f.name.removeprefix(prefix): f for f in flat.glob(prefix + "*")}
        if list(found) != [name]:
            raise SystemExit(f"{path.name}: attachments {sorted(found)}, expected [{name}]")
        if digest(found[name].read_bytes()) != pdf:
            raise SystemExit(f"{found[name]}: not the attachment's decoded bytes")


def baseline(port: int, context: ssl.SSLContext, address: str, token: str, out: Path) -> int:
    imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context)
    response = base64.b64encode(xoauth2_initial_response(address, token)).decode()
    typ, data = imap._simple_command("AUTHENTICATE", "XOAUTH2", response)  # SASL-IR
    assert typ == "OK", data
    imap.state = "AUTH"
    imap.select("INBOX")
    _, found = imap.uid("SEARCH", None, "ALL")  # type: ignore[arg-type]
    uids = found[0].split()
    count = 0
    for start in range(0, len(uids), 1000):
        batch = b",".join(uids[start : start + 1000]).decode()
        _, items = imap.uid("FETCH", batch, "(BODY.PEEK[])")
        for item in items:
            if isinstance(item, tuple):
                uid = item[0].split(b"UID ")[1].split()[0].decode()
                (out / f"{uid}.eml").write_bytes(item[1])
                count += 1
    imap.logout()
    return count


class DirectorySink:
    """Writes ``<uid>.eml`` and attachments under ``out``; temp name until complete."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.attachments = out / "attachments"
        self.attachments.mkdir(exist_ok=True)
        self.files = 0

    def open(self, ref: MessageRef, part: AttachmentPart | None) -> BinaryIO:
        uid = ref.id.split(":")[1]
        if part is None:
            return open(f"{self.out}/{uid}.eml.part", "wb")
        name = safe_filename(f"{uid}-{part.filename or 'attachment'}")
        return reserve_path(self.attachments, name).open("wb")

    def complete(
        self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO, size: int
    ) -> None:
        dest.close()
        if part is None:
            os.rename(dest.name, dest.name[:-5])  # drop ".part": the file is complete
        self.files += 1

    def abort(self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO) -> None:
        dest.close()
        Path(dest.name).unlink(missing_ok=True)


async def mailgate_bulk(box: ImapMailbox, out: Path, attachments: bool) -> int:
    async with box:
        refs = await box.search("INBOX", SearchCriteria())
        await fetch_many(box, refs, DirectorySink(out), attachments=attachments)
        return len(refs)


async def mailgate_each(box: ImapMailbox, out: Path) -> int:
    async with box:
        refs = await box.search("INBOX", SearchCriteria())
        for ref in refs:
            with (out / f"{ref.id.split(':')[1]}.eml").open("wb") as dest:
                await box.fetch_mime(ref, dest)
        return len(refs)


def cli_setup(
    idp: SandboxController, scratch: Path, port: int, user: dict[str, Any]
) -> tuple[Callable[..., int], list[int]]:
    """A data directory with a credential and a mailbox profile for Dovecot; returns a runner
    of ``mailgate get <mailbox> --save OUT`` as a separate process, as a user would run it,
    and a one-item list that holds the peak RSS of the last run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env |= {
        "MAILGATE_HOME": str(scratch / "home"),
        "MAILGATE_SANDBOX": str(scratch / "idp" / "sandbox.json"),
    }
    tenant = idp.tenant("contoso")
    child_peak = [0]

    def mailgate(*args: str, stdin: str = "") -> str:
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "mailgate"), *args],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                env=env,
            )
            assert proc.stdin is not None
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
            # wait4: this child's own peak RSS (getrusage(RUSAGE_CHILDREN) is the max so far).
            _pid, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            child_peak[0] = usage.ru_maxrss * 1024
            out.seek(0)
            err.seek(0)
            if proc.returncode:
                raise SystemExit(f"mailgate {' '.join(args)} failed:\n{err.read().decode()}")
            return out.read().decode()

    mailgate(
        "creds",
        "add",
        "alice",
        "--kind",
        "password",
        "--cloud",
        "sandbox",
        "--tenant",
        tenant["id"],
        "--client-id",
        idp.app("mailgate-public")["client_id"],
        "--username",
        user["upn"],
        "--secret-stdin",
        stdin=user["password"] + "\n",
    )
    mailgate(
        "mailbox",
        "add",
        "dovecot",
        "--credential",
        "alice",
        "--protocol",
        "imap",
        "--address",
        user["upn"],
        "--server",
        f"127.0.0.1:{port}",
        "--ca-file",
        idp.ca_file,
    )

    def run(out: Path, attachments: bool, connections: int = 2) -> int:
        flag = "--attachments" if attachments else "--no-attachments"
        text = mailgate(
            "get", "dovecot", "--save", str(out), flag, "--connections", str(connections)
        )
        return int(text.split()[1])  # "Saved N messages and M attachments to ..."

    return run, child_peak


async def api_get(scratch: Path, out: Path, attachments: bool) -> int:
    """The Python API under ``mailgate get --save`` (and the coming import job), in-process."""
    from mailgate.connect import MailboxConnector
    from mailgate.identity import TokenProvider
    from mailgate.jobs.get import get_messages
    from mailgate.mailboxes import MailboxStore
    from mailgate.vault import Vault

    vault = Vault(scratch / "home")
    provider = TokenProvider(vault, sandbox_file=scratch / "idp" / "sandbox.json")
    profile = MailboxStore(scratch / "home").get("dovecot")
    result = await get_messages(
        MailboxConnector(provider),
        profile,
        SearchCriteria(),
        save=out,
        attachments=attachments,
        connections=2,  # as the CLI
    )
    return len(result.saved)


def timed(run: Callable[[], int], scratch: Path) -> tuple[float, int, int]:
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    reset_peak()
    start = time.perf_counter()
    count = run()
    elapsed = time.perf_counter() - start
    return elapsed, count, peak_rss()


def streamed_50mb(
    dovecot: DovecotServer, idp: SandboxController, address: str, token: str, scratch: Path
) -> dict[str, Any]:
    raw = big_message(50 * 1024 * 1024)
    put(dovecot, address, "Big50", raw)
    done = stream_in_probe(dovecot, idp.ca_file, address, token, "Big50", scratch / "big.eml")
    if done.returncode:
        raise SystemExit(f"the 50 MB probe failed:\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    report["size"] = len(raw)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs per variant (each paired)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
        help="where the .eml files go (default: tmpfs, so disk writeback does not add noise)",
    )
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mailgate-bench-"))
    with SandboxController(scratch / "idp") as idp:
        dovecot = start_dovecot(scratch / "idp", idp.description)
        try:
            out = Path(tempfile.mkdtemp(prefix="mailgate-bench-out-", dir=args.out))
            try:
                run_bench(idp, dovecot, scratch, out, args.messages, args.rounds)
            finally:
                shutil.rmtree(out, ignore_errors=True)
        finally:
            dovecot.stop()
            shutil.rmtree(scratch, ignore_errors=True)


def alice_token(idp: SandboxController) -> str:
    """An IMAP token for the demo user alice, straight from MSAL (ROPC), for the baseline."""
    user = idp.user("alice")
    app = msal.PublicClientApplication(
        idp.app("mailgate-public")["client_id"],
        authority=idp.authority(),
        instance_discovery=False,
        http_client=idp.requests_session(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = app.acquire_token_by_username_password(user["upn"], user["password"], SCOPE)
    return str(result["access_token"])


def run_bench(
    idp: SandboxController,
    dovecot: DovecotServer,
    scratch: Path,
    out: Path,
    count: int,
    rounds: int,
) -> None:
    user = idp.user("alice")
    token = alice_token(idp)
    address, context, port = user["upn"], idp.ssl_context(), dovecot.ports["imaps"]
    started = time.perf_counter()
    total, expected = load(dovecot, address, count)
    print(
        f"loaded {count} messages, {total / count / 1024:.1f} KiB average, "
        f"{total / 2**20:.0f} MiB, in {time.perf_counter() - started:.1f} s"
    )
    out.mkdir(exist_ok=True)
    baseline(port, context, address, token, out)  # let Dovecot index the new mail once

    async def source() -> str:
        return str(token)

    def box() -> ImapMailbox:
        return ImapMailbox(
            address,
            "127.0.0.1",
            port,
            token_source=source,
            security=Security.TLS,
            ssl_context=context,
        )

    def arun(factory: Callable[[], Awaitable[int]]) -> Callable[[], int]:
        return lambda: asyncio.run(factory())  # type: ignore[arg-type]

    cli, cli_peak = cli_setup(idp, scratch, port, user)

    # name → (run, attachments written, peak RSS of a child process instead of this one)
    variants: dict[str, tuple[Callable[[], int], bool, list[int] | None]] = {
        "baseline imaplib .eml": (
            lambda: baseline(port, context, address, token, out),
            False,
            None,
        ),
        "CLI mailgate get --save --no-attachments": (
            lambda: cli(out, False),
            False,
            cli_peak,
        ),
        "CLI mailgate get --save (attachments)": (
            lambda: cli(out, True),
            True,
            cli_peak,
        ),
        "CLI --no-attachments --connections 1": (
            lambda: cli(out, False, 1),
            False,
            cli_peak,
        ),
        "CLI (attachments) --connections 1": (
            lambda: cli(out, True, 1),
            True,
            cli_peak,
        ),
        "API get_messages(save=) .eml": (
            arun(lambda: api_get(scratch, out, False)),
            False,
            None,
        ),
        "API get_messages(save=) + attachments": (
            arun(lambda: api_get(scratch, out, True)),
            True,
            None,
        ),
        "mailgate bulk .eml (A)": (arun(lambda: mailgate_bulk(box(), out, False)), False, None),
        "mailgate bulk .eml + attachments (B)": (
            arun(lambda: mailgate_bulk(box(), out, True)),
            True,
            None,
        ),
        "mailgate fetch_mime per message (C)": (
            arun(lambda: mailgate_each(box(), out)),
            False,
            None,
        ),
    }
    base_name, (base_run, _, _) = next(iter(variants.items()))
    results: dict[str, tuple[float, int, int]] = {}
    ratios: dict[str, list[float]] = {base_name: [1.0] * rounds}
    partners: dict[str, float] = {base_name: float("inf")}  # best baseline run of each pairing
    for _ in range(rounds):
        for name, (run, attachments, child) in list(variants.items())[1:]:
            # Each run right after a baseline run of its own: the ratio of the pair does not
            # move with the load of this shared machine as much as two runs far apart do.
            # (Every baseline run follows a variant's run: two baseline runs in a row made
            # the second one warmer than the others and its partner look slower.)
            base_elapsed, _, base_peak = timed(base_run, out)
            check_output(out, expected, False)  # not timed
            if base_name not in results or base_elapsed < results[base_name][0]:
                results[base_name] = (base_elapsed, count, base_peak)
            partners[name] = min(partners.get(name, float("inf")), base_elapsed)
            elapsed, done, peak = timed(run, out)
            assert done == count, (name, done)
            check_output(out, expected, attachments)  # not timed
            if child is not None:
                peak = child[0]
            if name not in results or elapsed < results[name][0]:
                results[name] = (elapsed, done, peak)
            ratios.setdefault(name, []).append(base_elapsed / elapsed)
    results = {name: results[name] for name in variants}  # the baseline row first
    partners[base_name] = results[base_name][0]
    print(
        f"\n{'variant (best of ' + str(rounds) + ')':40} {'msg/s':>9} {'MiB/s':>7} "
        f"{'x base':>7} {'paired':>7} {'pairs':>11} {'peak RSS':>9}"
    )
    for name, (elapsed, done, peak) in results.items():
        rate = done / elapsed
        paired = ratios[name]
        spread = f"{min(paired):.2f}-{max(paired):.2f}"
        print(
            f"{name:40} {rate:9.0f} {rate * total / count / 2**20:7.1f} "
            f"{partners[name] / elapsed:7.2f} {statistics.median(paired):7.2f} {spread:>11} "
            f"{peak / 2**20:6.0f} MB"
        )
    print(
        "x base: best run against the best of the baseline runs it was paired with (as many);\n"
        "paired: median over the rounds of the run against the baseline run just before it\n"
        "(pairs: their range).\n"
        "every run's output checked: each .eml byte-identical to a loaded message, "
        "attachments decoded.\n"
        "targets (mailgate get --save, the CLI rows): .eml only (--no-attachments) >= 0.80x "
        "baseline,\nwith attachments >= 0.50x. The API and adapter rows (A, B, C: this file's "
        "own sink, one connection) show where the time goes."
    )
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    big = streamed_50mb(dovecot, idp, address, str(token), out)
    print(
        f"\n50 MB message via fetch_mime: {big['written']} bytes, peak RSS growth "
        f"{big['growth'] / 2**20:.1f} MiB ({big['growth'] / big['size']:.2f}x the message; "
        f"target <= 2x)"
    )


if __name__ == "__main__":
    main()
