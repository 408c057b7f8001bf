"""Outbox benchmark: 500 messages through the durable outbox against the sandbox's SMTP limit.

Run: ``.venv/bin/python bench/outbox.py [--messages 500] [--per-minute 300]``. Not a test: it
prints figures. Takes about ``messages / per_minute`` minutes (100 s for the defaults).

1. Starts the sandbox; sets its Exchange limit to ``--per-minute`` messages per minute per
   mailbox (the 4xx it answers above that is what a real tenant answers at 30/min); stores a
   client-secret credential and an SMTP mailbox profile; opens a SQLite state store
   (``synchronous=FULL``).
2. Enqueues N messages (each committed before ``enqueue`` returns) and drains them with
   ``outbox.per_minute`` set to the same limit. Reports the achieved rate over the submissions
   (first to last ``submitted_at``) and its ratio to the limit (target within 3 %), and the
   throttling replies the server sent (target 0).
3. With the sandbox's limit lifted: a bare smtplib loop sending the same N messages unpaced over
   one XOAUTH2 session (the baseline: what the server and the wire allow), and the outbox
   worker unpaced (``per_minute`` 100,000): the cost of the durable state transitions.
4. Counts deliveries in the recipient's sandbox mailbox: each message exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import smtplib
import ssl
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from mailgate.connect import MailboxConnector  # noqa: E402
from mailgate.identity import TokenProvider  # noqa: E402
from mailgate.identity.profiles import CredentialRequest, build_profile  # noqa: E402
from mailgate.jobs.outbox.operations import enqueue  # noqa: E402
from mailgate.jobs.outbox.worker import Mode, OutboxWorker  # noqa: E402
from mailgate.mail.compose import OutgoingMessage  # noqa: E402
from mailgate.mail.outgoing import prepare_outgoing  # noqa: E402
from mailgate.mailboxes import MailboxProfile, MailboxStore  # noqa: E402
from mailgate.protocols.base import Protocol  # noqa: E402
from mailgate.protocols.sasl import xoauth2_initial_response  # noqa: E402
from mailgate.secret import Secret  # noqa: E402
from mailgate.settings.models import OutboxSettings  # noqa: E402
from mailgate.store import open_store  # noqa: E402
from mailgate.store.models import OutboxMessage  # noqa: E402
from mailgate.testing import SandboxController  # noqa: E402
from mailgate.vault import CredentialKind, SecretField, Vault  # noqa: E402

DOMAIN = "contoso.onmicrosoft.com"
SENDER = f"approvals@{DOMAIN}"
DESK = f"servicedesk@{DOMAIN}"
BODY = "Purchase order line items follow.\n" + "item 4711, qty 1, EUR 12.50\n" * 60


def messages(tag: str, count: int) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(sender=SENDER, to=(DESK,), subject=f"{tag} {i:04d}", text=BODY)
        for i in range(count)
    ]


def delivered(sandbox: SandboxController, tag: str) -> Counter[str]:
    inbox = sandbox.mailstore.mailbox(DESK).messages("inbox")
    return Counter(m.subject for m in inbox if m.subject.startswith(tag))


def baseline(sandbox: SandboxController, token: str, mimes: list[bytes]) -> float:
    """Seconds for a bare smtplib loop to send ``mimes`` over one XOAUTH2 session."""
    smtp_entry = sandbox.description["mail"]["smtp"]
    context = ssl.create_default_context(cafile=sandbox.ca_file)
    start = time.perf_counter()
    with smtplib.SMTP(smtp_entry["host"], smtp_entry["port"], timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.ehlo()
        initial = base64.b64encode(xoauth2_initial_response(SENDER, token)).decode()
        code, _ = smtp.docmd("AUTH", f"XOAUTH2 {initial}")
        assert code == 235, code
        for mime in mimes:
            smtp.sendmail(SENDER, [DESK], mime)
    return time.perf_counter() - start


def drain(worker: OutboxWorker) -> float:
    start = time.perf_counter()
    report = asyncio.run(worker.run(["out"], Mode.UNTIL_EMPTY))
    elapsed = time.perf_counter() - start
    assert report.failed == 0, report.events[-3:]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--per-minute", type=int, default=300)
    args = parser.parse_args()
    n, limit = args.messages, args.per_minute
    root = Path(tempfile.mkdtemp(prefix="mailgate-bench-outbox-"))
    os.environ["MAILGATE_HOME"] = str(root / "home")
    with SandboxController(root / "sandbox") as sandbox:
        assert sandbox.server is not None and sandbox.server.mail is not None
        tenant_info = sandbox.tenant("contoso")
        tenant = sandbox.server.mail.tenant(tenant_info["id"])
        assert tenant is not None
        tenant.exchange.smtp_messages_per_minute = limit

        vault = Vault(root / "home")
        app = sandbox.app("mailgate-daemon")
        secret = next(s for s in app["secrets"] if not s["expired"])
        profile, _ = build_profile(
            CredentialRequest(
                name="daemon",
                kind=CredentialKind.CLIENT_SECRET,
                client_id=app["client_id"],
                cloud="sandbox",
                token_uri=tenant_info["token_endpoint"],
            ),
            None,
        )
        vault.add(profile, {SecretField.CLIENT_SECRET: Secret(secret["value"])})
        profiles = MailboxStore(root / "home")
        profiles.add(
            MailboxProfile(name="out", credential="daemon", protocol=Protocol.SMTP, address=SENDER)
        )
        provider = TokenProvider(vault, sandbox_file=root / "sandbox" / "sandbox.json")
        connector = MailboxConnector(provider)
        store = open_store(f"sqlite:///{root / 'home' / 'state.db'}")
        paced = OutboxSettings(per_minute=limit)

        print(f"outbox benchmark: {n} messages, sandbox SMTP limit {limit}/minute per mailbox")
        start = time.perf_counter()
        for message in messages("paced", n):
            enqueue(store, profiles.get("out"), message, settings=paced)
        enqueue_s = time.perf_counter() - start
        print(
            f"  enqueue (each committed, synchronous=FULL): {n / enqueue_s:8.0f} msg/s "
            f"({enqueue_s * 1000 / n:.2f} ms each)"
        )
        worker = OutboxWorker(store, connector, profiles, settings_for=lambda _name: paced)
        elapsed = drain(worker)
        with store.session() as session:
            first, last = session.execute(
                select(func.min(OutboxMessage.submitted_at), func.max(OutboxMessage.submitted_at))
            ).one()
        span = (last - first).total_seconds()
        rate = (n - 1) / span * 60
        print(
            f"  paced outbox:  {rate:8.1f} msg/min over the submissions "
            f"({rate / limit:.3f} of the limit, target 0.97-1.00); "
            f"{n / elapsed * 60:.1f} msg/min wall clock incl. start-up ({elapsed:.1f} s)"
        )
        print(f"  throttling replies from the server: {worker.report.throttled} (target 0)")
        counts = delivered(sandbox, "paced")
        print(
            f"  delivered: {sum(counts.values())} messages, {len(counts)} distinct, "
            f"max {max(counts.values())} copies of one"
        )

        tenant.exchange.smtp_messages_per_minute = 10_000_000
        mimes = [
            prepare_outgoing(m, max_size=paced.max_message_size).mime for m in messages("base", n)
        ]
        token = asyncio.run(connector.token(profiles.get("out"))).value.reveal()
        base_s = baseline(sandbox, token, mimes)
        print(
            f"  baseline smtplib loop, unpaced, no limit: {n / base_s * 60:8.0f} msg/min "
            f"({base_s * 1000 / n:.1f} ms each)"
        )
        unpaced = OutboxSettings(per_minute=100_000)
        for message in messages("fast", n):
            enqueue(store, profiles.get("out"), message, settings=unpaced)
        fast = OutboxWorker(store, connector, profiles, settings_for=lambda _name: unpaced)
        fast_s = drain(fast)
        print(
            f"  outbox worker, unpaced, no limit:         {n / fast_s * 60:8.0f} msg/min "
            f"({fast_s * 1000 / n:.1f} ms each; {fast_s / base_s:.2f}x the baseline's time)"
        )
        for tag in ("base", "fast"):
            got = delivered(sandbox, tag)
            assert len(got) == n and max(got.values()) == 1, (tag, len(got))
        store.close()


if __name__ == "__main__":
    main()
