"""The mail half of ``mailgate demo``: mailbox profiles, connection tests, send, get --save.

Kept apart from :mod:`mailgate.demo.run` so each stays short; it uses only public APIs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mailgate.connect import MailboxConnector
from mailgate.diagnose import StepStatus, run_connection_test
from mailgate.errors import MailgateError
from mailgate.identity import TokenProvider
from mailgate.jobs.get import get_messages
from mailgate.jobs.send import send_message
from mailgate.mail.compose import Attachment, OutgoingMessage
from mailgate.mailboxes import MailboxProfile, MailboxStore
from mailgate.protocols.base import Protocol, SearchCriteria
from mailgate.testing import SandboxClient

__all__ = ["mail_tour"]

# (profile, protocol, mailbox user, should the connection test pass?)
_PROFILES = (
    ("approvals-graph", Protocol.GRAPH, "approvals", True),
    ("desk-ews", Protocol.EWS, "servicedesk", True),
    ("desk-imap", Protocol.IMAP, "servicedesk", True),
    ("desk-pop", Protocol.POP3, "servicedesk", True),
    ("approvals-smtp", Protocol.SMTP, "approvals", True),
    ("bob-imap", Protocol.IMAP, "bob", False),
    ("alice-ews", Protocol.EWS, "alice", False),
)


def mail_tour(
    out: Console,
    step: Callable[[str], None],
    root: Path,
    provider: TokenProvider,
    sandbox: SandboxClient,
) -> int:
    """Run the mail steps; returns the number of unexpected results."""
    domain = sandbox.tenant("contoso")["domains"][0]
    store = MailboxStore(provider.vault.directory)
    for name, protocol, user, _ok in _PROFILES:
        store.add(
            MailboxProfile(
                name=name,
                credential="daemon-secret",
                protocol=protocol,
                address=f"{user}@{domain}",
            ),
            replace=True,
        )
    connector = MailboxConnector(provider)
    failures = 0

    step("Connection tests (IMAP, POP3, SMTP, EWS, Graph)")
    for name, _protocol, _user, expected in _PROFILES:
        report = asyncio.run(run_connection_test(connector, store.get(name)))
        mark = "[green]✔[/]" if report.ok else "[red]✘[/]"
        out.print(f"{mark} [bold]{name}[/]: {report.verdict}")
        failed = next((s for s in report.steps if s.status is StepStatus.FAIL), None)
        if failed and failed.finding:
            out.print(f"    cause: {failed.finding.cause}", markup=False)
            for command in failed.finding.commands:
                out.print(f"    fix: {command}", markup=False)
        failures += report.ok is not expected

    step("Send a purchase order for approval (SMTP, XOAUTH2)")
    message = OutgoingMessage(
        sender=f"approvals@{domain}",
        to=(f"servicedesk@{domain}",),
        subject="PO 4711 approval",
        text="Please approve purchase order 4711 (see the attached PDF).",
        attachments=(
            Attachment("PO-4711.pdf", b"%PDF-1.4 demo purchase order", "application/pdf"),
        ),
    )
    try:
        message_id = asyncio.run(send_message(connector, store.get("approvals-smtp"), message))
        out.print(f"Sent '{message.subject}' ({message_id}) to servicedesk@{domain}.")
    except MailgateError as exc:
        failures += 1
        out.print(f"[red]send failed: {escape(str(exc))}")

    step("Get and save it (IMAP bulk fetch, attachments extracted)")
    saved_dir = root / "saved"
    try:
        result = asyncio.run(
            get_messages(
                connector,
                store.get("desk-imap"),
                SearchCriteria(subject_contains="PO 4711"),
                save=saved_dir,
            )
        )
    except MailgateError as exc:
        failures += 1
        out.print(f"[red]get failed: {escape(str(exc))}")
    else:
        for saved in result.saved.values():
            out.print(f"  {saved.eml_path.relative_to(root)} ({saved.size} bytes)")
            for attachment in saved.attachments:
                out.print(f"    attachment {attachment.relative_to(root)}")
        failures += len(result.saved) != 1
    return failures
