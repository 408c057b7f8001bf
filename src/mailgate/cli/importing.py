"""``mailgate import``: deliver mail to a directory, webhook or command, then post-process it."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mailgate.cli import _filters as filters
from mailgate.cli._output import console, print_json, warn
from mailgate.errors import ConfigurationError, InvalidInputError
from mailgate.jobs.importing.keys import SyncMode, default_job_name

if TYPE_CHECKING:
    from mailgate.jobs.importing.run import ImportOptions, ImportReport
    from mailgate.settings import ResolvedSettings

# Start-up: the state store (SQLAlchemy), the importer, rich's progress bar and the settings
# are imported inside the command, so that other commands do not pay for them.

__all__ = ["import_", "register"]

_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _settings(mailbox: str, job: str | None, overrides: dict[str, Any]) -> ResolvedSettings:
    from mailgate.settings import load_settings, read_config

    # A --job without a [jobs.<name>] table is just a name for the job's state.
    configured = job is not None and job in (read_config().get("jobs") or {})
    resolved = load_settings(mailbox=mailbox, job=job if configured else None, overrides=overrides)
    if configured and resolved.mailbox not in (None, mailbox):
        raise ConfigurationError(
            f"job {job!r} belongs to mailbox {resolved.mailbox!r}, not {mailbox!r}.",
            f"run `mailgate import {resolved.mailbox} --job {job}` or choose another job name.",
        )
    return resolved


def _command(text: str | None) -> list[str] | None:
    if text is None:
        return None
    try:
        argv = shlex.split(text)
    except ValueError as exc:
        raise InvalidInputError("--command", "a command line with balanced quotes", text) from exc
    if not argv:
        raise InvalidInputError("--command", "a program to run (the .eml path is added)", text)
    if shutil.which(argv[0]) is None:
        raise InvalidInputError("--command", "an executable program (found on PATH)", argv[0])
    return argv


def _summary(report: ImportReport, after: str, destination: str) -> str:
    parts = [f"{report.delivered} delivered"]
    if report.redelivered:
        parts.append(f"{report.redelivered} found already delivered by an interrupted run")
    parts.append(f"{report.postprocessed} post-processed ({after})")
    for count, label in (
        (report.skipped, "skipped (done in an earlier run)"),
        (len(report.duplicates), "duplicates not delivered again"),
        (len(report.oversize), "oversize set aside"),
        (len(report.failed), "failed"),
    ):
        if count:
            parts.append(f"{count} {label}")
    return (
        f"Imported from {report.found} matching messages to {destination} "
        f"(job {report.job}): {', '.join(parts)}."
    )


def import_(
    mailbox: Annotated[str, typer.Argument(help="Mailbox profile name.")],
    to: Annotated[
        Path | None, typer.Option("--to", help="Write .eml files (+ attachments) here.")
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="POST each message as signed JSON to this URL.")
    ] = None,
    command: Annotated[
        str | None, typer.Option(help="Run this program with the .eml path as last argument.")
    ] = None,
    folder: filters.Folder = None,
    unread: filters.Unread = False,
    from_address: filters.FromAddress = None,
    subject: filters.Subject = None,
    since: filters.Since = None,
    before: filters.Before = None,
    has_attachments: filters.HasAttachments = None,
    limit: filters.Limit = None,
    after: Annotated[
        str | None,
        typer.Option(help="keep (default), mark-read, move, delete, permanent-delete."),
    ] = None,
    move_to: Annotated[
        str | None, typer.Option("--move-to", help="Folder for --after move.")
    ] = None,
    max_size: Annotated[
        str | None, typer.Option("--max-size", help="Set aside larger mail (e.g. 25MB).")
    ] = None,
    oversize_folder: Annotated[
        str | None, typer.Option("--oversize-folder", help="Where oversize mail is moved.")
    ] = None,
    yes_permanently_delete: Annotated[
        bool,
        typer.Option("--yes-permanently-delete", help="Confirm --after permanent-delete."),
    ] = False,
    job: Annotated[
        str | None, typer.Option(help="Job name: its settings and its record of processed mail.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Messages per fetch, sync and record.")
    ] = None,
    connections: Annotated[
        int | None,
        typer.Option(help="IMAP connections a large import may use at once (1: just one)."),
    ] = None,
    attachments: Annotated[
        bool, typer.Option("--attachments/--no-attachments", help="Extract attachments (--to).")
    ] = True,
    sync: Annotated[SyncMode, typer.Option(hidden=True, help="batch or message (benchmarks).")] = (
        SyncMode.BATCH
    ),
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Import mail exactly once to a directory, webhook or command, then post-process it."""
    from mailgate.cli._context import open_provider, warn_expiring
    from mailgate.connect import MailboxConnector
    from mailgate.mailboxes import MailboxStore
    from mailgate.paths import data_dir

    if to is None and webhook is None and command is None:
        raise InvalidInputError("destination", "--to DIR, --webhook URL or --command CMD")
    if job is not None and not _JOB_NAME.fullmatch(job):
        raise InvalidInputError("--job", "up to 64 letters, digits, '.', '_' or '-'", job)
    argv = _command(command)
    if webhook is not None:
        # The webhook module (and httpx) only when there is a webhook: start-up time.
        from mailgate.jobs.importing.webhook import check_webhook_url

        check_webhook_url(webhook)
    profile = MailboxStore(data_dir()).get(mailbox)
    connector = MailboxConnector(open_provider(interactive=False))
    connector.prepare(profile)  # the TLS trust loads while the state store's modules do

    from mailgate.jobs.importing.postprocess import check_policy
    from mailgate.jobs.importing.run import ImportOptions
    from mailgate.secret import Secret
    from mailgate.store import open_store

    overrides = {
        "import.after": after,
        "import.move_to": move_to,
        "import.max_size": max_size,
        "import.oversize_folder": oversize_folder,
        "import.batch_size": batch_size,
        "import.connections": connections,
    }
    resolved = _settings(mailbox, job, overrides)
    settings = resolved.settings.import_
    adapter = connector.adapter(profile)
    policy = check_policy(
        settings.after,
        after_source=resolved.sources["import.after"],
        confirmed=yes_permanently_delete or settings.confirm_permanent_delete,
        move_to=settings.move_to,
        max_size=settings.max_size,
        oversize_folder=settings.oversize_folder,
        protocol=adapter.protocol,
        operations=adapter.operations,
    )
    secret = settings.webhook_secret
    if secret is None and os.environ.get("MAILGATE_WEBHOOK_SECRET"):
        secret = Secret(os.environ["MAILGATE_WEBHOOK_SECRET"])
    if webhook is not None and secret is None:
        warn(
            "no webhook secret: requests go unsigned. Set MAILGATE_WEBHOOK_SECRET (or "
            'webhook_secret = "env:VAR" in [import]) so the receiver can verify them.'
        )
    destinations = [str(to.resolve())] if to else []
    destinations += [f"webhook {webhook}"] if webhook else []
    destinations += [f"command {shlex.join(argv)}"] if argv else []
    job_name = job or default_job_name(mailbox, destinations)
    if webhook is not None:  # printed below: never with a key the URL may carry
        from mailgate.jobs.importing.webhook import shown_url

        destinations = [
            f"webhook {shown_url(webhook)}" if d.startswith("webhook ") else d for d in destinations
        ]
    options = ImportOptions(
        folder=folder or profile.default_folder,
        job=job_name,
        criteria=filters.criteria(unread, from_address, subject, since, before, has_attachments),
        limit=limit,
        to=to,
        webhook=webhook,
        command=argv,
        attachments=attachments,
        batch_size=settings.batch_size,
        connections=settings.connections,
        webhook_secret=secret,
        sync=sync,
        spool=data_dir() / "spool" / job_name,
    )
    warn_expiring(connector.provider.vault.get(profile.credential))
    store = open_store()
    try:
        report = asyncio.run(_run(adapter, mailbox, policy, options, store, json_output))
    finally:
        store.close()
    for problem in report.problems:
        warn(problem)
    if json_output:
        print_json(report.as_dict())
    else:
        for item in report.oversize:
            warn(f"set aside {item.id}: {item.note}")
        for item in report.duplicates:
            warn(f"not delivered again {item.id} ({item.subject!r}): {item.note}")
        for item in report.failed:
            warn(f"failed {item.id} ({item.subject!r}): {item.note}; it stays in the mailbox")
        console.print(_summary(report, policy.after.value, ", ".join(destinations)), markup=False)
    if report.failed:
        raise typer.Exit(1)


async def _run(
    adapter: Any,
    mailbox: str,
    policy: Any,
    options: ImportOptions,
    store: Any,
    quiet: bool,
) -> ImportReport:
    from mailgate.cli._output import progress_bar
    from mailgate.jobs.importing.run import run_import

    # A bar only where someone watches (a terminal), as for `get --save`.
    with progress_bar("importing", not quiet and sys.stderr.isatty()) as (on_found, advance):
        async with adapter as box:
            return await run_import(
                box,
                mailbox,
                policy,
                options,
                store,
                on_found=on_found,
                advance=advance,
            )


def register(app: typer.Typer) -> None:
    """Add ``import`` to the main app."""
    app.command("import")(import_)
