"""``--to DIR``: each message published under its deterministic name, one sync per batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mailgate.jobs.importing.delivery.common import Delivery, Landing
from mailgate.jobs.importing.files import DirectoryDestination, SyncMode

__all__ = ["DirectoryDelivery"]


class DirectoryDelivery(Landing):
    """Publishes into a directory as messages arrive (:class:`DirectoryDestination`) and makes
    the batch durable in :meth:`deliver`, before any other destination or the mailbox acts."""

    def __init__(self, directory: Path, *, attachments: bool, sync: SyncMode) -> None:
        self.destination = DirectoryDestination(directory, attachments=attachments, sync=sync)
        self.keep_copies = attachments

    def prepare(self) -> Path:
        return self.destination.directory

    def land(self, delivery: Delivery) -> None:
        delivery.saved = self.destination.publish(delivery.item, delivery.token[:8])
        delivery.path = delivery.saved.file

    async def deliver(self, batch: Sequence[Delivery]) -> None:
        self.destination.flush()  # one sync for the batch
