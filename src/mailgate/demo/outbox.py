"""The outbox step of ``mailgate demo``: queue three messages, drain them paced, list them.

The sandbox loses its answer to one of the submissions (as a connection that breaks after the
server took the message): the outbox finds that message in Sent Items and does not send it
again.

Uses only the public Python API (``mailgate.jobs.outbox``: :func:`enqueue`, :class:`OutboxWorker`),
against the demo's SMTP mailbox profile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mailgate.connect import MailboxConnector
from mailgate.errors import MailgateError
from mailgate.identity import TokenProvider
from mailgate.jobs.outbox import Mode, OutboxWorker, enqueue, list_entries
from mailgate.mail.compose import OutgoingMessage
from mailgate.mailboxes import MailboxStore
from mailgate.settings.models import OutboxSettings
from mailgate.store import open_store
from mailgate.testing import SandboxClient

__all__ = ["outbox_tour"]


def outbox_tour(
    out: Console,
    step: Callable[[str], None],
    root: Path,
    provider: TokenProvider,
    sandbox: SandboxClient,
) -> int:
    """Queue 3 messages through ``approvals-smtp`` and send them; returns unexpected results."""
    step("Durable outbox: queue 3 messages, send them at Exchange's pace (30/minute)")
    domain = sandbox.tenant("contoso")["domains"][0]
    profiles = MailboxStore(provider.vault.directory)
    settings = OutboxSettings()  # Exchange Online's defaults: 30 messages per minute
    store = open_store(f"sqlite:///{root / 'state.db'}")
    try:
        profile = profiles.get("approvals-smtp")
        for number in (4712, 4713, 4714):
            message = OutgoingMessage(
                sender=profile.address,
                to=(f"servicedesk@{domain}",),
                subject=f"PO {number} approval",
                text=f"Please approve purchase order {number}.",
            )
            outbox_id = enqueue(store, profile, message, settings=settings)
            out.print(f"  queued PO {number} as outbox message {outbox_id} (on disk)")
        sandbox.lose_answers("smtp", 1)
        worker = OutboxWorker(
            store,
            MailboxConnector(provider),
            profiles,
            settings_for=lambda _name: settings,
            sent_items_grace=1.0,  # the sandbox files its copy at once; Exchange within moments
        )
        report = asyncio.run(worker.run(["approvals-smtp"], Mode.UNTIL_EMPTY))
        entries = list_entries(store)
    except MailgateError as exc:
        out.print(f"[red]outbox failed: {escape(str(exc))}")
        return 1
    finally:
        store.close()
    for entry in entries:
        sent = entry.sent_at.strftime("%H:%M:%S") if entry.sent_at else "-"
        note = f": {entry.last_error}" if entry.last_error else ""
        out.print(
            f"  {entry.id}  {entry.state:<6} sent {sent}  {escape(entry.subject)} "
            f"(attempts {entry.attempts}){escape(note)}"
        )
    out.print(
        f"Sent {report.sent}, failed {report.failed}, throttling replies {report.throttled}; "
        f"{report.recovered} whose answer was lost was found in Sent Items, not sent again."
    )
    return int(report.sent != 3 or report.failed != 0 or report.recovered != 1)
