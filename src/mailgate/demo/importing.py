"""The import step of ``mailgate demo``: the demo mailbox's mail to a directory, exactly once,
each message moved to ``Processed`` only after its file is durable."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mailgate.connect import MailboxConnector
from mailgate.errors import MailgateError
from mailgate.identity import TokenProvider
from mailgate.jobs.importing.postprocess import check_policy
from mailgate.jobs.importing.run import ImportOptions, run_import
from mailgate.mailboxes import MailboxStore
from mailgate.settings import PostProcess
from mailgate.store import open_store

__all__ = ["import_tour"]


def import_tour(
    out: Console, step: Callable[[str], None], root: Path, provider: TokenProvider
) -> int:
    """Import desk-imap's Inbox to ``root/imported`` with --after move; returns failures."""
    step("Import the Inbox exactly once, then move each message to Processed")
    profile = MailboxStore(provider.vault.directory).get("desk-imap")
    adapter = MailboxConnector(provider).adapter(profile)
    policy = check_policy(
        PostProcess.MOVE,
        after_source="command line",
        confirmed=False,
        move_to="Processed",
        max_size=25 * 1024 * 1024,
        oversize_folder="mailgate-oversize",
        protocol=adapter.protocol,
        operations=adapter.operations,
    )
    store = open_store(f"sqlite:///{provider.vault.directory / 'state.db'}")
    options = ImportOptions(folder="INBOX", job="demo-import", to=root / "imported")

    async def go() -> tuple[int, int]:
        async with adapter as box:
            first = await run_import(box, "desk-imap", policy, options, store)
            again = await run_import(box, "desk-imap", policy, options, store)
        return first.delivered, again.delivered

    try:
        delivered, repeated = asyncio.run(go())
    except MailgateError as exc:
        out.print(f"[red]import failed: {escape(str(exc))}")
        return 1
    finally:
        store.close()
    out.print(
        f"Delivered {delivered} messages to {options.to}, moved them to Processed; "
        f"a second run delivered {repeated} (the state store remembers)."
    )
    return int(delivered < 1 or repeated != 0)
