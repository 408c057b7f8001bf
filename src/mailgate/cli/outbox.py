"""``mailgate outbox run|list|retry|purge``: the durable outbox (``send --queue`` fills it)."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Annotated

import typer

from mailgate.cli._output import console, escape, print_json, visible, warn
from mailgate.errors import InvalidInputError
from mailgate.jobs.outbox.states import FINISHED, PENDING, OutboxState

if TYPE_CHECKING:
    from mailgate.jobs.outbox.worker import DrainReport, Mode, OutboxWorker

# Start-up: the outbox, its worker and the state store (SQLAlchemy) are imported inside the
# commands, so that other commands do not pay for them. The states come from the pure state
# module, which imports nothing heavy.
STATES_HELP = tuple(str(state) for state in OutboxState)
_COUNTS = ("sent", "failed", "retried", "throttled", "recovered", "unknown")  # of a DrainReport
_AFTER_FAILURES = (
    "see `mailgate outbox list --state failed`; after fixing, `mailgate outbox retry`."
)

app = typer.Typer(help="The durable outbox: queued messages, the sending worker, cleanup.")

__all__ = ["STATES_HELP", "app", "list_", "purge_", "retry_", "run"]


@app.command("run")
def run(
    mailbox: Annotated[
        list[str] | None, typer.Option(help="Only this mailbox profile; repeatable.")
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Send what is due now; do not wait for retries.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep running and send new messages as they come.")
    ] = False,
    sent_items_grace: Annotated[
        float,
        typer.Option(
            "--sent-items-grace",
            min=0,
            help="After a crash, seconds to let Exchange file a copy in Sent Items before "
            "looking for it.",
        ),
    ] = 60.0,
    json_output: Annotated[
        bool, typer.Option("--json", help="The counts and every event as JSON on stdout.")
    ] = False,
) -> None:
    """Send queued messages within each mailbox's limits (default: until the queue is empty)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from mailgate.cli._context import open_provider
    from mailgate.cli._output import err_console, rich_console
    from mailgate.connect import MailboxConnector
    from mailgate.jobs.outbox.operations import list_entries
    from mailgate.jobs.outbox.worker import Event, Mode, OutboxWorker
    from mailgate.mailboxes import MailboxStore
    from mailgate.paths import data_dir
    from mailgate.store import open_store

    if once and follow:
        raise InvalidInputError("--once/--follow", "one of them, not both")
    profiles = MailboxStore(data_dir())
    for name in mailbox or ():
        profiles.get(name)  # unknown names: exit 2 before anything starts
    store = open_store()
    mode = Mode.FOLLOW if follow else Mode.ONCE if once else Mode.UNTIL_EMPTY
    queued = sum(
        1
        for e in list_entries(store)
        if e.state in PENDING and (not mailbox or e.mailbox in mailbox)
    )
    with Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=rich_console(err_console),
        transient=True,
    ) as progress:
        task = progress.add_task("", total=None if follow else queued)

        def on_event(event: Event) -> None:
            if event.kind in ("sent", "failed", "unknown"):
                progress.advance(task)
            if event.kind in ("failed", "unknown", "skipped"):
                progress.console.print(  # the detail quotes the server's reply
                    visible(
                        f"outbox {event.outbox_id} ({event.mailbox}) {event.kind}: {event.detail}"
                    ),
                    markup=False,
                )
            elif event.kind == "retry":
                # A description is rich markup: the server's text is escaped for it.
                progress.update(
                    task, description=f"retry {event.outbox_id} {escape(event.detail[:60])}"
                )
            elif event.kind == "uncertain":
                progress.update(
                    task, description=f"{event.outbox_id}: answer lost, checking Sent Items"
                )

        worker = OutboxWorker(
            store,
            MailboxConnector(open_provider(interactive=False)),
            profiles,
            on_event=on_event,
            sent_items_grace=sent_items_grace,
        )
        report = asyncio.run(_run_until_signal(worker, mailbox, mode))
    store.close()
    if json_output:
        print_json(_report_json(report))
        if report.failed or report.unknown:
            warn(_AFTER_FAILURES)
    else:
        _summary(report)
    if report.failed or report.unknown:
        raise typer.Exit(1)


