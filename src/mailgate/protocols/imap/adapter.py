"""IMAP adapter: :class:`ImapMailbox`, XOAUTH2/OAUTHBEARER to Exchange Online (or Dovecot).

Library choice: a compact asyncio client of our own (:mod:`imap_connection` over the pure
:mod:`imap_parser`, :mod:`imap_commands`, :mod:`imap_results`). The requirements decided it:

- *streaming*: ``fetch_mime`` must copy a 50 MB literal to a file in chunks. imaplib,
  imapclient and aioimaplib all read a literal into one ``bytes`` first (imapclient in a worker
  thread would also hold it twice while parsing);
- *speed*: the import benchmark (bench/imap_import.py) fetches thousands of messages per
  ``UID FETCH`` with each literal streamed to its own file, which no library exposes;
- *Exchange's replies*: both SASL failure styles and ``BAD User is authenticated but not
  connected`` map to typed errors in one place (:func:`imap_results.command_failure`).

Message ids are ``"<uidvalidity>:<uid>"``; if a folder's UIDVALIDITY changed since the id was
made, :class:`UidValidityChangedError` is raised rather than touching another message.
Bulk fetching for ``mailgate get --save`` lives in :mod:`mailgate.protocols.imap.bulk`; an
import reaches it through :meth:`ImapMailbox.bulk_fetch` (:class:`ImapBulkFetch`), the
``Mailbox`` interface's own way to fetch many messages. The ids and sink protocols shared with
``bulk`` and ``parallel`` are in :mod:`mailgate.protocols.imap.fetching` (re-exported here).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, BinaryIO, ClassVar

from mailgate.errors import ConfigurationError, ProtocolError
from mailgate.protocols._mailstream import open_stream
from mailgate.protocols._socket_mailbox import SocketMailbox
from mailgate.protocols.base import (
    BulkFetch,
    Folder,
    MessageRef,
    MessageSink,
    MessageSummary,
    Operation,
    Protocol,
    SearchCriteria,
    Security,
    SizeCheck,
)
from mailgate.protocols.imap.commands import (
    Literal,
    Part,
    astring,
    mailbox_argument,
    search_plan,
    sequence_set,
)
from mailgate.protocols.imap.connection import CommandResult, ImapConnection
from mailgate.protocols.imap.fetching import BATCH, UidValidityChangedError, parse_message_id
from mailgate.protocols.imap.parser import Value, as_int, fetch_items, response_code
from mailgate.protocols.imap.results import (
    HEADER_FIELDS,
    attachment_parts,
    copyuid_map,
    folder_from_list,
    parse_internaldate,
    parse_list,
    parse_status,
    summary_from_fetch,
)
from mailgate.protocols.sasl import oauthbearer_initial_response, xoauth2_initial_response

if TYPE_CHECKING:
    from mailgate.protocols.imap.parallel import FetchPool

__all__ = ["ImapBulkFetch", "ImapMailbox", "UidValidityChangedError", "parse_message_id"]

_BODY_LITERAL = re.compile(rb"BODY\[\] \{\d+\+?\}\r?\n$")
_TRASH_NAMES = ("deleted items", "trash", "deleted messages")


def _group(refs: Sequence[MessageRef]) -> dict[str, list[tuple[int, int]]]:
    groups: dict[str, list[tuple[int, int]]] = {}
    for ref in refs:
        groups.setdefault(ref.folder, []).append(parse_message_id(ref))
    return groups


class ImapMailbox(SocketMailbox):
    """One mailbox over IMAP with an OAuth bearer token; ``address`` is the SASL user."""

    protocol: ClassVar[Protocol] = Protocol.IMAP
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation) - {Operation.SEND}
    idle_renew_seconds: ClassVar[float] = 25 * 60  # servers drop IDLE after 30 min

    def _init_state(self) -> None:
        self._conn: ImapConnection | None = None
        self._delimiter: str | None = None
        self._selected: str | None = None
        self._uidvalidity = 0
        self._uidnext = 0

    # -- connection --------------------------------------------------------------------------

    @property
    def connection(self) -> ImapConnection:
        if self._conn is None:
            raise ProtocolError("The IMAP mailbox is not connected.", "use `async with`.")
        return self._conn

    async def connect(self) -> None:
        stream = await open_stream(
            self.host, self.port, self.security, self.ssl_context, self.timeout
        )
        conn = ImapConnection(stream)
        self._conn = conn
        try:
            await conn.greeting()
            if self.security is Security.STARTTLS:
                await self._starttls(conn)
            if not conn.capabilities:
                await conn.command("CAPABILITY")
            token = await self._token_source()
            if self.mechanism == "OAUTHBEARER":
                initial = oauthbearer_initial_response(self.address, token)
            else:
                initial = xoauth2_initial_response(self.address, token)
            await conn.authenticate(self.mechanism, initial)
            # Exchange accepts the token and refuses the *next* command when the mailbox is not
            # reachable ("User is authenticated but not connected"), so ask something now.
            await conn.command("CAPABILITY")
        except BaseException:
            await self.close()
            raise

    async def _starttls(self, conn: ImapConnection) -> None:
        if not conn.capabilities:
            await conn.command("CAPABILITY")
        if not conn.has("STARTTLS"):
            raise ConfigurationError(
                f"The IMAP server {self.host}:{self.port} does not offer STARTTLS.",
                "use security 'tls' on port 993.",
            )
        await conn.command("STARTTLS")
        await conn.stream.start_tls(self.ssl_context or ssl.create_default_context())
        conn.set_capabilities(())

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        self._selected = None
        if conn is not None:
            await conn.close()

    async def command(self, name: str, *args: Part, **kwargs: object) -> CommandResult:
        """Run a raw command (for extensions and tests); errors are mapped as usual."""
        return await self.connection.command(name, *args, **kwargs)  # type: ignore[arg-type]

    # -- folders -----------------------------------------------------------------------------

    async def delimiter(self) -> str | None:
        """The hierarchy delimiter (``/`` on Exchange, ``.`` or ``/`` on Dovecot)."""
        if self._delimiter is None:
            result = await self.connection.command("LIST", b'""', b'""')
            for data in result.of("LIST"):
                self._delimiter = parse_list(data.values).delimiter
        return self._delimiter

    async def mailbox_argument(self, folder: str) -> bytes:
        return mailbox_argument(folder, await self.delimiter())

    async def select(self, folder: str, *, force: bool = False) -> int:
        """SELECT ``folder`` (unless selected); returns its UIDVALIDITY."""
        if self._selected == folder and not force:
            return self._uidvalidity
        self._selected = None
        result = await self.connection.command("SELECT", await self.mailbox_argument(folder))
        for status in [*result.untagged, result.status]:
            name, args = response_code(status.code)
            if name == "UIDVALIDITY" and args:
                self._uidvalidity = int(args[0])
            elif name == "UIDNEXT" and args:
                self._uidnext = int(args[0])
        self._selected = folder
        return self._uidvalidity

    async def select_uids(self, folder: str, ids: Sequence[tuple[int, int]]) -> list[int]:
        """Select ``folder`` and check each id's UIDVALIDITY; returns the UIDs."""
        validity = await self.select(folder)
        for expected, _ in ids:
            if expected != validity:
                raise UidValidityChangedError(
                    f"Folder {folder!r} was renumbered by the server (UIDVALIDITY {expected} "
                    f"is now {validity}); the message ids are no longer valid.",
                    "search the folder again to get current ids.",
                )
        return [uid for _, uid in ids]

    async def uidvalidity(self, folder: str) -> int:
        """The UIDVALIDITY of ``folder`` (selecting it)."""
        return await self.select(folder)

    async def list_folders(self) -> list[Folder]:
        """Every selectable folder with its message and unread counts: from LIST-STATUS where
        the server has it (one round trip), else one STATUS per folder (Exchange Online has no
        LIST-STATUS; a folder that refuses STATUS keeps unknown counts)."""
        folders = await self._listed()
        counted: list[Folder] = []
        for folder in folders:
            if folder.total is None:
                result = await self.connection.command(
                    "STATUS", astring(folder.id), b"(MESSAGES UNSEEN)", check=False
                )
                for data in result.of("STATUS"):
                    _, values = parse_status(data.values)
                    folder = replace(
                        folder, total=values.get("MESSAGES"), unread=values.get("UNSEEN")
                    )
            counted.append(folder)
        return counted

    async def _listed(self) -> list[Folder]:
        """The selectable folders, with counts only where LIST-STATUS gave them for free (what
        finding a folder by name or use needs)."""
        conn = self.connection
        args: list[Part] = [b'""', b'"*"']
        if conn.has("LIST-EXTENDED") or conn.has("LIST-STATUS"):
            returns = [b"SPECIAL-USE"] if conn.has("SPECIAL-USE") else []
            if conn.has("LIST-STATUS"):
                returns.append(b"STATUS (MESSAGES UNSEEN)")
            if returns:
                args.append(b"RETURN (" + b" ".join(returns) + b")")
        result = await conn.command("LIST", *args)
        counts: dict[str, tuple[int, int]] = {}
        for data in result.of("STATUS"):
            name, values = parse_status(data.values)
            counts[name] = (values.get("MESSAGES", 0), values.get("UNSEEN", 0))
        entries = [parse_list(d.values) for d in result.of("LIST")]
        if entries and self._delimiter is None:
            self._delimiter = entries[0].delimiter
        return [
            folder_from_list(e, counts)
            for e in entries
            if "\\NOSELECT" not in {a.upper() for a in e.attributes}
        ]

    async def create_folder(self, name: str) -> None:
        wanted = name.strip("/")
        if any(f.name == wanted for f in await self._listed()):
            return
        await self.connection.command("CREATE", await self.mailbox_argument(wanted))

    async def trash_folder(self) -> str:
        """The \\Trash SPECIAL-USE folder, else one named like Exchange's "Deleted Items"."""
        folders = await self._listed()
        for folder in folders:
            if folder.special_use == "\\Trash":
                return folder.name
        for folder in folders:
            if folder.name.lower() in _TRASH_NAMES:
                return folder.name
        raise ProtocolError(
            "The mailbox has no Deleted Items (\\Trash) folder.",
            "delete permanently instead, or create the folder.",
        )

    # -- reading -----------------------------------------------------------------------------

    async def search(
        self, folder: str, criteria: SearchCriteria, limit: int | None = None
    ) -> list[MessageRef]:
        plan = search_plan(criteria)
        validity = await self.select(folder)
        result = await self.connection.command("UID SEARCH", *plan.arguments)
        uids = sorted(as_int(v) for d in result.of("SEARCH") for v in d.values)
        if plan.needs_fetch and uids:
            kept: list[int] = []
            for start in range(0, len(uids), BATCH):
                batch = uids[start : start + BATCH]
                fetched = await self.fetch_items(batch, b"(UID INTERNALDATE BODYSTRUCTURE)")
                for uid in batch:
                    items = fetched.get(uid)
                    if items is None:
                        continue
                    when = parse_internaldate(items.get("INTERNALDATE"))
                    if plan.exact_since and when < plan.exact_since:
                        continue
                    if plan.exact_before and when >= plan.exact_before:
                        continue
                    if plan.has_attachments is not None and plan.has_attachments != bool(
                        attachment_parts(items.get("BODYSTRUCTURE"))
                    ):
                        continue
                    kept.append(uid)
            uids = kept
        if limit is not None:
            uids = uids[:limit]
        return [MessageRef(folder, f"{validity}:{uid}") for uid in uids]

    async def uids_larger(self, folder: str, size: int) -> set[int]:
        """The UIDs in ``folder`` of messages over ``size`` bytes (one ``UID SEARCH LARGER``)."""
        await self.select(folder)
        result = await self.connection.command("UID SEARCH", b"LARGER %d" % size)
        return {as_int(v) for d in result.of("SEARCH") for v in d.values}

    async def fetch_items(self, uids: Sequence[int], items: bytes) -> dict[int, dict[str, Value]]:
        """``UID FETCH`` on the selected folder; UID → items (values as parsed)."""
        result = await self.connection.command("UID FETCH", sequence_set(uids), items)
        out: dict[int, dict[str, Value]] = {}
        for data in result.of("FETCH"):
            parsed = fetch_items(data.values)
            if "UID" in parsed:
                out[as_int(parsed["UID"])] = parsed
        return out

    async def bulk_fetch(
        self, messages: int, *, connections: int = 1, batch: int = BATCH, heavy: bool = True
    ) -> BulkFetch:
        """The bulk path (:class:`ImapBulkFetch`), with helper connections when ``messages`` are
        enough to give each some batches (:func:`~mailgate.protocols.imap.parallel.helpers_for`).
        """
        # The bulk path (and pickle, for helpers) loads only when a bulk fetch starts: most
        # commands never need it, and every IMAP command pays for what this module imports.
        from mailgate.protocols.imap.parallel import FetchPool, helpers_for

        helpers = helpers_for(messages, connections, batch, heavy=heavy)
        return ImapBulkFetch(self, await FetchPool.start(self, helpers))

    async def fetch_headers(self, refs: Sequence[MessageRef]) -> list[MessageSummary]:
        fields = b" ".join(f.encode() for f in HEADER_FIELDS)
        request = (
            b"(UID FLAGS RFC822.SIZE BODYSTRUCTURE BODY.PEEK[HEADER.FIELDS (" + fields + b")])"
        )
        found: dict[MessageRef, MessageSummary] = {}
        for folder, ids in _group(refs).items():
            uids = await self.select_uids(folder, ids)
            for start in range(0, len(uids), BATCH):
                fetched = await self.fetch_items(uids[start : start + BATCH], request)
                for uid, items in fetched.items():
                    ref = MessageRef(folder, f"{self._uidvalidity}:{uid}")
                    found[ref] = summary_from_fetch(ref, items)
        return [found[ref] for ref in refs if ref in found]

    async def fetch_mime(self, ref: MessageRef, dest: BinaryIO) -> int:
        (uid,) = await self.select_uids(ref.folder, [parse_message_id(ref)])
        written = 0

        def sink(chunks: Sequence[bytes], size: int) -> BinaryIO | None:
            nonlocal written
            if _BODY_LITERAL.search(chunks[-1]):
                written += size
                return dest
            return None

        await self.connection.command(
            "UID FETCH", str(uid).encode(), b"(UID BODY.PEEK[])", sink=sink
        )
        if not written and not await self._exists(uid):
            raise ProtocolError(
                f"Message {ref.id} is no longer in {ref.folder!r} (moved or deleted).",
                "search the folder again.",
            )
        return written

    async def _exists(self, uid: int) -> bool:
        result = await self.connection.command("UID SEARCH", b"UID", str(uid).encode())
        return any(as_int(v) == uid for d in result.of("SEARCH") for v in d.values)

    # -- changing ----------------------------------------------------------------------------

    async def set_flags(
        self, refs: Sequence[MessageRef], *, seen: bool | None = None, flagged: bool | None = None
    ) -> None:
        add = [n for n, v in (("\\Seen", seen), ("\\Flagged", flagged)) if v is True]
        remove = [n for n, v in (("\\Seen", seen), ("\\Flagged", flagged)) if v is False]
        for folder, ids in _group(refs).items():
            uids = sequence_set(await self.select_uids(folder, ids))
            for sign, names in ((b"+", add), (b"-", remove)):
                if names:
                    flags = b"(" + " ".join(names).encode() + b")"
                    await self.connection.command("UID STORE", uids, sign + b"FLAGS.SILENT", flags)

    def _require_uidplus(self, what: str) -> None:
        if not self.connection.has("UIDPLUS"):
            raise ProtocolError(
                f"The IMAP server lacks UIDPLUS, so mailgate cannot {what} only the chosen "
                "messages (a plain EXPUNGE would also remove others marked deleted).",
                "use EWS or Graph for this mailbox.",
            )

    async def move(self, refs: Sequence[MessageRef], folder: str) -> list[MessageRef | None]:
        moved: dict[MessageRef, MessageRef] = {}
        dest = await self.mailbox_argument(folder)
        for source, ids in _group(refs).items():
            uids = await self.select_uids(source, ids)
            uid_set = sequence_set(uids)
            if self.connection.has("MOVE"):
                result = await self.connection.command("UID MOVE", uid_set, dest)
            else:
                self._require_uidplus("move")
                result = await self.connection.command("UID COPY", uid_set, dest)
                await self.connection.command(
                    "UID STORE", uid_set, b"+FLAGS.SILENT", b"(\\Deleted)"
                )
                await self.connection.command("UID EXPUNGE", uid_set)
            for status in [*result.untagged, result.status]:
                name, args = response_code(status.code)
                if name == "COPYUID":
                    for old, new in copyuid_map(status.code).items():
                        ref = MessageRef(source, f"{self._uidvalidity}:{old}")
                        moved[ref] = MessageRef(folder, f"{args[0]}:{new}")
        return [moved.get(ref) for ref in refs]

    async def delete(self, refs: Sequence[MessageRef]) -> None:
        trash = await self.trash_folder()
        await self.move([r for r in refs if r.folder != trash], trash)

    async def delete_permanently(self, refs: Sequence[MessageRef]) -> None:
        for folder, ids in _group(refs).items():
            self._require_uidplus("delete")
            uid_set = sequence_set(await self.select_uids(folder, ids))
            await self.connection.command("UID STORE", uid_set, b"+FLAGS.SILENT", b"(\\Deleted)")
            await self.connection.command("UID EXPUNGE", uid_set)

    async def append(self, folder: str, mime: bytes, *, seen: bool = False) -> MessageRef | None:
        flags = b"(\\Seen)" if seen else b"()"
        result = await self.connection.command(
            "APPEND", await self.mailbox_argument(folder), flags, Literal(mime)
        )
        name, args = response_code(result.status.code)
        if name == "APPENDUID" and len(args) == 2:
            return MessageRef(folder, f"{args[0]}:{args[1]}")
        return None

    # -- watching ----------------------------------------------------------------------------

    def watch(self, folder: str, *, interval: float = 30.0) -> AsyncIterator[list[MessageRef]]:
        """New messages via IDLE (renewed every 25 min), else NOOP polling every ``interval``.

        Use a mailbox object only for watching: IDLE occupies the connection.
        """
        return self._watch(folder, interval)

    async def _watch(self, folder: str, interval: float) -> AsyncIterator[list[MessageRef]]:
        validity = await self.select(folder, force=True)
        next_uid = self._uidnext
        loop = asyncio.get_running_loop()
        while True:
            if self.connection.has("IDLE"):
                tag = await self.connection.start_idle()
                deadline = loop.time() + self.idle_renew_seconds
                while (remaining := deadline - loop.time()) > 0:
                    try:
                        response = await asyncio.wait_for(
                            self.connection.read_response(timeout=None), remaining
                        )
                    except TimeoutError:
                        break
                    if getattr(response, "keyword", "") == "EXISTS":
                        break
                await self.connection.finish_idle(tag)
            else:
                await asyncio.sleep(interval)
                await self.connection.command("NOOP")
            result = await self.connection.command("UID SEARCH", b"UID", f"{next_uid}:*".encode())
            uids = sorted(
                u for d in result.of("SEARCH") for v in d.values if (u := as_int(v)) >= next_uid
            )
            if uids:
                next_uid = uids[-1] + 1
                yield [MessageRef(folder, f"{validity}:{uid}") for uid in uids]


