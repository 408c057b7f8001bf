"""Bulk IMAP fetching: many messages (and their attachments) per ``UID FETCH``, streamed to files.

This is the fast path under ``mailgate get --save`` / import: instead of one round trip per
message, one ``UID FETCH <1,000 uids> (UID BODY.PEEK[])`` per batch, with every literal copied
in chunks straight into the file a :class:`MessageSink` opens for it.

Attachments, two ways:

- *client* (default when the MIME is fetched too): messages up to :data:`CLIENT_SPLIT_LIMIT`
  are also kept in memory while streaming and split on their MIME boundaries
  (:mod:`imap_attachments`); measured on Dovecot this costs a fraction of asking the server;
- *server* (``mime=False``, or larger messages): BODYSTRUCTURE first, then
  ``BODY.PEEK[n]`` for just the attachment sections, decoded on the fly (base64 in 4-byte
  groups; quoted-printable at the end of the part), so a 30 MB attachment never sits in memory.

A sink sees ``open`` → bytes written → ``complete`` for each file, or ``abort`` if the transfer
failed: write to a temporary name and rename in ``complete`` and no truncated file ever looks
finished (the sink protocols live in :mod:`~mailgate.protocols.imap.fetching` and are re-exported
here). A :class:`WholeMessageSink` (``mailgate get --save`` uses one) instead gets each
message of up to :data:`WHOLE_MESSAGE_LIMIT` in one piece once it has arrived, so it can name,
write and split it without another pass; bigger ones still stream. (Asking the server to decode
attachments, ``BINARY.PEEK[n]`` after BODYSTRUCTURE, was not tried for the bulk path: Dovecot
is already the slower side of a bulk fetch, and it would add a round trip per batch, a Python
parse of every BODYSTRUCTURE and the decoded bytes on the wire.)
"""

from __future__ import annotations

import asyncio
import binascii
import quopri
import re
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, cast

from mailgate.errors import ProtocolError
from mailgate.mail.attachments import CLIENT_SPLIT_LIMIT, decode_base64, split_attachments
from mailgate.protocols.base import MessageRef
from mailgate.protocols.imap.commands import sequence_set
from mailgate.protocols.imap.fetching import (
    BATCH,
    HelperPool,
    MessageSink,
    PortableSink,
    SelectingMailbox,
    WholeMessageSink,
    parse_message_id,
)
from mailgate.protocols.imap.results import AttachmentPart, attachment_parts

__all__ = [
    "CLIENT_SPLIT_LIMIT",
    "WHOLE_MESSAGE_LIMIT",
    "Base64Decoder",
    "MessageSink",
    "PortableSink",
    "WholeMessageSink",
    "fetch_many",
    "literal_target",
    "run_batch",
]

WHOLE_MESSAGE_LIMIT = CLIENT_SPLIT_LIMIT  # one message at a time is held, never more

_LITERAL_TARGET = re.compile(rb"(?:BODY\[([0-9.]*)\]|BINARY\[([0-9.]*)\]) \{\d+\+?\}\r?\n$")
_UID = re.compile(rb"[( ]UID (\d+)")
_WHOLE_BODIES = b"(UID BODY.PEEK[])"


def literal_target(chunks: Sequence[bytes]) -> tuple[int | None, str | None]:
    """For the literal announced at the end of ``chunks[-1]``: the message UID (if already
    seen in this response) and the section (``""`` for the whole message), else (None, None)."""
    match = _LITERAL_TARGET.search(chunks[-1])
    if not match:
        return None, None
    section = match.group(1) if match.group(1) is not None else match.group(2)
    uid = _UID.search(b"".join(chunks))
    return (int(uid.group(1)) if uid else None), section.decode("ascii")


class Base64Decoder:
    """A file-like writer that base64-decodes what is written, across chunk boundaries."""

    def __init__(self, dest: BinaryIO) -> None:
        self.dest = dest
        self.pending = b""
        self.written = 0

    def write(self, data: bytes) -> int:
        # Anything outside the base64 alphabet is noise a sender's encoder left; drop it, as
        # mail clients do, so one damaged attachment never stops a bulk save.
        clean = self.pending + data.translate(None, _NOT_BASE64)
        usable = len(clean) - len(clean) % 4
        self.pending = clean[usable:]
        if usable:
            self.written += self.dest.write(_lenient_b64(clean[:usable]))
        return len(data)

    def finish(self) -> None:
        if self.pending.strip(b"="):
            padded = self.pending + b"=" * (-len(self.pending) % 4)
            self.written += self.dest.write(_lenient_b64(padded))
        self.pending = b""


