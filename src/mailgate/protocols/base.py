"""The one ``Mailbox`` interface every protocol adapter implements, and its value types.

Protocol differences are hidden here and documented in docs/mailboxes.md:

- **Message identity.** :class:`MessageRef` carries the folder and an opaque ``id``: IMAP
  ``"<uidvalidity>:<uid>"``, POP3 the UIDL, EWS the ItemId (``change_key`` alongside), Graph the
  message id. After a move the id changes (IMAP new UID via COPYUID/MOVE, Graph and EWS new ids),
  so :meth:`Mailbox.move` returns the new refs where the server tells them.
- **Deleting.** :meth:`Mailbox.delete` moves to Deleted Items (IMAP MOVE to the SPECIAL-USE
  \\Trash folder, Graph DELETE, EWS ``MoveToDeletedItems``); :meth:`Mailbox.delete_permanently`
  removes for good (IMAP \\Deleted + UID EXPUNGE, Graph ``permanentDelete``, EWS ``HardDelete``,
  POP3 DELE). They are separate methods so no caller can permanently delete by accident.
- **What a protocol cannot do** raises :class:`UnsupportedOperation` naming the protocol and the
  alternative (POP3 has one folder and no flags; SMTP only sends).
- **Fetching many messages** (an import): :meth:`Mailbox.bulk_fetch` returns a :class:`BulkFetch`
  that checks sizes against a limit before anything is fetched and streams messages into a
  :class:`MessageSink`. The default here goes one message at a time over ``fetch_headers`` and
  ``fetch_mime``; IMAP replaces it with its bulk path (one ``SEARCH LARGER``, 1,000 messages
  per ``UID FETCH``, helper connections). Graph reports no size: its messages are cut at the
  limit while streaming instead.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import Any, BinaryIO, ClassVar
from typing import Protocol as TypingProtocol

from mailgate.errors import (
    AuthenticationError,
    AuthorizationError,
    MailgateError,
    ProtocolError,
    TransportError,
)
from mailgate.mail.summary import MessageRef, MessageSummary

__all__ = [
    "DEFAULT_CONNECTIONS",
    "MAX_CONNECTIONS",
    "BulkFetch",
    "Folder",
    "MailAuthenticationError",
    "Mailbox",
    "MailboxAccessError",
    "MessageRef",
    "MessageSink",
    "MessageSummary",
    "MessageTooLarge",
    "Operation",
    "Protocol",
    "SearchCriteria",
    "Security",
    "SizeCheck",
    "SubmissionUnknownError",
    "ThrottledError",
    "TokenSource",
    "UnsupportedOperation",
    "http_status",
]

# Bulk IMAP fetches (``get --save``, import) may share their batches among this many
# connections, the extra ones in helper processes (mailgate.protocols.imap.parallel).
DEFAULT_CONNECTIONS = 2
MAX_CONNECTIONS = 8  # servers limit concurrent connections per mailbox; stay well below


class Protocol(StrEnum):
    """The mail protocols mailgate speaks."""

    IMAP = "imap"
    POP3 = "pop"
    SMTP = "smtp"
    EWS = "ews"
    GRAPH = "graph"


class Security(StrEnum):
    """Transport security for IMAP/POP3/SMTP."""

    TLS = "tls"
    STARTTLS = "starttls"
    PLAIN = "plain"  # tests against local servers only; refused for non-loopback hosts


TokenSource = Callable[[], Awaitable[str]]
"""Returns a current bearer access token (cached; refreshed when near expiry)."""


class MailAuthenticationError(AuthenticationError):
    """The mail server refused the token (IMAP ``NO AUTHENTICATE failed``, SMTP ``535``...).

    ``reply`` is the server's final reply line (never contains the token); the connection test
    maps it to a cause and remedy.
    """

    def __init__(self, message: str, remedy: str = "", *, reply: str = "") -> None:
        super().__init__(message, remedy)
        self.reply = reply


class MailboxAccessError(AuthorizationError):
    """Authenticated, but the mailbox cannot be used (wrong ``user=``, no permission, policy).

    Examples: IMAP ``BAD User is authenticated but not connected``, EWS ``ErrorAccessDenied``,
    Graph 403. ``reply`` is the server's reply or error code.
    """

    def __init__(self, message: str, remedy: str = "", *, reply: str = "") -> None:
        super().__init__(message, remedy)
        self.reply = reply


class ThrottledError(TransportError):
    """The server asked us to slow down (SMTP 4xx, HTTP 429/503, EWS ErrorServerBusy)."""

    def __init__(self, message: str, remedy: str = "", *, retry_after: float = 0.0) -> None:
        super().__init__(message, remedy)
        self.retry_after = retry_after


class SubmissionUnknownError(TransportError):
    """The connection failed after the whole message was handed to the server, before its
    answer came: it may have been accepted (SMTP: the end of DATA was sent; HTTP: the request
    was sent and no response came, or a gateway answered 504). Sending again blindly could
    deliver it twice: look in Sent Items first."""


def http_status(exc: BaseException) -> int:
    """The HTTP status a mailgate error carries: Graph errors' ``status``, or the ``code``
    "HTTP n" of an EWS reply without a SOAP body; 0 if neither."""
    status = getattr(exc, "status", 0)
    if isinstance(status, int) and status:
        return status
    code = getattr(exc, "code", "")
    if isinstance(code, str) and code.startswith("HTTP ") and code[5:].isdigit():
        return int(code[5:])
    return 0


class MessageTooLarge(MailgateError):
    """Raised from a sink's write when a message of unknown size streams past the size limit;
    :meth:`BulkFetch.fetch` aborts that message and goes on with the next."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the message is larger than {limit} bytes.", "")
        self.limit = limit


