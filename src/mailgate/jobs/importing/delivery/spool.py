"""Without ``--to``: messages wait in a private spool for the webhook or command, then go."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from mailgate.jobs.importing.delivery.common import Delivery, Landing
from mailgate.jobs.importing.files import remove_stale_parts

__all__ = ["Spool"]


class Spool(Landing):
    """A private directory (0700): each message renamed to ``<idempotency key>.eml`` there and
    removed once the batch's destinations had it (delivered, or fetched afresh next run)."""

    keep_copies = False

    def __init__(self, spool: Path | None) -> None:
        self.spool = spool  # None: nothing may be fetched (a run with nothing to deliver)

    def prepare(self) -> Path:
        """The spool, made if missing, without the temporary files of killed runs."""
        assert self.spool is not None
        self.spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        remove_stale_parts(self.spool)
        return self.spool

    def land(self, delivery: Delivery) -> None:
        path = Path(delivery.item.temp).with_name(f"{delivery.token}.eml")
        os.replace(delivery.item.temp, path)  # inside our private spool: ours to replace
        delivery.path = str(path)

    async def deliver(self, batch: Sequence[Delivery]) -> None:
        """Nothing: the files are where the other destinations read them."""

    async def finish(self, batch: Sequence[Delivery]) -> None:
        for delivery in batch:
            if delivery.path is not None:
                Path(delivery.path).unlink(missing_ok=True)
