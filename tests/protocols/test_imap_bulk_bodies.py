"""The bulk-FETCH body path (``ImapConnection.command(bodies=...)``) on a real socket.

A scripted server sends a ``UID FETCH`` reply in pieces of different sizes, mixing the shape the
fast path takes (``* n FETCH (UID u BODY[] {size}``) with shapes it must leave to the general
parser: more items after the body, a body over ``BODY_LIMIT``, another item order. Every body
must arrive exactly once, byte for byte, whichever path took it.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import BinaryIO

import pytest

from mailgate.errors import TransportError
from mailgate.protocols._mailstream import open_stream
from mailgate.protocols.base import Security
from mailgate.protocols.imap.bulk import literal_target
from mailgate.protocols.imap.connection import BODY_LIMIT, ImapConnection
from mailgate.protocols.imap.parser import fetch_body_head


def body(uid: int, size: int) -> bytes:
    head = f"Subject: message {uid}\r\n\r\n".encode()
    return head + bytes((uid + i) % 251 for i in range(size - len(head)))


def fast(seq: int, uid: int, data: bytes) -> bytes:
    return b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (seq, uid, len(data)) + data + b")\r\n"


REPLY_BODIES = {
    1: body(1, 300),
    2: body(2, 20_000),
    3: body(3, 5_000),  # FLAGS after the body: general path
    4: body(4, BODY_LIMIT + 10),  # too big to take whole: general path, streamed
    5: body(5, 64),  # FLAGS between UID and BODY: general path
    6: body(6, 1),
    7: body(7, 70_000),
}


def reply(tag: bytes) -> bytes:
    parts = [
        fast(1, 1, REPLY_BODIES[1]),
        fast(2, 2, REPLY_BODIES[2]),
        b"* 3 FETCH (UID 3 BODY[] {%d}\r\n" % len(REPLY_BODIES[3])
        + REPLY_BODIES[3]
        + b" FLAGS (\\Seen))\r\n",
        fast(4, 4, REPLY_BODIES[4]),
        b"* 5 FETCH (UID 5 FLAGS () BODY[] {%d}\r\n" % len(REPLY_BODIES[5])
        + REPLY_BODIES[5]
        + b")\r\n",
        b"* 9 EXISTS\r\n",  # an unsolicited response in between
        fast(6, 6, REPLY_BODIES[6]),
        fast(7, 7, REPLY_BODIES[7]),
        tag + b" OK Fetch completed.\r\n",
    ]
    return b"".join(parts)


async def scripted(piece: int, cut_short: bool = False) -> tuple[ImapConnection, asyncio.Server]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        data = reply(line.split(b" ", 1)[0])
        if cut_short:
            data = data[: len(data) // 3]
        for start in range(0, len(data), piece):
            writer.write(data[start : start + piece])
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = await open_stream("127.0.0.1", port, Security.PLAIN, None, timeout=5)
    return ImapConnection(stream), server


async def fetch(piece: int, cut_short: bool = False) -> tuple[dict[int, bytes], dict[int, bytes]]:
    taken: dict[int, bytes] = {}
    streamed: dict[int, io.BytesIO] = {}

    def take(uid: int, data: bytes) -> None:
        assert uid not in taken
        taken[uid] = data

    def literal_sink(chunks: Sequence[bytes], size: int) -> BinaryIO | None:
        uid, section = literal_target(chunks)
        assert uid is not None and section == "" and uid not in streamed
        streamed[uid] = io.BytesIO()
        return streamed[uid]

    connection, server = await scripted(piece, cut_short)
    try:
        await connection.command(
            "UID FETCH", b"1:7", b"(UID BODY.PEEK[])", sink=literal_sink, bodies=take
        )
    finally:
        await connection.stream.close()
        server.close()
    return taken, {uid: dest.getvalue() for uid, dest in streamed.items()}


@pytest.mark.parametrize("piece", [7, 997, 16_384, 10_000_000])
def test_every_body_once_whichever_path(piece: int) -> None:
    taken, streamed = asyncio.run(fetch(piece))
    assert set(taken) & set(streamed) == set()
    assert {**taken, **streamed} == REPLY_BODIES
    # The shapes the fast path is for took it; the others went the general way.
    assert {3, 4, 5} <= set(streamed)
    assert {1, 2, 7} <= set(taken)


def test_server_hanging_up_mid_body_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        asyncio.run(fetch(4096, cut_short=True))


def test_fetch_body_head() -> None:
    assert fetch_body_head(b"* 12 FETCH (UID 345 BODY[] {678}\r\nxx") == (345, 678, 34)
    assert fetch_body_head(bytearray(b"* 1 FETCH (UID 2 BODY[] {0}\r\n)\r\n")) == (2, 0, 29)
    for other in (
        b"* 12 FETCH (UID 345 BODY[] {678}",  # the line is not complete yet
        b"* 12 FETCH (UID 345 FLAGS () BODY[] {678}\r\n",
        b"* 12 FETCH (BODY[] {678} UID 345)\r\n",
        b"* 12 FETCH (UID 345 BODY[1] {678}\r\n",
        b"* 12 FETCH (UID 345 BODY[] {678+}\r\n",
        b"M0001 OK done\r\n",
        b"",
    ):
        assert fetch_body_head(other) is None, other