class Operation(StrEnum):
    """Operations of :class:`Mailbox`, for capability checks and error messages."""

    LIST_FOLDERS = "list folders"
    CREATE_FOLDER = "create a folder"
    SEARCH = "search"
    FETCH = "fetch"
    FLAGS = "set flags"
    MOVE = "move"
    DELETE = "delete to Deleted Items"
    DELETE_PERMANENTLY = "permanently delete"
    APPEND = "append"
    SEND = "send"
    WATCH = "watch for new mail"


class UnsupportedOperation(ProtocolError):
    """The protocol cannot do this operation; the remedy names one that can."""

    exit_code = 2

    def __init__(self, protocol: Protocol, operation: Operation, alternative: str) -> None:
        super().__init__(f"{protocol.value.upper()} cannot {operation.value}.", alternative)
        self.protocol = protocol
        self.operation = operation


@dataclass(frozen=True)
class Folder:
    """A mail folder. ``name`` is what users type (decoded, ``/``-separated for IMAP paths)."""

    name: str
    id: str = ""
    special_use: str | None = None  # "\\Inbox", "\\Trash", "\\Sent", "\\Junk", "\\Drafts"
    total: int | None = None
    unread: int | None = None


@dataclass(frozen=True)
class SearchCriteria:
    """Filters shared by ``get``/``import``; None means "any". Dates are aware datetimes."""

    unread: bool | None = None
    from_address: str | None = None
    subject_contains: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    has_attachments: bool | None = None


