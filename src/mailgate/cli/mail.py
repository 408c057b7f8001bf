"""``mailgate mailbox``, ``test``, ``folders``, ``get`` and ``send``: mailboxes as the seeds'
users know them.

Each command imports what it needs when it runs (see the note in ``mailgate.cli``): a ``get``
does not load the connection test, message composition or rich's tables.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mailgate.cli import _filters as filters
from mailgate.cli._context import open_provider, warn_expiring
from mailgate.cli._output import (
    console,
    escape,
    print_json,
    progress_bar,
    visible,
    warn,
)
from mailgate.errors import InvalidInputError
from mailgate.mailboxes import MailboxProfile, MailboxStore, parse_address, parse_profile_name
from mailgate.paths import data_dir
from mailgate.protocols.base import (
    DEFAULT_CONNECTIONS,
    MAX_CONNECTIONS,
    Folder,
    MessageSummary,
    Protocol,
    SearchCriteria,
    Security,
)

if TYPE_CHECKING:
    from mailgate.connect import MailboxConnector
    from mailgate.diagnose import ConnectionReport
    from mailgate.jobs.get import GetResult
    from mailgate.mail.compose import OutgoingMessage

mailbox_app = typer.Typer(help="Mailbox profiles: credential + protocol + address + server.")
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _store() -> MailboxStore:
    return MailboxStore(data_dir())


def _connector() -> MailboxConnector:
    from mailgate.connect import MailboxConnector

    return MailboxConnector(open_provider(interactive=False))


def check_header_value(field_name: str, value: str) -> None:
    from mailgate.mail.compose import check_header_value as check

    check(field_name, value)


@mailbox_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for this mailbox profile.")],
    credential: Annotated[str, typer.Option(help="Credential name (see `mailgate creds list`).")],
    protocol: Annotated[Protocol, typer.Option(help="imap, pop, smtp, ews or graph.")],
    address: Annotated[str, typer.Option(help="Mailbox address (a shared mailbox works too).")],
    server: Annotated[
        str | None, typer.Option(help="host[:port] or https URL (default: the cloud's).")
    ] = None,
    security: Annotated[Security | None, typer.Option(help="tls, starttls or plain.")] = None,
    folder: Annotated[str, typer.Option(help="Default folder.")] = "INBOX",
    ca_file: Annotated[Path | None, typer.Option("--ca-file", help="Extra CA to trust.")] = None,
    replace: Annotated[bool, typer.Option(help="Overwrite a profile of the same name.")] = False,
) -> None:
    """Store a mailbox profile (no secret; the credential stays in the vault)."""
    parse_profile_name(name)
    open_provider(interactive=False).vault.get(credential)  # fail early on a typo
    check_header_value("folder", folder)
    if ca_file is not None and not ca_file.is_file():
        raise InvalidInputError("--ca-file", "a readable PEM file", str(ca_file))
    profile = MailboxProfile(
        name=name,
        credential=credential,
        protocol=protocol,
        address=parse_address(address, "--address"),
        server=server,
        security=security,
        default_folder=folder,
        ca_file=str(ca_file.resolve()) if ca_file else None,
    )
    _connector().endpoint(profile)  # validates the server form
    _store().add(profile, replace=replace)
    console.print(
        f"Stored mailbox [bold]{escape(name)}[/] ({protocol.value} {escape(profile.address)}). "
        f"Check it with `mailgate test {name}`."
    )


@mailbox_app.command("list")
def list_(json_output: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List mailbox profiles."""
    profiles = _store().list()
    if json_output:
        print_json([p.model_dump(mode="json") for p in profiles])
        return
    from rich.table import Table

    table = Table("name", "protocol", "address", "credential", "server", "folder")
    for p in profiles:
        table.add_row(
            *map(
                escape,
                (
                    p.name,
                    p.protocol.value,
                    p.address,
                    p.credential,
                    p.server or "(default)",
                    p.default_folder,
                ),
            )
        )
    console.print(table)


@mailbox_app.command("rm")
def rm(name: str) -> None:
    """Remove a mailbox profile (its credential stays)."""
    _store().remove(name)
    console.print(f"Removed mailbox {name}.", markup=False)