class ImapBulkFetch(BulkFetch):
    """IMAP's bulk path behind :meth:`ImapMailbox.bulk_fetch`.

    Sizes: one ``UID SEARCH LARGER`` per folder and limit for the whole fetch (a message's size
    never changes), then ``RFC822.SIZE`` of just the messages of a batch it found; every other
    size is known to be within the limit. Messages: one ``UID FETCH`` per batch streamed into
    the sink (:func:`~mailgate.protocols.imap.bulk.fetch_many`), shared with the helper
    connections of ``pool``, which closing the fetch stops.
    """

    def __init__(self, mailbox: ImapMailbox, pool: FetchPool) -> None:
        super().__init__(mailbox)
        self.imap = mailbox
        self.pool = pool
        self._larger: dict[tuple[str, int], set[int]] = {}

    @property
    def connections(self) -> int:
        return 1 + self.pool.size

    async def sizes_over(self, refs: Sequence[MessageRef], limit: int) -> SizeCheck:
        over: dict[str, int] = {}
        for folder, ids in _group(refs).items():
            larger = self._larger.get((folder, limit))
            if larger is None:
                larger = self._larger[folder, limit] = await self.imap.uids_larger(folder, limit)
            validity = await self.imap.select(folder)
            uids = [uid for _, uid in ids if uid in larger]
            if not uids:
                continue
            items = await self.imap.fetch_items(uids, b"(UID RFC822.SIZE)")
            for uid, values in items.items():
                if "RFC822.SIZE" in values and (size := int(str(values["RFC822.SIZE"]))) > limit:
                    over[f"{validity}:{uid}"] = size
        return SizeCheck(over=over)

    async def fetch(self, refs: Sequence[MessageRef], sink: MessageSink) -> list[MessageRef]:
        """The batch in one bulk fetch: nothing is refused (sizes were all checked first)."""
        from mailgate.protocols.imap.bulk import fetch_many

        await fetch_many(self.imap, refs, sink, attachments=False, batch=len(refs), pool=self.pool)
        return []

    async def close(self) -> None:
        await self.pool.close()
