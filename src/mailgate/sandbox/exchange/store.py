"""The sandbox's mail: one in-memory store shared by IMAP, POP3, SMTP, Graph and EWS.

The servers run in different threads and event loops, so every public method takes one
store-wide :class:`threading.RLock`; subscriber callbacks run after the lock is released, in
the thread that made the change (servers hand them to their own loop with
``call_soon_threadsafe``). Raw messages are immutable ``bytes`` and a copy shares them, so a
50 MB message costs 50 MB however often it is copied.

Identifiers behave like Exchange's: ``item_id`` is opaque, URL-safe and new after every move;
``change_key`` changes on every update; each folder has an IMAP UIDVALIDITY and UIDNEXT.
``changes(folder, since)`` is the delta-sync primitive: ``since=0`` lists everything present as
"created", a returned token replays only what happened after it.

Notes for the Graph/EWS engineer (where the contract left a choice):

* ``SandboxMail`` lives in :mod:`mailgate.sandbox.exchange.access`
  (``from mailgate.sandbox.exchange.access import SandboxMail``): ``.store``, ``.directory``,
  ``.tenant(tid)``, ``.mailbox_config(addr)``, ``.exchange(addr)`` (the tenant's
  ``ExchangeSettings``: Graph limits, ``ews_enabled``).
* ``server.py`` calls ``create_app(platform, mail)``; ``mail`` is None only in tests that build
  the identity app alone.
* Messages also offer ``.from_name`` and ``.headers`` (the parsed header block).
* ``create_folder`` raises ValueError if the path exists; ``folder()`` maps "INBOX/x" to
  "Inbox/x" as IMAP clients write it.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property
from typing import Literal

__all__ = [
    "WELL_KNOWN",
    "Change",
    "MailStore",
    "StoredFolder",
    "StoredMailbox",
    "StoredMessage",
]

WELL_KNOWN = {
    "inbox": "Inbox",
    "deleteditems": "Deleted Items",
    "sentitems": "Sent Items",
    "drafts": "Drafts",
    "junkemail": "Junk Email",
    "archive": "Archive",
}

_ATTACHMENT = re.compile(rb"(?im)^content-disposition:[ \t]*attachment")


def _new_id(prefix: str) -> str:
    # Looks like Exchange ids (base64url); only opacity and URL-safety matter to clients.
    return prefix + secrets.token_urlsafe(24)


def _header_block(raw: bytes) -> bytes:
    # Parse only the header so a 50 MB body is never decoded to a str.
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end >= 0:
            return raw[: end + len(sep)]
    return raw


def _addresses(values: list[str]) -> tuple[str, ...]:
    return tuple(addr for _, addr in getaddresses(values) if addr)


@dataclass(eq=False)
class StoredMessage:
    """One message in one folder. Header properties are parsed lazily from ``raw``."""

    uid: int
    item_id: str
    raw: bytes
    flags: set[str]
    internal_date: datetime
    change_key: str

    @cached_property
    def headers(self) -> Message:
        """The parsed header (stdlib ``email``, default policy)."""
        return BytesHeaderParser(policy=default_policy).parsebytes(_header_block(self.raw))

    def _header(self, name: str) -> str:
        value = self.headers.get(name)
        return str(value) if value is not None else ""

    @property
    def subject(self) -> str:
        """The decoded Subject."""
        return self._header("Subject")

    @property
    def from_address(self) -> str:
        """The first address of From, or ``""``."""
        found = _addresses(self.headers.get_all("From", []))
        return found[0] if found else ""

    @property
    def from_name(self) -> str:
        """The display name of From, or ``""``."""
        value = self.headers.get("From")
        addresses: tuple[Address, ...] = getattr(value, "addresses", ())
        return addresses[0].display_name if addresses else ""

    @property
    def to(self) -> tuple[str, ...]:
        """Addresses in To."""
        return _addresses([str(v) for v in self.headers.get_all("To", [])])

    @property
    def cc(self) -> tuple[str, ...]:
        """Addresses in Cc."""
        return _addresses([str(v) for v in self.headers.get_all("Cc", [])])

    @property
    def date(self) -> datetime | None:
        """The Date header as an aware datetime, or None when missing or malformed."""
        text = self._header("Date")
        try:
            parsed = parsedate_to_datetime(text) if text else None
        except (TypeError, ValueError):
            return None
        if parsed is not None and parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed

    @property
    def message_id(self) -> str:
        """The Message-ID header as written (with angle brackets)."""
        return self._header("Message-ID").strip()

    @property
    def has_attachments(self) -> bool:
        """True when some MIME part is marked ``Content-Disposition: attachment``."""
        return _ATTACHMENT.search(self.raw) is not None

    @property
    def size(self) -> int:
        """Size of the raw message in bytes."""
        return len(self.raw)

    @property
    def is_read(self) -> bool:
        """True when ``\\Seen`` is set."""
        return "\\Seen" in self.flags


@dataclass
class StoredFolder:
    """A folder; ``name`` is the display path with ``/`` between levels."""

    name: str
    folder_id: str
    well_known: str | None
    uidvalidity: int
    uidnext: int
    parent_id: str | None


@dataclass(frozen=True)
class Change:
    """One entry of a folder's change log."""

    kind: Literal["created", "updated", "deleted"]
    item_id: str