def test(
    mailbox: Annotated[str, typer.Argument(help="Mailbox profile name.")],
    send_test_mail: Annotated[
        str | None, typer.Option("--send-test-mail", metavar="ADDRESS", help="Also send a mail.")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Test a mailbox step by step: endpoint, token, claims, sign-in, mailbox, (test mail)."""
    from mailgate.diagnose import run_connection_test

    profile = _store().get(mailbox)
    connector = _connector()
    warn_expiring(connector.provider.vault.get(profile.credential))
    if send_test_mail:
        send_test_mail = parse_address(send_test_mail, "--send-test-mail")
    report = _run(run_connection_test(connector, profile, send_test_mail))
    if json_output:
        print_json(report.as_dict())
    else:
        print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def print_report(report: ConnectionReport) -> None:
    """The connection test's steps, findings and verdict, as ``mailgate test`` shows them."""
    from mailgate.diagnose import StepStatus

    for step in report.steps:
        mark = "[green]✔[/]" if step.status is StepStatus.PASS else "[red]✘[/]"
        console.print(f"{mark} {step.name}: {escape(step.detail)}", markup=True)
        if step.finding:  # causes quote server replies: their controls are shown, not run
            console.print(visible(f"    cause: {step.finding.cause}"), markup=False)
            console.print(visible(f"    fix: {step.finding.remedy}"), markup=False)
            for command in step.finding.commands:
                console.print(visible(f"      {command}"), markup=False)
    style = "bold green" if report.ok else "bold red"
    console.print(f"[{style}]{report.verdict}[/]")


def folders(
    mailbox: Annotated[str, typer.Argument(help="Mailbox profile name.")],
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the mailbox's folders with their message and unread counts (the names `get
    --folder` takes)."""
    from mailgate.protocols.base import Operation, UnsupportedOperation

    profile = _store().get(mailbox)
    connector = _connector()
    adapter = connector.adapter(profile)
    if Operation.LIST_FOLDERS not in adapter.operations:
        # Before connecting: SMTP only sends, however good the token.
        raise UnsupportedOperation(
            profile.protocol,
            Operation.LIST_FOLDERS,
            f"{profile.protocol.value.upper()} only sends: list the folders of "
            f"{profile.address} through a profile with --protocol imap, ews or graph.",
        )
    warn_expiring(connector.provider.vault.get(profile.credential))

    async def listed() -> list[Folder]:
        async with adapter as opened:
            return await opened.list_folders()

    rows = [
        {"name": f.name, "total": f.total, "unread": f.unread, "special_use": f.special_use}
        for f in _run(listed())
    ]
    if json_output:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("folder", "total", "unread")
    for row in rows:
        table.add_row(
            escape(str(row["name"])),  # folder names are the mailbox owner's text, not markup
            "" if row["total"] is None else str(row["total"]),
            "" if row["unread"] is None else str(row["unread"]),  # POP3: unknown, not 0
        )
    console.print(table)


def _summary_row(s: MessageSummary) -> dict[str, Any]:
    return {
        "id": s.ref.id,
        "folder": s.ref.folder,
        "date": s.date.isoformat() if s.date else None,
        "from": s.from_address,
        "to": list(s.to),
        "subject": s.subject,
        "message_id": s.message_id,
        "size": s.size,
        "seen": s.seen,
        "has_attachments": s.has_attachments,
    }


async def _get(
    connector: MailboxConnector,
    profile: MailboxProfile,
    folder: str | None,
    criteria: SearchCriteria,
    limit: int | None,
    save: Path | None,
    attachments: bool,
    quiet: bool,
    connections: int,
) -> GetResult:
    from mailgate.jobs.get import get_messages

    # A bar only where someone watches: on a terminal (in a log or a pipe it is noise).
    show = not quiet and save is not None and sys.stderr.isatty()
    with progress_bar("saving", show) as (on_found, advance):
        result = await get_messages(
            connector,
            profile,
            criteria,
            folder=folder,
            limit=limit,
            save=save,
            attachments=attachments,
            on_found=on_found,
            advance=advance,
            connections=connections,
        )
    return result


def _rows(result: GetResult, attachments: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for summary in result.summaries:
        row = _summary_row(summary)
        saved = result.saved.get(summary.ref.id)
        if saved is not None:
            row |= {"eml": str(saved.eml_path), "size": saved.size}
            if attachments:
                row["attachments"] = list(saved.attachment_files)
        rows.append(row)
    return rows


def get(
    mailbox: Annotated[str, typer.Argument(help="Mailbox profile name.")],
    folder: filters.Folder = None,
    unread: filters.Unread = False,
    from_address: filters.FromAddress = None,
    subject: filters.Subject = None,
    since: filters.Since = None,
    before: filters.Before = None,
    has_attachments: filters.HasAttachments = None,
    limit: filters.Limit = None,
    save: Annotated[
        Path | None, typer.Option(help="Write .eml files (and attachments) into this directory.")
    ] = None,
    attachments: Annotated[
        bool, typer.Option("--attachments/--no-attachments", help="Extract attachments.")
    ] = True,
    json_output: Annotated[bool, typer.Option("--json")] = False,
    connections: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_CONNECTIONS,
            help="IMAP connections a large save may use at once (1: just one).",
        ),
    ] = DEFAULT_CONNECTIONS,
) -> None:
    """List (or save) messages matching the filters; nothing is changed in the mailbox."""
    profile = _store().get(mailbox)
    connector = _connector()
    connector.prepare(profile)
    warn_expiring(connector.provider.vault.get(profile.credential))
    criteria = filters.criteria(unread, from_address, subject, since, before, has_attachments)
    result = _run(
        _get(
            connector,
            profile,
            folder or profile.default_folder,
            criteria,
            limit,
            save,
            attachments,
            json_output,
            connections,
        )
    )
    for problem in result.problems:
        warn(problem)
    if json_output:
        print_json(_rows(result, attachments))
        return
    if save is not None:
        # Thousands of rows help nobody after a bulk save; the files and --json say it all
        # (so the summaries are not even made).
        count = (
            sum(len(saved.attachment_files) for saved in result.saved.values())
            if attachments
            else 0
        )
        # Plain text, not rich: a directory name is not markup (nor emoji codes).
        print(f"Saved {len(result.saved)} messages and {count} attachments to {save}.")
        return
    from rich.table import Table

    table = Table("date", "from", "subject", "size", "read")
    for row in _rows(result, attachments):
        cells = (
            str(row["date"] or "")[:16],
            row["from"],
            row["subject"],
            str(row["size"]),
            "yes" if row["seen"] else "no",
        )
        table.add_row(*map(escape, cells))  # subjects are the sender's text, not markup
    console.print(table)


def send(
    mailbox: Annotated[str, typer.Argument(help="Mailbox profile (SMTP, EWS or Graph).")],
    to: Annotated[list[str] | None, typer.Option(help="Recipient; repeat for more.")] = None,
    cc: Annotated[list[str] | None, typer.Option()] = None,
    bcc: Annotated[list[str] | None, typer.Option()] = None,
    subject: Annotated[str, typer.Option()] = "",
    text: Annotated[str | None, typer.Option(help="Plain-text body.")] = None,
    text_file: Annotated[Path | None, typer.Option("--text-file")] = None,
    html_file: Annotated[Path | None, typer.Option("--html-file")] = None,
    attach: Annotated[list[Path] | None, typer.Option(help="File to attach; repeatable.")] = None,
    reply_to: Annotated[list[str] | None, typer.Option("--reply-to")] = None,
    sender: Annotated[
        str | None, typer.Option("--from", help="From address (default: the mailbox).")
    ] = None,
    eml: Annotated[
        Path | None,
        typer.Option("--eml", help="Send this RFC 5322 file as it is (recipients: its headers)."),
    ] = None,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue", help="Put it in the durable outbox (sent by `mailgate outbox run`)."
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Send a message through a mailbox, now or through the durable outbox (--queue)."""
    from mailgate.jobs.send import send_message
    from mailgate.mail.compose import Attachment, OutgoingMessage

    profile = _store().get(mailbox)

    def read(path: Path | None, field_name: str) -> str | None:
        if path is None:
            return None
        try:
            return path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(field_name, "a readable UTF-8 text file", str(path)) from exc

    message = OutgoingMessage(
        sender=sender or profile.address,
        to=tuple(to or ()),
        cc=tuple(cc or ()),
        bcc=tuple(bcc or ()),
        subject=subject,
        text=text if text is not None else read(text_file, "--text-file"),
        html=read(html_file, "--html-file"),
        reply_to=tuple(reply_to or ()),
        attachments=tuple(Attachment.from_path(p) for p in attach or ()),
    )
    if queue:
        from mailgate.jobs.outbox.operations import enqueue, list_entries
        from mailgate.store import open_store

        source: OutgoingMessage | bytes = message
        if eml is not None:
            source = _read_eml(eml, message)
        store = open_store()
        try:
            outbox_id = enqueue(store, profile, source, recipients=message.recipients or None)
            if json_output:
                # What was queued as the outbox keeps it (an --eml's own Message-ID and
                # recipients), not as the options spelled it.
                (entry,) = list_entries(store, ids=[outbox_id])
        finally:
            store.close()
        if json_output:
            print_json(
                {
                    "mailbox": profile.name,
                    "message_id": entry.message_id,
                    "recipients": entry.recipients,
                    "queued": True,
                    "outbox_id": outbox_id,
                }
            )
            return
        console.print(
            f"Queued as outbox message {outbox_id}; `mailgate outbox run` sends it.",
            markup=False,
        )
        return
    if eml is not None:
        raise InvalidInputError("--eml", "used with --queue (the outbox checks and keeps it)")
    connector = _connector()
    warn_expiring(connector.provider.vault.get(profile.credential))
    message_id = _run(send_message(connector, profile, message))
    if json_output:
        print_json(
            {
                "mailbox": profile.name,
                "message_id": message_id,
                "recipients": list(message.recipients),
                "queued": False,
                "outbox_id": None,
            }
        )
        return
    console.print(
        f"Sent '{subject}' to {len(message.recipients)} recipients (Message-ID {message_id}).",
        markup=False,
    )


def _read_eml(path: Path, message: OutgoingMessage) -> bytes:
    if message.subject or message.text or message.html or message.attachments:
        raise InvalidInputError(
            "--eml", "a file on its own (no --subject, --text, --html-file or --attach)"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError("--eml", "a readable .eml file", str(path)) from exc


def register(app: typer.Typer) -> None:
    """Add the mailbox commands to the main app."""
    app.add_typer(mailbox_app, name="mailbox")
    app.command("test")(test)
    app.command("folders")(folders)
    app.command("get")(get)
    app.command("send")(send)


__all__ = [
    "add",
    "check_header_value",
    "folders",
    "get",
    "list_",
    "mailbox_app",
    "print_report",
    "register",
    "rm",
    "send",
    "test",
]
