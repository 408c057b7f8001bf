"""How an import recognises a message again. Pure.

A message is keyed by (job, mailbox, folder, uidvalidity, item id): IMAP's UIDVALIDITY and UID,
otherwise 0 and the protocol's id (POP3 UIDL, EWS ItemId, Graph id). The same key gives the
webhook ``Idempotency-Key`` and the short token in the ``.eml`` file name, so a redelivery after
a crash lands on the same name and carries the same key.

What a recorded state means on restart, and which moves between states are allowed, is
:mod:`mailgate.jobs.importing.machine` (its names are re-exported here, where they used to live).
:class:`KeyBook` keeps one run's keys: each ref parsed once, and back.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import NamedTuple

from mailgate.jobs.importing.machine import (
    DELIVERED,
    DELIVERING,
    DONE,
    FAILED,
    OVERSIZE,
    Step,
    next_step,
)
from mailgate.protocols.base import MessageRef, Protocol

__all__ = [
    "DELIVERED",
    "DELIVERING",
    "DONE",
    "FAILED",
    "OVERSIZE",
    "ItemKey",
    "KeyBook",
    "Step",
    "SyncMode",
    "default_job_name",
    "idempotency_key",
    "item_key",
    "next_step",
]

_IMAP_ID = re.compile(r"(\d+):(\d+)")


class SyncMode(StrEnum):
    """When an import's written files are forced to disk (here, not in import_files, so that
    the CLI can offer the option without loading the file-writing code at start-up)."""

    BATCH = "batch"  # one sync per batch, before that batch's post-processing
    MESSAGE = "message"  # an fsync per file as it is finished


class ItemKey(NamedTuple):
    """The per-mailbox part of a message's key (a tuple: built and hashed per message, cheaply)."""

    folder: str
    uidvalidity: int
    item_id: str


def item_key(protocol: Protocol, ref: MessageRef) -> ItemKey:
    """IMAP ``"<uidvalidity>:<uid>"`` splits into both numbers; other ids are kept whole."""
    if protocol is Protocol.IMAP:
        match = _IMAP_ID.fullmatch(ref.id)
        if match:
            return ItemKey(ref.folder, int(match.group(1)), match.group(2))
    return ItemKey(ref.folder, 0, ref.id)


def idempotency_key(job: str, mailbox: str, key: ItemKey) -> str:
    """Stable per message: sha256 over job, mailbox, folder, uidvalidity and item id (hex)."""
    # NUL cannot occur in any of the parts, so no two different keys join to the same text.
    joined = "\0".join((job, mailbox, key.folder, str(key.uidvalidity), key.item_id))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


def default_job_name(mailbox: str, destinations: list[str]) -> str:
    """Without ``--job``: one job per mailbox and destination set, so running the same import
    again only picks up new mail, and importing to another place starts afresh."""
    digest = hashlib.sha256("\0".join(sorted(destinations)).encode("utf-8")).hexdigest()
    return f"{mailbox[:40]}-{digest[:12]}"


class KeyBook:
    """One run's keys: each ref's key parsed once (asked for several times per message: ledger,
    names, report), the ref a recorded key stands for, and a key's idempotency token."""

    def __init__(self, protocol: Protocol, job: str, mailbox: str) -> None:
        self.protocol = protocol
        self.job = job
        self.mailbox = mailbox
        self._keys: dict[MessageRef, ItemKey] = {}

    def key(self, ref: MessageRef) -> ItemKey:
        key = self._keys.get(ref)
        if key is None:
            key = self._keys[ref] = item_key(self.protocol, ref)
        return key

    def ref(self, key: ItemKey) -> MessageRef:
        if self.protocol is Protocol.IMAP:
            return MessageRef(key.folder, f"{key.uidvalidity}:{key.item_id}")
        return MessageRef(key.folder, key.item_id)

    def token(self, key: ItemKey) -> str:
        return idempotency_key(self.job, self.mailbox, key)
