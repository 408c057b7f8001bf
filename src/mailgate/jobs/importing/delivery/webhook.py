"""``--webhook URL``: each message POSTed as signed JSON, a few at a time, retried by the rule
of :mod:`mailgate.jobs.importing.webhook`; a message without a 2xx is failed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from mailgate.jobs.importing.delivery.common import Delivery, Destination
from mailgate.jobs.importing.webhook import MessageIdentity, WebhookClient, webhook_payload
from mailgate.secret import Secret

__all__ = ["CONCURRENCY", "WebhookDelivery"]

CONCURRENCY = 4  # POSTs in flight at once


class WebhookDelivery(Destination):
    """Posts each message of a batch with its identity and ``Idempotency-Key``; attachments go
    as the paths of saved files when the import also saves to a directory (``attachments``)."""

    def __init__(
        self, url: str, secret: Secret | None, *, job: str, mailbox: str, attachments: bool
    ) -> None:
        self.client = WebhookClient(url, secret)
        self.job = job
        self.mailbox = mailbox
        self.attachments = attachments

    async def deliver(self, batch: Sequence[Delivery]) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def post(delivery: Delivery) -> None:
            async with gate:
                await self._post(delivery)

        await asyncio.gather(*(post(d) for d in batch))

    async def _post(self, delivery: Delivery) -> None:
        assert delivery.path is not None
        item, key = delivery.item, delivery.key
        identity = MessageIdentity(
            job=self.job,
            mailbox=self.mailbox,
            folder=key.folder,
            uidvalidity=key.uidvalidity,
            item_id=key.item_id,
            idempotency_key=delivery.token,
            sha256=item.sha256,
            size=item.size,
        )
        saved = delivery.saved
        raw = await asyncio.to_thread(Path(delivery.path).read_bytes)
        payload = webhook_payload(
            raw,
            identity,
            eml_path=saved.eml if saved else None,
            attachment_paths=saved.attachments if saved and self.attachments else None,
        )
        result = await self.client.deliver(payload, delivery.token)
        if not result.ok:
            delivery.error = f"webhook: {result.error} after {result.attempts} attempts"

    async def aclose(self) -> None:
        await self.client.aclose()