def _report_json(report: DrainReport) -> dict[str, object]:
    """The drain report for scripts: the counts, then each event one compact line."""
    counts = {name: getattr(report, name) for name in _COUNTS}
    return counts | {
        "events": [
            {"kind": e.kind, "outbox_id": e.outbox_id, "mailbox": e.mailbox, "detail": e.detail}
            for e in report.events
        ]
    }


async def _run_until_signal(
    worker: OutboxWorker, mailboxes: list[str] | None, mode: Mode
) -> DrainReport:
    # SIGTERM/SIGINT: finish the submissions in flight (their outcome is then known), stop.
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.stop)
    try:
        return await worker.run(mailboxes or None, mode)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _summary(report: DrainReport) -> None:
    parts = [f"Sent {report.sent}", f"failed {report.failed}"]
    if report.retried:
        parts.append(f"retried {report.retried} ({report.throttled} throttling replies)")
    if report.recovered:
        parts.append(f"{report.recovered} confirmed in Sent Items after a crash")
    if report.unknown:
        parts.append(f"{report.unknown} with unknown outcome")
    console.print(", ".join(parts) + ".", markup=False)
    if report.failed or report.unknown:
        warn(_AFTER_FAILURES)


@app.command("list")
def list_(
    state: Annotated[
        str | None, typer.Option(help=f"Only this state: {', '.join(STATES_HELP)}.")
    ] = None,
    mailbox: Annotated[str | None, typer.Option(help="Only this mailbox profile.")] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List outbox messages, oldest first."""
    from rich.table import Table

    from mailgate.jobs.outbox.operations import list_entries
    from mailgate.store import open_store

    store = open_store()
    entries = list_entries(store, state=state, mailbox=mailbox)
    store.close()
    if json_output:
        print_json([e.as_dict() for e in entries])
        return
    table = Table("id", "mailbox", "state", "tries", "created", "subject", "to", "last error")
    for e in entries:
        to = ", ".join(e.recipients[:2]) + (
            f" +{len(e.recipients) - 2}" if len(e.recipients) > 2 else ""
        )
        table.add_row(
            *map(
                escape,
                (
                    str(e.id),
                    e.mailbox,
                    e.state,
                    str(e.attempts),
                    e.created_at.strftime("%Y-%m-%d %H:%M"),
                    e.subject,
                    to,
                    (e.last_error or "")[:120],
                ),
            )
        )
    console.print(table)


@app.command("retry")
def retry_(
    ids: Annotated[list[int] | None, typer.Argument(help="Outbox ids (see `outbox list`).")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="Every failed message.")] = False,
) -> None:
    """Queue failed messages again (their attempts start over)."""
    from mailgate.jobs.outbox.operations import retry
    from mailgate.store import open_store

    store = open_store()
    chosen = retry(store, ids or (), all_failed=all_failed)
    store.close()
    console.print(
        f"Queued {len(chosen)} messages again; send them with `mailgate outbox run`.",
        markup=False,
    )


@app.command("purge")
def purge_(
    ids: Annotated[list[int] | None, typer.Argument(help="Only these outbox ids.")] = None,
    sent_before: Annotated[
        str, typer.Option("--sent-before", help="Finished longer ago than this (7d, 12h, 2w).")
    ] = "7d",
    state: Annotated[
        list[str] | None, typer.Option(help="sent or failed (default both); repeatable.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Also delete queued/sending messages.")
    ] = False,
) -> None:
    """Delete finished outbox messages (never unsent ones without --force)."""
    from mailgate.jobs.outbox.operations import parse_age, purge
    from mailgate.store import open_store

    age = parse_age(sent_before)
    store = open_store()
    count = purge(
        store, older_than=age, states=state or tuple(FINISHED), ids=ids or (), force=force
    )
    store.close()
    console.print(f"Purged {count} outbox messages.", markup=False)