_NOT_BASE64 = bytes(
    b
    for b in range(256)
    if b not in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
)


def _lenient_b64(data: bytes) -> bytes:
    try:
        return decode_base64(data)
    except binascii.Error:  # misplaced padding or a dangling character: keep what decodes
        return binascii.a2b_base64(data.replace(b"=", b"")[: len(data) // 4 * 4 - 4] or b"")


class _Target:
    """One literal on its way into a sink's file; completes when all its bytes arrived.

    A message the sink can take whole (``whole``) is collected in memory instead and handed
    to :meth:`WholeMessageSink.save` at the end.
    """

    def __init__(
        self,
        sink: MessageSink,
        ref: MessageRef,
        part: AttachmentPart | None,
        size: int,
        split: bool = False,
        whole: bool = False,
    ) -> None:
        self.sink, self.ref, self.part, self.size = sink, ref, part, size
        self.split = split
        self.received = 0
        self.chunks: list[bytes] | None = None
        self.dest: BinaryIO | None = None
        self.copy: bytearray | None = None
        self.decoder: Base64Decoder | None = None
        self.buffer: bytearray | None = None
        self.done = False  # the sink has completed or aborted this file
        if whole and part is None and size <= WHOLE_MESSAGE_LIMIT:
            self.chunks = []
        else:
            self.dest = sink.open(ref, part)
            self.copy = bytearray() if split else None
            if part and part.encoding == "base64":
                self.decoder = Base64Decoder(self.dest)
            elif part and part.encoding == "quoted-printable":
                self.buffer = bytearray()
        if size == 0:
            self._finish()

    def write(self, data: bytes) -> int:
        self.received += len(data)
        if self.chunks is not None:
            self.chunks.append(data)
        elif self.decoder is not None:
            self.decoder.write(data)
        elif self.buffer is not None:
            self.buffer += data
        else:
            assert self.dest is not None
            self.dest.write(data)
            if self.copy is not None:
                self.copy += data
        if self.received >= self.size:
            self._finish()
        return len(data)

    def abort(self) -> None:
        """The transfer failed before this literal was complete: drop what it wrote."""
        if not self.done and self.dest is not None:
            self.sink.abort(self.ref, self.part, self.dest)
        self.done = True

    def _finish(self) -> None:
        if self.chunks is not None:
            chunks, self.chunks = self.chunks, None
            self.done = True
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            cast(WholeMessageSink, self.sink).save(self.ref, data, self.split)
            return
        assert self.dest is not None
        try:
            written = self.received
            if self.decoder is not None:
                self.decoder.finish()
                written = self.decoder.written
            elif self.buffer is not None:
                decoded = quopri.decodestring(bytes(self.buffer))
                written = self.dest.write(decoded)
            self.sink.complete(self.ref, self.part, self.dest, written)
        except BaseException:
            # A complete that fails (disk full on the last flush, the rename refused) must
            # still remove the temporary file; ``done`` then keeps the caller from aborting
            # it a second time.
            self.done = True
            self.sink.abort(self.ref, self.part, self.dest)
            raise
        self.done = True
        if self.copy is not None:
            copy, self.copy = bytes(self.copy), None
            for part, data in split_attachments(copy):
                dest = self.sink.open(self.ref, part)
                try:
                    dest.write(data)
                    self.sink.complete(self.ref, part, dest, len(data))
                except BaseException:
                    self.sink.abort(self.ref, part, dest)
                    raise


async def fetch_many(
    box: SelectingMailbox,
    refs: Sequence[MessageRef],
    sink: MessageSink,
    *,
    mime: bool = True,
    attachments: bool = False,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
    pool: HelperPool | None = None,
) -> int:
    """Fetch each message's MIME (``mime``) and/or decoded attachments into ``sink``.

    With a ``pool`` of helper connections (and a :class:`PortableSink`), batches are shared
    between this connection and the helpers, each taking the next one when done; batches are
    then cut smaller so that every connection gets some. Returns the number of messages
    handled. A failure mid-transfer aborts the open file and raises (TransportError for the
    network); files completed before stay completed.
    """
    groups: dict[str, list[tuple[int, int]]] = {}
    for ref in refs:
        groups.setdefault(ref.folder, []).append(parse_message_id(ref))
    helpers = pool.helpers if pool is not None and isinstance(sink, PortableSink) else []
    queue: deque[tuple[str, int, list[int]]] = deque()
    for folder, ids in groups.items():
        uids = await box.select_uids(folder, ids)
        validity = await box.select(folder)
        size = batch if not helpers else max(1, min(batch, -(-len(uids) // (len(helpers) + 1))))
        for start in range(0, len(uids), size):
            queue.append((folder, validity, uids[start : start + size]))
    handled = 0

    def done(count: int) -> None:
        nonlocal handled
        handled += count
        if progress:
            progress(handled)

    async def here() -> None:
        while queue:
            folder, _validity, chunk = queue.popleft()
            await run_batch(box, folder, chunk, sink, mime, attachments)
            done(len(chunk))

    if not helpers:
        await here()
        return handled
    assert pool is not None

    async def there(helper: Any) -> None:
        while queue:
            folder, validity, chunk = queue.popleft()
            if not await pool.run(
                helper, folder, validity, chunk, cast(PortableSink, sink), mime, attachments
            ):
                queue.appendleft((folder, validity, chunk))  # not started: someone else's
                return
            done(len(chunk))

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(here())
            for helper in list(helpers):
                group.create_task(there(helper))
    except BaseExceptionGroup as failed:
        # One failure cancels the rest; report the first real one, as one connection would.
        first = next(
            (e for e in failed.exceptions if not isinstance(e, asyncio.CancelledError)),
            failed.exceptions[0],
        )
        raise first from None
    await here()  # batches a helper gave back after this connection had run out of work
    return handled


async def run_batch(
    box: SelectingMailbox,
    folder: str,
    uids: list[int],
    sink: MessageSink,
    mime: bool,
    attachments: bool,
) -> None:
    validity = await box.select(folder)
    parts: dict[int, list[AttachmentPart]] = {}
    if attachments and mime:
        # The literal's size says which messages are small enough to split here; the others
        # are only streamed, and their attachments asked of the server afterwards. (No size
        # round trip first: it cost a sixth of a bulk save with attachments.)
        large = await _run_fetch(box, folder, validity, uids, _WHOLE_BODIES, {}, sink, split=True)
        if large:
            await run_batch(box, folder, large, sink, False, True)
        return
    if attachments:
        structures = await box.fetch_items(uids, b"(UID BODYSTRUCTURE)")
        parts = {
            uid: attachment_parts(items.get("BODYSTRUCTURE")) for uid, items in structures.items()
        }
    # One FETCH per distinct set of sections (usually one: messages share a shape).
    plans: dict[tuple[str, ...], list[int]] = {}
    for uid in uids:
        sections = tuple(p.section for p in parts.get(uid, []))
        if mime or sections:
            plans.setdefault(sections, []).append(uid)
    for sections, members in plans.items():
        items = [b"UID"] + ([b"BODY.PEEK[]"] if mime else [])
        items += [f"BODY.PEEK[{s}]".encode() for s in sections]
        await _run_fetch(
            box, folder, validity, members, b"(" + b" ".join(items) + b")", parts, sink
        )


async def _run_fetch(
    box: SelectingMailbox,
    folder: str,
    validity: int,
    uids: list[int],
    request: bytes,
    parts: dict[int, list[AttachmentPart]],
    sink: MessageSink,
    split: bool = False,
) -> list[int]:
    """Run one bulk FETCH into ``sink``; with ``split``, returns the UIDs of the messages too
    large (over :data:`CLIENT_SPLIT_LIMIT`) to split in memory."""
    current: list[_Target] = []
    large: list[int] = []
    whole = isinstance(sink, WholeMessageSink)

    def literal_sink(chunks: Sequence[bytes], size: int) -> BinaryIO | None:
        uid, section = literal_target(chunks)
        if section is None:
            return None
        if uid is None:
            raise ProtocolError(
                "The IMAP server sent a message body before its UID.",
                "report the server's name; fetch messages one by one meanwhile.",
            )
        part = None
        if section:
            part = next((p for p in parts.get(uid, []) if p.section == section), None)
            if part is None:
                return None
        ref = MessageRef(folder, f"{validity}:{uid}")
        split_here = split and part is None
        if split_here and size > CLIENT_SPLIT_LIMIT:
            split_here = False
            large.append(uid)
        target = _Target(sink, ref, part, size, split_here, whole)
        current.append(target)
        return target  # type: ignore[return-value]  # file-like: write() is all that is used

    bodies = None
    if whole and not parts and request == _WHOLE_BODIES:
        saver = cast(WholeMessageSink, sink)

        def bodies(uid: int, data: bytes) -> None:
            saver.save(MessageRef(folder, f"{validity}:{uid}"), data, split)

    try:
        await box.connection.command(
            "UID FETCH", sequence_set(uids), request, sink=literal_sink, bodies=bodies
        )
    except BaseException:
        for target in current:
            target.abort()
        raise
    return large
