"""What the bulk fetch and its helper connections share, so that neither imports the other's
side nor the adapter. No I/O of its own.

The modules depend on each other in one direction only::

    mailbox (the adapter, its bulk path) ──► parallel (helper processes) ──► bulk ──► fetching
         └───────────────────────────────────────────────────────────────────┴─────────►┘

Here: message ids (:func:`parse_message_id`, :class:`UidValidityChangedError`, :data:`BATCH`),
the sink protocols a bulk fetch writes into (:class:`MessageSink`, :class:`WholeMessageSink`,
:class:`PortableSink`), and what :mod:`~mailgate.protocols.imap.bulk` needs of a connected
mailbox (:class:`SelectingMailbox`) and of a pool of helper connections (:class:`HelperPool`),
and what :mod:`~mailgate.protocols.imap.parallel` needs to open the same connection again
(:class:`ReconnectableMailbox`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

from mailgate.errors import ConfigurationError, ProtocolError
from mailgate.protocols.base import MessageRef, Security

if TYPE_CHECKING:
    from mailgate.protocols.imap.connection import ImapConnection
    from mailgate.protocols.imap.parser import Value
    from mailgate.protocols.imap.results import AttachmentPart

__all__ = [
    "BATCH",
    "HelperPool",
    "MessageSink",
    "PortableSink",
    "ReconnectableMailbox",
    "SelectingMailbox",
    "UidValidityChangedError",
    "WholeMessageSink",
    "parse_message_id",
]

BATCH = 1000


class UidValidityChangedError(ProtocolError):
    """The folder was renumbered (UIDVALIDITY changed): old message ids are meaningless."""


def parse_message_id(ref: MessageRef) -> tuple[int, int]:
    """``"<uidvalidity>:<uid>"`` → numbers; ConfigurationError if the id is not IMAP's."""
    validity, _, uid = ref.id.partition(":")
    if not (validity.isdigit() and uid.isdigit()):
        raise ConfigurationError(
            f"{ref.id!r} is not an IMAP message id (expected <uidvalidity>:<uid>).",
            "use ids returned by an IMAP search of the same mailbox.",
        )
    return int(validity), int(uid)


class MessageSink(Protocol):
    """Where fetched messages (``part`` None) and attachments (``part`` given) go."""

    def open(self, ref: MessageRef, part: AttachmentPart | None) -> BinaryIO: ...

    def complete(
        self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO, size: int
    ) -> None: ...

    def abort(self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO) -> None: ...


@runtime_checkable
class WholeMessageSink(MessageSink, Protocol):
    """A sink that also takes a small message in one piece, once all its bytes have arrived.

    Messages up to :data:`~mailgate.protocols.imap.bulk.WHOLE_MESSAGE_LIMIT` go to :meth:`save`
    instead of ``open``/``complete``: the sink can name the file from headers already in memory
    and write it with one call, and split attachments from the same bytes (``attachments``).
    Larger messages still stream through ``open``/``complete``. ``save`` cleans up after itself
    when it fails: there is no ``abort`` for it.
    """

    def save(self, ref: MessageRef, data: bytes, attachments: bool) -> None: ...


@runtime_checkable
class PortableSink(Protocol):
    """A message sink that helper processes can rebuild and whose results travel back.

    ``recipe``: a picklable callable that builds an equivalent sink in another process;
    ``export`` (in the helper): what the sink completed, picklable; ``absorb`` (here): take
    what a helper's sink exported as if this sink had completed it.
    """

    def recipe(self) -> Callable[[], Any]: ...

    def export(self) -> Any: ...

    def absorb(self, exported: Any) -> None: ...


class SelectingMailbox(Protocol):
    """What a bulk fetch uses of a connected IMAP mailbox (:class:`ImapMailbox` is one)."""

    @property
    def connection(self) -> ImapConnection: ...

    async def select(self, folder: str, *, force: bool = False) -> int: ...

    async def select_uids(self, folder: str, ids: Sequence[tuple[int, int]]) -> list[int]: ...

    async def fetch_items(
        self, uids: Sequence[int], items: bytes
    ) -> dict[int, dict[str, Value]]: ...


class ReconnectableMailbox(SelectingMailbox, Protocol):
    """A mailbox whose connection a helper process can open again: its settings, its token,
    and its class (built in the helper with the same arguments)."""

    address: str
    host: str
    port: int
    security: Security
    mechanism: str
    timeout: float
    ca_files: tuple[str, ...] | None

    async def access_token(self) -> str: ...

    async def connect(self) -> None: ...

    async def close(self) -> None: ...


class HelperPool(Protocol):
    """Helper connections a bulk fetch hands whole batches to
    (:class:`~mailgate.protocols.imap.parallel.FetchPool` is one)."""

    @property
    def helpers(self) -> list[Any]: ...

    async def run(
        self,
        helper: Any,
        folder: str,
        validity: int,
        uids: list[int],
        sink: PortableSink,
        mime: bool,
        attachments: bool,
    ) -> bool: ...