@dataclass
class _FolderState:
    folder: StoredFolder
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    log: list[tuple[int, Change]] = field(default_factory=list)
    listeners: list[Callable[[], None]] = field(default_factory=list)


class StoredMailbox:
    """One mailbox: its folders, messages, change logs and subscribers."""

    def __init__(self, address: str, display_name: str, lock: threading.RLock) -> None:
        self.address = address
        self.display_name = display_name or address
        self._lock = lock
        self._folders: dict[str, _FolderState] = {}
        self._items: dict[str, tuple[str, int]] = {}
        # Starts at 1 so a token from a full sync is never 0 ("everything").
        self._sequence = 1
        self._uidvalidity = int(datetime.now(UTC).timestamp()) & 0x3FFFFFFF
        for key, name in WELL_KNOWN.items():
            self._add_folder(name, None, key)

    # -- folders -----------------------------------------------------------------------------

    def _add_folder(self, name: str, parent_id: str | None, well_known: str | None) -> StoredFolder:
        self._uidvalidity += 1
        folder = StoredFolder(name, _new_id("AAMkF"), well_known, self._uidvalidity, 1, parent_id)
        self._folders[folder.folder_id] = _FolderState(folder)
        return folder

    def folders(self) -> list[StoredFolder]:
        """All folders: the well-known ones, then the others in creation order."""
        with self._lock:
            return [s.folder for s in self._folders.values()]

    def _state(self, key: str) -> _FolderState:
        if key in self._folders:
            return self._folders[key]
        wanted = key.strip().lower()
        for state in self._folders.values():
            if state.folder.well_known == wanted:
                return state
        if wanted == "inbox" or wanted.startswith("inbox/"):
            wanted = "inbox" + wanted[5:]
        for state in self._folders.values():
            if state.folder.name.lower() == wanted:
                return state
        raise KeyError(f"no folder {key!r} in {self.address}")

    def folder(self, key: str) -> StoredFolder:
        """A folder by id, well-known name, or display path (case-insensitive); KeyError."""
        with self._lock:
            return self._state(key).folder

    def create_folder(self, name: str, parent: str | None = None) -> StoredFolder:
        """Create ``name`` under ``parent`` (a folder key); ValueError if it exists."""
        with self._lock:
            parent_folder = self._state(parent).folder if parent else None
            path = f"{parent_folder.name}/{name}" if parent_folder else name
            try:
                self._state(path)
            except KeyError:
                pass
            else:
                raise ValueError(f"folder {path!r} already exists")
            return self._add_folder(path, parent_folder.folder_id if parent_folder else None, None)

    # -- messages ----------------------------------------------------------------------------

    def messages(self, folder: str) -> list[StoredMessage]:
        """Messages of a folder, ordered by UID."""
        with self._lock:
            state = self._state(folder)
            return [state.messages[uid] for uid in sorted(state.messages)]

    def get(self, item_id: str) -> tuple[StoredFolder, StoredMessage]:
        """The folder and message of an item id; KeyError if unknown (or moved away)."""
        with self._lock:
            folder_id, uid = self._items[item_id]
            state = self._folders[folder_id]
            return state.folder, state.messages[uid]

    def _log(
        self,
        state: _FolderState,
        kind: Literal["created", "updated", "deleted"],
        item_id: str,
        notify: list[Callable[[], None]],
    ) -> None:
        self._sequence += 1
        state.log.append((self._sequence, Change(kind, item_id)))
        notify.extend(state.listeners)

    def _insert(
        self,
        state: _FolderState,
        raw: bytes,
        flags: Iterable[str],
        internal_date: datetime | None,
        notify: list[Callable[[], None]],
    ) -> StoredMessage:
        folder = state.folder
        message = StoredMessage(
            uid=folder.uidnext,
            item_id=_new_id("AAMkA"),
            raw=raw,
            flags=set(flags),
            internal_date=(internal_date or datetime.now(UTC)).astimezone(UTC),
            change_key=_new_id("CQ")[:16],
        )
        folder.uidnext += 1
        state.messages[message.uid] = message
        self._items[message.item_id] = (folder.folder_id, message.uid)
        self._log(state, "created", message.item_id, notify)
        return message

    def _take(self, item_id: str, notify: list[Callable[[], None]]) -> StoredMessage:
        folder_id, uid = self._items.pop(item_id)
        state = self._folders[folder_id]
        message = state.messages.pop(uid)
        self._log(state, "deleted", item_id, notify)
        return message

    @staticmethod
    def _run(notify: list[Callable[[], None]]) -> None:
        for callback in notify:
            callback()

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Iterable[str] = (),
        internal_date: datetime | None = None,
    ) -> StoredMessage:
        """Store ``raw`` in ``folder`` with a new UID and item id."""
        notify: list[Callable[[], None]] = []
        with self._lock:
            message = self._insert(self._state(folder), bytes(raw), flags, internal_date, notify)
        self._run(notify)
        return message

    def move(self, item_id: str, dest_folder: str) -> StoredMessage:
        """Move to ``dest_folder``: new UID there and a new item id, as Exchange does."""
        notify: list[Callable[[], None]] = []
        with self._lock:
            dest = self._state(dest_folder)
            old = self._take(item_id, notify)
            message = self._insert(dest, old.raw, old.flags, old.internal_date, notify)
        self._run(notify)
        return message

    def copy(self, item_id: str, dest_folder: str) -> StoredMessage:
        """Copy to ``dest_folder``; the copy shares the raw bytes."""
        notify: list[Callable[[], None]] = []
        with self._lock:
            _, old = self.get(item_id)
            message = self._insert(
                self._state(dest_folder), old.raw, old.flags, old.internal_date, notify
            )
        self._run(notify)
        return message

    def set_flags(
        self, item_id: str, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> StoredMessage:
        """Add and remove IMAP flags; a real change gets a new change key and a log entry."""
        notify: list[Callable[[], None]] = []
        with self._lock:
            folder, message = self.get(item_id)
            # A new set rather than in-place edits: readers in other threads may iterate it.
            flags = (message.flags | set(add)) - set(remove)
            if flags != message.flags:
                message.flags = flags
                message.change_key = _new_id("CQ")[:16]
                self._log(self._folders[folder.folder_id], "updated", item_id, notify)
        self._run(notify)
        return message

    def soft_delete(self, item_id: str) -> StoredMessage:
        """Move to Deleted Items (Graph ``DELETE``, EWS ``MoveToDeletedItems``)."""
        return self.move(item_id, "deleteditems")

    def remove(self, item_id: str) -> None:
        """Delete permanently."""
        notify: list[Callable[[], None]] = []
        with self._lock:
            self._take(item_id, notify)
        self._run(notify)

    # -- sync --------------------------------------------------------------------------------

    def changes(self, folder: str, since: int) -> tuple[list[Change], int]:
        """What changed in ``folder`` after sync token ``since`` (0: everything, as created).

        Per item only the net effect is reported: created-then-updated is "created",
        created-then-deleted is nothing. Returns the changes and the next sync token.
        """
        with self._lock:
            state = self._state(folder)
            if since <= 0:
                present = [
                    Change("created", state.messages[u].item_id) for u in sorted(state.messages)
                ]
                return present, self._sequence
            net: dict[str, Change] = {}
            for sequence, change in state.log:
                if sequence <= since:
                    continue
                before = net.get(change.item_id)
                if before is None:
                    net[change.item_id] = change
                elif change.kind == "deleted":
                    if before.kind == "created":
                        del net[change.item_id]
                    else:
                        net[change.item_id] = change
                # created/updated after created/updated: the first kind stands.
            return list(net.values()), self._sequence

    def subscribe(self, folder: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` (from the changing thread) after any change in ``folder``."""
        with self._lock:
            state = self._state(folder)
            state.listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in state.listeners:
                    state.listeners.remove(callback)

        return unsubscribe


class MailStore:
    """All mailboxes of the sandbox, keyed by address (case-insensitive)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._mailboxes: dict[str, StoredMailbox] = {}

    def mailbox(self, address: str) -> StoredMailbox:
        """The mailbox with this address; KeyError if none."""
        with self.lock:
            return self._mailboxes[address.strip().lower()]

    def mailboxes(self) -> list[StoredMailbox]:
        """Every mailbox, in the order they were added."""
        with self.lock:
            return list(self._mailboxes.values())

    def add_mailbox(self, address: str, display_name: str = "") -> StoredMailbox:
        """Create a mailbox with the well-known folders (or return the existing one)."""
        with self.lock:
            key = address.strip().lower()
            if key not in self._mailboxes:
                self._mailboxes[key] = StoredMailbox(address.strip(), display_name, self.lock)
            return self._mailboxes[key]

    def deliver(self, raw: bytes, recipients: Iterable[str]) -> list[str]:
        """Put ``raw`` into the Inbox of each known recipient; returns who got it.

        Unknown recipients are "external" and silently skipped; the sender's Sent Items copy
        is the sender's job.
        """
        data = bytes(raw)
        delivered: list[str] = []
        for address in dict.fromkeys(r.strip().lower() for r in recipients):
            try:
                mailbox = self.mailbox(address)
            except KeyError:
                continue
            mailbox.append("inbox", data)
            delivered.append(mailbox.address)
        return delivered