class Mailbox(abc.ABC):
    """One mailbox over one protocol. Use as ``async with adapter as mailbox:``.

    Adapters implement what their protocol can and inherit :class:`UnsupportedOperation` for the
    rest; ``operations`` lists what an adapter supports, so callers can check before starting.
    """

    protocol: ClassVar[Protocol]
    operations: ClassVar[frozenset[Operation]]
    # False where a message's headers carry no size (Graph has no size property on a message):
    # a bulk fetch then cuts such messages at the limit while streaming instead of asking.
    reports_sizes: ClassVar[bool] = True

    async def __aenter__(self) -> Mailbox:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection and authenticate (XOAUTH2 / bearer token)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Log out and close; safe to call twice or after a failed connect."""

    def _unsupported(self, operation: Operation, alternative: str) -> UnsupportedOperation:
        return UnsupportedOperation(self.protocol, operation, alternative)

    async def list_folders(self) -> list[Folder]:
        raise self._unsupported(Operation.LIST_FOLDERS, "use IMAP, EWS or Graph.")

    async def create_folder(self, name: str) -> None:
        """Create the folder ``name`` (a ``/`` path whose parent exists); nothing if it exists.

        Imports create their ``--move-to`` and oversize folders this way.
        """
        raise self._unsupported(Operation.CREATE_FOLDER, "use IMAP, EWS or Graph.")

    async def search(
        self, folder: str, criteria: SearchCriteria, limit: int | None = None
    ) -> list[MessageRef]:
        """Refs of matching messages, oldest first."""
        raise self._unsupported(Operation.SEARCH, "use IMAP, POP3, EWS or Graph.")

    async def fetch_headers(self, refs: Sequence[MessageRef]) -> list[MessageSummary]:
        raise self._unsupported(Operation.FETCH, "use IMAP, POP3, EWS or Graph.")

    async def fetch_mime(self, ref: MessageRef, dest: BinaryIO) -> int:
        """Stream the full RFC 822 message into ``dest``; returns the number of bytes written."""
        raise self._unsupported(Operation.FETCH, "use IMAP, POP3, EWS or Graph.")

    async def set_flags(
        self, refs: Sequence[MessageRef], *, seen: bool | None = None, flagged: bool | None = None
    ) -> None:
        raise self._unsupported(Operation.FLAGS, "use IMAP, EWS or Graph.")

    async def move(self, refs: Sequence[MessageRef], folder: str) -> list[MessageRef | None]:
        """Move; returns each message's new ref (None where the server does not say)."""
        raise self._unsupported(Operation.MOVE, "use IMAP, EWS or Graph.")

    async def delete(self, refs: Sequence[MessageRef]) -> None:
        """Move to Deleted Items (recoverable)."""
        raise self._unsupported(
            Operation.DELETE, "use IMAP, EWS or Graph, or delete permanently explicitly."
        )

    async def delete_permanently(self, refs: Sequence[MessageRef]) -> None:
        raise self._unsupported(Operation.DELETE_PERMANENTLY, "use IMAP, POP3, EWS or Graph.")

    async def append(self, folder: str, mime: bytes, *, seen: bool = False) -> MessageRef | None:
        raise self._unsupported(Operation.APPEND, "use IMAP, EWS or Graph.")

    async def send(self, mime: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        """Submit a message (MIME bytes) to the given envelope recipients."""
        raise self._unsupported(Operation.SEND, "use SMTP, EWS or Graph.")

    def watch(self, folder: str, *, interval: float = 30.0) -> AsyncIterator[list[MessageRef]]:
        """Yield refs of new messages as they arrive (IDLE, or SyncFolderItems/delta polling)."""
        raise self._unsupported(Operation.WATCH, "use IMAP, EWS or Graph.")

    async def uidvalidity(self, folder: str) -> int:
        """The number the ids of ``folder`` are valid under (IMAP's UIDVALIDITY): when it
        changes, every id made before names nothing. 0 where ids depend on no such number."""
        return 0

    async def bulk_fetch(
        self, messages: int, *, connections: int = 1, batch: int = 1000, heavy: bool = True
    ) -> BulkFetch:
        """A fetch of about ``messages`` messages, asked for in batches of ``batch``; use as
        ``async with await mailbox.bulk_fetch(...) as fetch``.

        ``connections``: how many connections it may use (IMAP starts helper connections for
        large fetches); ``heavy``: each message is parsed after it is written (attachments
        split), not only written, so more CPU pays off. This default fetches one message at a
        time over this connection.
        """
        return BulkFetch(self)


class MessageSink(TypingProtocol):
    """Where fetched messages go: ``open`` → bytes written → ``complete`` for each file, or
    ``abort`` if the transfer failed. ``part`` is None for a whole message (IMAP's bulk path
    also passes attachment parts to sinks that ask for them)."""

    def open(self, ref: MessageRef, part: Any | None) -> BinaryIO: ...

    def complete(self, ref: MessageRef, part: Any | None, dest: BinaryIO, size: int) -> None: ...

    def abort(self, ref: MessageRef, part: Any | None, dest: BinaryIO) -> None: ...


@dataclass(frozen=True)
class SizeCheck:
    """What a mailbox knows of messages' sizes before fetching them, against a limit."""

    over: dict[str, int] = field(default_factory=dict)  # ref id → size, over the limit
    unknown: frozenset[str] = frozenset()  # ref ids of unknown size: cut at the limit instead


class BulkFetch:
    """Many messages of one mailbox checked and fetched, batch by batch, into sinks.

    This default goes one message at a time over the mailbox's per-message methods; adapters
    with a faster path return their own subclass from :meth:`Mailbox.bulk_fetch`. ``async with``
    ends it (IMAP stops its helper connections there).
    """

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    @property
    def connections(self) -> int:
        """The connections that fetched (helpers included)."""
        return 1

    async def sizes_over(self, refs: Sequence[MessageRef], limit: int) -> SizeCheck:
        """The sizes of the messages over ``limit`` bytes, and which sizes are not known.

        Default: the sizes ``fetch_headers`` reports (none where the mailbox does not report
        sizes: :attr:`Mailbox.reports_sizes`, which are not asked).
        """
        if not self.mailbox.reports_sizes:
            return SizeCheck(unknown=frozenset(ref.id for ref in refs))
        sizes = {s.ref.id: s.size for s in await self.mailbox.fetch_headers(refs)}
        return SizeCheck(
            over={key: size for key, size in sizes.items() if size is not None and size > limit},
            unknown=frozenset(ref.id for ref in refs if sizes.get(ref.id) is None),
        )

    async def fetch(self, refs: Sequence[MessageRef], sink: MessageSink) -> list[MessageRef]:
        """Stream each message into ``sink``; returns those it refused as too large
        (:class:`MessageTooLarge`, aborted). Any other failure aborts the open file and raises;
        files completed before stay completed.

        Default: ``fetch_mime`` per message, in order.
        """
        too_large: list[MessageRef] = []
        for ref in refs:
            handle = sink.open(ref, None)
            try:
                size = await self.mailbox.fetch_mime(ref, handle)
                sink.complete(ref, None, handle, size)
            except MessageTooLarge:
                sink.abort(ref, None, handle)
                too_large.append(ref)
            except BaseException:
                sink.abort(ref, None, handle)
                raise
        return too_large

    async def close(self) -> None:
        """Release what the fetch holds (nothing, by default)."""

    async def __aenter__(self) -> BulkFetch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
