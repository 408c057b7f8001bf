"""Which destinations an import's options ask for, in the order each batch visits them."""

from __future__ import annotations

from mailgate.jobs.importing.delivery.common import Destination, Landing
from mailgate.jobs.importing.delivery.directory import DirectoryDelivery
from mailgate.jobs.importing.delivery.spool import Spool
from mailgate.jobs.importing.options import ImportOptions

__all__ = ["route"]


def route(options: ImportOptions, mailbox_name: str) -> tuple[Landing, list[Destination]]:
    """Where files land (the directory, else the spool), and every destination in order."""
    landing: Landing
    if options.to is not None:
        landing = DirectoryDelivery(options.to, attachments=options.attachments, sync=options.sync)
    else:
        landing = Spool(options.spool)
    destinations: list[Destination] = [landing]
    if options.webhook:
        # Imported here: httpx is a start-up cost that --to and --command runs skip.
        from mailgate.jobs.importing.delivery.webhook import WebhookDelivery

        attachments = options.attachments and options.to is not None
        destinations.append(
            WebhookDelivery(
                options.webhook,
                options.webhook_secret,
                job=options.job,
                mailbox=mailbox_name,
                attachments=attachments,
            )
        )
    if options.command:
        from mailgate.jobs.importing.delivery.command import CommandDelivery

        hidden = options.webhook_secret
        destinations.append(
            CommandDelivery(options.command, job=options.job, mailbox=mailbox_name, hidden=hidden)
        )
    return landing, destinations
