"""What every destination of an import shares: the message on its way, and the interface."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailgate.jobs.importing.files import Fetched, SavedFiles
from mailgate.jobs.importing.keys import ItemKey

__all__ = ["Delivery", "Destination", "Landing"]


@dataclass
class Delivery:
    """One fetched message on its way to the destinations of a batch.

    ``path``: the ``.eml`` a webhook or command is given (a string: made per message);
    ``error``: why a destination refused it (the others then skip it); ``duplicate_of``: the
    destination of a message with the same content, delivered before (nothing is delivered).
    """

    item: Fetched
    key: ItemKey
    token: str  # the message's idempotency key
    saved: SavedFiles | None = None
    duplicate_of: str | None = None
    error: str | None = None
    path: str | None = None


class Destination(abc.ABC):
    """A place each batch is delivered to, after its messages were fetched and landed."""

    @abc.abstractmethod
    async def deliver(self, batch: Sequence[Delivery]) -> None:
        """Deliver each message of ``batch`` (none a duplicate, none failed yet); a message
        this destination refuses gets its ``error`` set, a failure of the whole raises."""

    async def finish(self, batch: Sequence[Delivery]) -> None:
        """After every destination had ``batch`` (failed messages included): tidy up."""
        return None

    async def aclose(self) -> None:
        """Release what the destination holds (connections) at the end of the run."""
        return None


class Landing(Destination):
    """Where each fetched message's file lands while the batch is fetched (a directory or the
    private spool): the file the other destinations are then given."""

    #: Whether the fetch keeps each message's bytes for this landing (attachments split).
    keep_copies: bool

    @abc.abstractmethod
    def prepare(self) -> Path:
        """The directory a batch's temporary files are written into (ready for them; the same
        file system as their final place, so landing is a rename)."""

    @abc.abstractmethod
    def land(self, delivery: Delivery) -> None:
        """Give ``delivery``'s temporary file its final place; sets ``path`` (and ``saved``)."""
