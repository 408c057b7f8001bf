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
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import TracebackType
from typing import BinaryIO, ClassVar

from mailgate.errors import AuthenticationError, AuthorizationError, ProtocolError, TransportError

__all__ = [
    "DEFAULT_CONNECTIONS",
    "MAX_CONNECTIONS",
    "Folder",
    "MailAuthenticationError",
    "Mailbox",
    "MailboxAccessError",
    "MessageRef",
    "MessageSummary",
    "Operation",
    "Protocol",
    "SearchCriteria",
    "Security",
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
class MessageRef:
    """Where one message is: its folder and the protocol's id for it."""

    folder: str
    id: str
    change_key: str | None = None


@dataclass(frozen=True)
class SearchCriteria:
    """Filters shared by ``get``/``import``; None means "any". Dates are aware datetimes."""

    unread: bool | None = None
    from_address: str | None = None
    subject_contains: str | None = None
    since: datetime | None = None
    before: datetime | None = None
    has_attachments: bool | None = None


@dataclass(frozen=True)
class MessageSummary:
    """Headers and facts about one message, without its body."""

    ref: MessageRef
    subject: str
    from_address: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: datetime | None = None
    message_id: str | None = None
    size: int | None = None
    seen: bool = False
    flagged: bool = False
    has_attachments: bool | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Mailbox(abc.ABC):
    """One mailbox over one protocol. Use as ``async with adapter as mailbox:``.

    Adapters implement what their protocol can and inherit :class:`UnsupportedOperation` for the
    rest; ``operations`` lists what an adapter supports, so callers can check before starting.
    """

    protocol: ClassVar[Protocol]
    operations: ClassVar[frozenset[Operation]]

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
