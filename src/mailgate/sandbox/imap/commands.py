"""IMAP commands on folders and messages for the sandbox server (a base of ``ImapSession``).

Folder display paths ("Inbox/Invoices", "Deleted Items") become IMAP names with "/" as the
hierarchy delimiter, "INBOX" for the Inbox, and modified UTF-7 for non-ASCII characters.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.store import StoredFolder, StoredMailbox, StoredMessage
from mailgate.sandbox.imap.codec import (
    Atom,
    ImapSyntaxError,
    as_text,
    decode_mutf7,
    encode_mutf7,
    format_internal_date,
    parse_internal_date,
    quote,
    render_list,
    sequence_set_text,
)
from mailgate.sandbox.imap.mime import body_section, bodystructure, envelope, scan
from mailgate.sandbox.imap.query import Candidate, FetchItem, compile_search, parse_fetch_items

__all__ = ["FLAGS", "SPECIAL_USE", "ImapFolderCommands", "imap_name", "requires", "store_path"]

SPECIAL_USE = {
    "deleteditems": "\\Trash",
    "sentitems": "\\Sent",
    "drafts": "\\Drafts",
    "junkemail": "\\Junk",
    "archive": "\\Archive",
}
FLAGS = "\\Seen \\Answered \\Flagged \\Deleted \\Draft $MDNSent"

_F = TypeVar("_F", bound=Callable[..., Awaitable[None]])


def requires(state: str) -> Callable[[_F], _F]:
    """Mark a handler as needing ``auth`` (authenticated) or ``selected`` state."""

    def mark(func: _F) -> _F:
        func.needs = state  # type: ignore[attr-defined]
        return func

    return mark


def imap_name(path: str) -> str:
    """The IMAP name of a display path (mailbox-name, modified UTF-7)."""
    first, sep, rest = path.partition("/")
    if first.lower() == "inbox":
        first = "INBOX"
    return encode_mutf7(first + sep + rest)


def store_path(name: str) -> str:
    """The display path of an IMAP mailbox name; ImapSyntaxError if malformed."""
    return decode_mutf7(name).strip("/")


def _pattern(reference: str, pattern: str) -> re.Pattern[str]:
    text = reference + pattern
    regex = "".join(".*" if c == "*" else "[^/]*" if c == "%" else re.escape(c) for c in text)
    return re.compile(f"^{regex}$", re.IGNORECASE if text.upper().startswith("INBOX") else 0)


def _flag_list(token: object) -> list[str]:
    items = token if isinstance(token, list) else [token]
    return [as_text(t) for t in items]


class ImapFolderCommands:
    """Folder and message commands; I/O helpers are provided by ``ImapSession``."""

    mail: SandboxMail
    mailbox: StoredMailbox | None
    selected: StoredFolder | None
    readonly: bool
    uids: list[int]
    state: str
    tag: str

    async def send(self, *parts: bytes) -> None:  # pragma: no cover - ImapSession's
        raise NotImplementedError

    async def untagged(self, text: bytes) -> None:  # pragma: no cover - ImapSession's
        raise NotImplementedError

    async def reply(self, status: str, text: str) -> None:  # pragma: no cover
        raise NotImplementedError

    async def sync(self) -> None:  # pragma: no cover - ImapSession's
        raise NotImplementedError

    def current(self) -> list[StoredMessage]:  # pragma: no cover - ImapSession's
        raise NotImplementedError

    def resolve(
        self, text: str, by_uid: bool
    ) -> list[tuple[int, StoredMessage]]:  # pragma: no cover
        raise NotImplementedError

    @property
    def box(self) -> StoredMailbox:
        """The authenticated mailbox."""
        assert self.mailbox is not None
        return self.mailbox

    def folder_by_name(self, token: object) -> StoredFolder:
        """The folder a mailbox-name argument names; KeyError if none."""
        return self.box.folder(store_path(as_text(token)))

    # -- folders ---------------------------------------------------------------------------

    async def _list(self, verb: str, args: list[object]) -> None:
        reference, pattern = as_text(args[0]), as_text(args[1])
        if not pattern:
            await self.untagged(f'{verb} (\\Noselect) "/" ""'.encode())
            await self.reply("OK", f"{verb} completed.")
            return
        matcher = _pattern(reference, pattern)
        folders = self.box.folders()
        parents = {f.parent_id for f in folders}
        for folder in folders:
            name = imap_name(folder.name)
            if not matcher.match(name):
                continue
            attributes = ["\\HasChildren" if folder.folder_id in parents else "\\HasNoChildren"]
            if folder.well_known in SPECIAL_USE:
                attributes.append(SPECIAL_USE[folder.well_known])
            await self.untagged(f'{verb} ({" ".join(attributes)}) "/" '.encode() + quote(name))
        await self.reply("OK", f"{verb} completed.")

    @requires("auth")
    async def imap_LIST(self, args: list[object]) -> None:
        await self._list("LIST", args)

    @requires("auth")
    async def imap_LSUB(self, args: list[object]) -> None:
        await self._list("LSUB", args)

    @requires("auth")
    async def imap_SUBSCRIBE(self, args: list[object]) -> None:
        self.folder_by_name(args[0])
        await self.reply("OK", "SUBSCRIBE completed.")

    @requires("auth")
    async def imap_UNSUBSCRIBE(self, args: list[object]) -> None:
        await self.reply("OK", "UNSUBSCRIBE completed.")

    @requires("auth")
    async def imap_CREATE(self, args: list[object]) -> None:
        path = store_path(as_text(args[0]))
        if not path:
            raise ImapSyntaxError("empty mailbox name")
        parent: str | None = None
        for segment in path.split("/"):
            here = f"{parent}/{segment}" if parent else segment
            try:
                self.box.folder(here)
            except KeyError:
                self.box.create_folder(segment, parent)
            else:
                if here == path:
                    await self.reply("NO", "Mailbox already exists.")
                    return
            parent = self.box.folder(here).name
        await self.reply("OK", "CREATE completed.")

    @requires("auth")
    async def imap_STATUS(self, args: list[object]) -> None:
        folder = self.folder_by_name(args[0])
        messages = self.box.messages(folder.folder_id)
        values = {
            "MESSAGES": len(messages),
            "RECENT": 0,
            "UIDNEXT": folder.uidnext,
            "UIDVALIDITY": folder.uidvalidity,
            "UNSEEN": sum(1 for m in messages if not m.is_read),
        }
        wanted = [as_text(t).upper() for t in args[1]] if isinstance(args[1], list) else []
        body = " ".join(f"{k} {values[k]}" for k in wanted if k in values)
        await self.untagged(b"STATUS " + quote(imap_name(folder.name)) + f" ({body})".encode())
        await self.reply("OK", "STATUS completed.")

    async def _select(self, args: list[object], readonly: bool) -> None:
        self.state, self.selected = "authenticated", None
        folder = self.folder_by_name(args[0])
        self.selected, self.readonly, self.state = folder, readonly, "selected"
        messages = self.current()
        self.uids = [m.uid for m in messages]
        await self.untagged(f"{len(messages)} EXISTS".encode())
        await self.untagged(b"0 RECENT")
        await self.untagged(f"FLAGS ({FLAGS})".encode())
        await self.untagged(f"OK [PERMANENTFLAGS ({FLAGS})] Permanent flags".encode())
        unseen = next((i + 1 for i, m in enumerate(messages) if not m.is_read), None)
        if unseen:
            await self.untagged(f"OK [UNSEEN {unseen}] Is the first unseen message".encode())
        await self.untagged(f"OK [UIDVALIDITY {folder.uidvalidity}] UIDVALIDITY value".encode())
        await self.untagged(
            f"OK [UIDNEXT {folder.uidnext}] The next unique identifier value".encode()
        )
        mode = "READ-ONLY" if readonly else "READ-WRITE"
        await self.reply("OK", f"[{mode}] {'EXAMINE' if readonly else 'SELECT'} completed.")

    @requires("auth")
    async def imap_SELECT(self, args: list[object]) -> None:
        await self._select(args, False)

    @requires("auth")
    async def imap_EXAMINE(self, args: list[object]) -> None:
        await self._select(args, True)

    @requires("auth")
    async def imap_APPEND(self, args: list[object]) -> None:
        folder = self.folder_by_name(args[0])
        flags: list[str] = []
        date = None
        for extra in args[1:-1]:
            if isinstance(extra, list):
                flags = _flag_list(extra)
            else:
                date = parse_internal_date(as_text(extra))
        raw = args[-1]
        if not isinstance(raw, bytes) or len(args) < 2:
            raise ImapSyntaxError("APPEND needs a message literal")
        message = self.box.append(folder.folder_id, raw, flags, date)
        await self.sync()
        await self.reply("OK", f"[APPENDUID {folder.uidvalidity} {message.uid}] APPEND completed.")

    @requires("selected")
    async def imap_CHECK(self, args: list[object]) -> None:
        await self.reply("OK", "CHECK completed.")

    @requires("selected")
    async def imap_CLOSE(self, args: list[object]) -> None:
        if not self.readonly:
            for message in self.current():
                if "\\Deleted" in message.flags:
                    self.box.remove(message.item_id)
        self.state, self.selected, self.uids = "authenticated", None, []
        await self.reply("OK", "CLOSE completed.")

    @requires("selected")
    async def imap_UNSELECT(self, args: list[object]) -> None:
        self.state, self.selected, self.uids = "authenticated", None, []
        await self.reply("OK", "UNSELECT completed.")

    # -- messages --------------------------------------------------------------------------

    async def _search(self, args: list[object], by_uid: bool) -> None:
        if args and isinstance(args[0], Atom) and args[0].upper() == "CHARSET":
            args = args[2:]
        predicate = compile_search(args)
        messages = {m.uid: m for m in self.current()}
        largest = self.uids[-1] if self.uids else 0
        hits = []
        for seq, uid in enumerate(self.uids, 1):
            if uid in messages and predicate(
                Candidate(messages[uid], seq, len(self.uids), largest)
            ):
                hits.append(uid if by_uid else seq)
        await self.untagged(" ".join(["SEARCH", *map(str, hits)]).encode())
        await self.reply("OK", "SEARCH completed.")

    @requires("selected")
    async def imap_SEARCH(self, args: list[object]) -> None:
        await self._search(args, False)

    @requires("selected")
    async def imap_UID_SEARCH(self, args: list[object]) -> None:
        await self._search(args, True)

    async def _fetch_one(
        self, seq: int, message: StoredMessage, items: list[FetchItem], by_uid: bool
    ) -> None:
        marks_seen = any(
            (i.section is not None and not i.peek) or i.name in ("RFC822", "RFC822.TEXT")
            for i in items
        )
        names = [i.name for i in items]
        if by_uid and "UID" not in names:
            items = [FetchItem("UID"), *items]
        if marks_seen and not self.readonly and not message.is_read:
            self.box.set_flags(message.item_id, add=["\\Seen"])
            if "FLAGS" not in names:
                items = [*items, FetchItem("FLAGS")]
        raw = message.raw
        root: Any = None
        pieces: list[list[bytes]] = []
        for item in items:
            if item.name in ("ENVELOPE", "BODYSTRUCTURE", "BODY") and root is None:
                root = scan(raw)
            if item.name == "UID":
                pieces.append([b"UID %d" % message.uid])
            elif item.name == "FLAGS":
                pieces.append([b"FLAGS " + render_list(f.encode() for f in sorted(message.flags))])
            elif item.name == "RFC822.SIZE":
                pieces.append([b"RFC822.SIZE %d" % message.size])
            elif item.name == "INTERNALDATE":
                pieces.append(
                    [b"INTERNALDATE " + quote(format_internal_date(message.internal_date))]
                )
            elif item.name == "ENVELOPE":
                pieces.append([b"ENVELOPE " + envelope(root)])
            elif item.name == "BODYSTRUCTURE":
                pieces.append([b"BODYSTRUCTURE " + bodystructure(raw, root)])
            elif item.name == "BODY" and item.section is None:
                pieces.append([b"BODY " + bodystructure(raw, root, extended=False)])
            else:
                pieces.append(self._section(raw, item))
        out: list[bytes] = [b"* %d FETCH (" % seq]
        for index, piece in enumerate(pieces):
            if index:
                out.append(b" ")
            out.extend(piece)
        out.append(b")\r\n")
        await self.send(*out)

    def _section(self, raw: bytes, item: FetchItem) -> list[bytes]:
        if item.section is None:
            section = {"RFC822": "", "RFC822.HEADER": "HEADER", "RFC822.TEXT": "TEXT"}[item.name]
            data = body_section(raw, section, [])
            return [f"{item.name} {{{len(data)}}}\r\n".encode(), data]
        data = body_section(raw, item.section, list(item.fields))
        if item.partial is not None:
            start, length = item.partial
            data = data[start : None if length is None else start + length]
        return [f"{item.response_name()} {{{len(data)}}}\r\n".encode(), data]

    async def _fetch(self, args: list[object], by_uid: bool) -> None:
        targets = self.resolve(as_text(args[0]), by_uid)
        items = parse_fetch_items(args[1] if len(args) == 2 else list(args[1:]))
        for seq, message in targets:
            await self._fetch_one(seq, message, items, by_uid)
        await self.reply("OK", "FETCH completed.")

    @requires("selected")
    async def imap_FETCH(self, args: list[object]) -> None:
        await self._fetch(args, False)

    @requires("selected")
    async def imap_UID_FETCH(self, args: list[object]) -> None:
        await self._fetch(args, True)

    async def _store(self, args: list[object], by_uid: bool) -> None:
        if self.readonly:
            await self.reply("NO", "Mailbox is read-only.")
            return
        targets = self.resolve(as_text(args[0]), by_uid)
        action = as_text(args[1]).upper()
        flags = set(_flag_list(args[2] if len(args) == 3 else list(args[2:])))
        if action.removesuffix(".SILENT") not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise ImapSyntaxError(f"bad STORE item {action}")
        for seq, message in targets:
            if action.startswith("+"):
                updated = self.box.set_flags(message.item_id, add=flags)
            elif action.startswith("-"):
                updated = self.box.set_flags(message.item_id, remove=flags)
            else:
                updated = self.box.set_flags(
                    message.item_id, add=flags, remove=message.flags - flags
                )
            if not action.endswith(".SILENT"):
                uid = f"UID {updated.uid} " if by_uid else ""
                listed = " ".join(sorted(updated.flags))
                await self.untagged(f"{seq} FETCH ({uid}FLAGS ({listed}))".encode())
        await self.reply("OK", "STORE completed.")

    @requires("selected")
    async def imap_STORE(self, args: list[object]) -> None:
        await self._store(args, False)

    @requires("selected")
    async def imap_UID_STORE(self, args: list[object]) -> None:
        await self._store(args, True)

    async def _transfer(self, args: list[object], by_uid: bool, move: bool) -> None:
        targets = self.resolve(as_text(args[0]), by_uid)
        dest = self.folder_by_name(args[1])
        if not targets:
            await self.reply("OK", "No messages.")
            return
        source, copied = [], []
        for _, message in targets:
            operation = self.box.move if move else self.box.copy
            new = operation(message.item_id, dest.folder_id)
            source.append(message.uid)
            copied.append(new.uid)
        code = f"COPYUID {dest.uidvalidity} {sequence_set_text(source)} {sequence_set_text(copied)}"
        if move:
            await self.untagged(f"OK [{code}] Move completed.".encode())
            await self.sync()
            await self.reply("OK", "MOVE completed.")
        else:
            await self.sync()
            await self.reply("OK", f"[{code}] COPY completed.")

    @requires("selected")
    async def imap_COPY(self, args: list[object]) -> None:
        await self._transfer(args, False, False)

    @requires("selected")
    async def imap_UID_COPY(self, args: list[object]) -> None:
        await self._transfer(args, True, False)

    @requires("selected")
    async def imap_MOVE(self, args: list[object]) -> None:
        await self._transfer(args, False, True)

    @requires("selected")
    async def imap_UID_MOVE(self, args: list[object]) -> None:
        await self._transfer(args, True, True)

    async def _expunge(self, wanted: set[int] | None) -> None:
        if self.readonly:
            await self.reply("NO", "Mailbox is read-only.")
            return
        for message in self.current():
            if "\\Deleted" in message.flags and (wanted is None or message.uid in wanted):
                self.box.remove(message.item_id)
        await self.sync()
        await self.reply("OK", "EXPUNGE completed.")

    @requires("selected")
    async def imap_EXPUNGE(self, args: list[object]) -> None:
        await self._expunge(None)

    @requires("selected")
    async def imap_UID_EXPUNGE(self, args: list[object]) -> None:
        await self._expunge({m.uid for _, m in self.resolve(as_text(args[0]), True)})
