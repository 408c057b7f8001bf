"""The outbox's I/O other than its table: settings, one connected adapter per mailbox, and
the Sent Items lookup.

Both :mod:`mailgate.jobs.outbox.operations` and :mod:`mailgate.jobs.outbox.worker` import this
module and it imports neither, so the worker does not import the module whose ``drain`` starts it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailgate.connect import MailboxConnector
from mailgate.errors import MailgateError
from mailgate.jobs.outbox.retries import Verdict, classify
from mailgate.mailboxes import MailboxProfile
from mailgate.protocols.base import Mailbox, Protocol, SearchCriteria, ThrottledError
from mailgate.settings import load_settings
from mailgate.settings.models import OutboxSettings
from mailgate.store.models import utcnow

__all__ = ["HEADER_BYTES", "MailboxSender", "in_sent_items", "outbox_settings"]

HEADER_BYTES = 16_384  # enough of the MIME to read its Subject (listings, Sent Items search)


def outbox_settings(mailbox: str) -> OutboxSettings:
    """The ``[outbox]`` settings in force for ``mailbox`` (global → mailbox layers)."""
    return load_settings(mailbox=mailbox).settings.outbox


class MailboxSender:
    """One adapter per mailbox, connected on first use and reopened after a failure."""

    def __init__(self, connector: MailboxConnector, profile: MailboxProfile) -> None:
        self.connector = connector
        self.profile = profile
        self._mailbox: Mailbox | None = None
        self._lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()

    async def send(self, mime: bytes, sender: str, recipients: list[str]) -> None:
        if self.profile.protocol is Protocol.SMTP:
            async with self._lock:  # one SMTP session carries one transaction at a time
                await self._send(mime, sender, recipients)
        else:
            await self._send(mime, sender, recipients)

    async def _connected(self) -> Mailbox:
        async with self._connect_lock:
            if self._mailbox is None:
                mailbox = self.connector.adapter(self.profile)
                await mailbox.connect()
                self._mailbox = mailbox
            return self._mailbox

    async def _send(self, mime: bytes, sender: str, recipients: list[str]) -> None:
        mailbox = await self._connected()
        try:
            await mailbox.send(mime, sender=sender, recipients=recipients)
        except MailgateError as exc:
            if classify(exc).verdict is Verdict.TRANSIENT and not isinstance(exc, ThrottledError):
                await self.close()  # a 4xx leaves the session usable; anything else: reconnect
            raise

    async def close(self) -> None:
        mailbox, self._mailbox = self._mailbox, None
        if mailbox is not None:
            with contextlib.suppress(MailgateError, OSError):
                await mailbox.close()


async def in_sent_items(
    connector: MailboxConnector,
    reader: MailboxProfile,
    message_id: str,
    submitted: datetime | None,
    head: bytes,
) -> bool:
    """Whether Sent Items of ``reader``'s mailbox holds a message with ``message_id``."""
    subject = BytesHeaderParser(policy=compat32).parsebytes(head + b"\n\n").get("Subject")
    shown = str(subject or "")
    simple = bool(shown) and shown.isascii() and shown.replace(" ", "").isalnum()
    since = (submitted or utcnow()) - timedelta(days=1)
    criteria = SearchCriteria(since=since, subject_contains=shown if simple else None)
    wanted = message_id.strip().lower()
    async with connector.adapter(reader) as mailbox:
        folder = "sentitems"
        with contextlib.suppress(MailgateError):
            for candidate in await mailbox.list_folders():
                if candidate.special_use == "\\Sent":
                    folder = candidate.name
                    break
        refs = await mailbox.search(folder, criteria)
        for start in range(0, len(refs), 100):
            for summary in await mailbox.fetch_headers(refs[start : start + 100]):
                if (summary.message_id or "").strip().lower() == wanted:
                    return True
    return False
