"""What an import is asked to do (:class:`ImportOptions`) and what became of it
(:class:`ImportReport`, one :class:`MessageOutcome` per message worth naming).

Re-exported by :mod:`mailgate.jobs.importing.run`, where callers import them from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mailgate.jobs.importing.keys import SyncMode
from mailgate.protocols.base import SearchCriteria
from mailgate.secret import Secret

__all__ = ["ImportOptions", "ImportReport", "Kind", "MessageOutcome"]


class Kind(StrEnum):
    """How one message of a delivered batch counts in the report."""

    MISSING = "missing"  # left the folder before it was fetched: failed, named only there
    FAILED = "failed"
    DUPLICATE = "duplicate"  # same content as one delivered before
    REDELIVERED = "redelivered"  # already at the destination from an interrupted run
    DELIVERED = "delivered"


@dataclass
class ImportOptions:
    """What to import and where to; the policy comes separately, already checked."""

    folder: str
    job: str
    criteria: SearchCriteria = field(default_factory=SearchCriteria)
    limit: int | None = None
    to: Path | None = None
    webhook: str | None = None
    command: Sequence[str] | None = None
    attachments: bool = True
    batch_size: int = 1000
    # IMAP: helper processes share the fetching (the CLI's default is 2; a library that
    # spawns processes unasked would surprise)
    connections: int = 1
    webhook_secret: Secret | None = None
    sync: SyncMode = SyncMode.BATCH
    spool: Path | None = None  # where .eml files wait for a webhook/command without --to


@dataclass
class MessageOutcome:
    """What became of one message in this run."""

    folder: str
    id: str
    state: str
    subject: str | None = None
    message_id: str | None = None
    destination: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(repr=False)
class ImportReport:
    """Counts and the messages worth naming (failed, oversize, duplicates)."""

    job: str
    found: int = 0
    delivered: int = 0
    redelivered: int = 0  # found at the destination from a run that was interrupted
    postprocessed: int = 0
    skipped: int = 0  # done in an earlier run
    connections: int = 1  # IMAP connections that fetched (helpers included)
    duplicates: list[MessageOutcome] = field(default_factory=list)
    oversize: list[MessageOutcome] = field(default_factory=list)
    failed: list[MessageOutcome] = field(default_factory=list)
    messages: list[MessageOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # Short: asyncio formats the result of the finished main task when it restores the
        # SIGINT handler, and 10,000 outcomes took 60 ms to format.
        return (
            f"ImportReport(job={self.job!r}, found={self.found}, delivered={self.delivered}, "
            f"failed={len(self.failed)}, messages={len(self.messages)})"
        )

    def tally(self, kind: Kind, outcome: MessageOutcome, problems: Sequence[str] = ()) -> None:
        """Count one message of a delivered batch (``problems``: its attachments')."""
        if kind is Kind.MISSING:
            self.failed.append(outcome)
            return
        if kind is Kind.FAILED:
            self.failed.append(outcome)
        elif kind is Kind.DUPLICATE:
            self.duplicates.append(outcome)
        elif kind is Kind.REDELIVERED:
            self.redelivered += 1
        else:
            self.delivered += 1
        self.problems += problems
        self.messages.append(outcome)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "found": self.found,
            "delivered": self.delivered,
            "redelivered": self.redelivered,
            "postprocessed": self.postprocessed,
            "skipped": self.skipped,
            "connections": self.connections,
            "duplicates": [m.as_dict() for m in self.duplicates],
            "oversize": [m.as_dict() for m in self.oversize],
            "failed": [m.as_dict() for m in self.failed],
            "messages": [m.as_dict() for m in self.messages],
            "problems": self.problems,
        }
