"""How an import recognises a message again, and what a recorded state means on restart. Pure.

A message is keyed by (job, mailbox, folder, uidvalidity, item id): IMAP's UIDVALIDITY and UID,
otherwise 0 and the protocol's id (POP3 UIDL, EWS ItemId, Graph id). The same key gives the
webhook ``Idempotency-Key`` and the short token in the ``.eml`` file name, so a redelivery after
a crash lands on the same name and carries the same key.

The state machine (``processed_messages.state``)::

    (none) ──► delivering ──► delivered ──► done
                   │  ▲            (post-processing applied)
                   ▼  │
                 failed           oversize (set aside, never fetched)

On restart: ``done`` and ``oversize`` are skipped; ``delivered`` is only post-processed;
``delivering`` and ``failed`` are delivered again, idempotently.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import NamedTuple

from mailgate.protocols.base import MessageRef, Protocol

__all__ = [
    "DELIVERED",
    "DELIVERING",
    "DONE",
    "FAILED",
    "OVERSIZE",
    "ItemKey",
    "Step",
    "SyncMode",
    "default_job_name",
    "idempotency_key",
    "item_key",
    "next_step",
]

DELIVERING = "delivering"
DELIVERED = "delivered"
DONE = "done"
OVERSIZE = "oversize"
FAILED = "failed"
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


class Step(StrEnum):
    """What a run does with a message, given its recorded state."""

    DELIVER = "deliver"  # never seen, or delivery did not finish / failed: deliver (again)
    POSTPROCESS = "postprocess"  # output durable, post-processing not recorded
    SKIP = "skip"  # done or set aside


def next_step(state: str | None) -> Step:
    """The step for a recorded ``state`` (None: not recorded)."""
    if state in (DONE, OVERSIZE):
        return Step.SKIP
    if state == DELIVERED:
        return Step.POSTPROCESS
    if state in (None, DELIVERING, FAILED):
        return Step.DELIVER
    raise ValueError(f"unknown import state {state!r}")
