"""The stream layer on real asyncio streams: long lines, chunked copies, errors, loopback rule."""

from __future__ import annotations

import asyncio
import io
import ssl

import pytest

from mailgate.errors import ConfigurationError, TransportError
from mailgate.protocols._mailstream import (
    READER_LIMIT,
    MailStream,
    Receiver,
    check_security,
    is_loopback,
    open_stream,
)
from mailgate.protocols.base import Security


async def served(payload: bytes, close: bool = True) -> tuple[MailStream, asyncio.Server]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        if close:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = await open_stream("127.0.0.1", port, Security.PLAIN, None, timeout=5)
    return stream, server


def test_long_line_and_chunked_copy() -> None:
    long_line = b"* SEARCH " + b"123456 " * (3 * READER_LIMIT // 7) + b"\r\n"
    body = bytes(range(256)) * 4000

    async def go() -> tuple[bytes, bytes, int]:
        stream, server = await served(long_line + body)
        line = await stream.readline()
        dest = io.BytesIO()
        written = await stream.copy_exactly(len(body), dest)
        await stream.close()
        server.close()
        return line, dest.getvalue(), written

    line, copied, written = asyncio.run(go())
    assert line == long_line and copied == body and written == len(body)


def test_hang_up_and_timeout_are_transport_errors() -> None:
    async def hang_up() -> None:
        stream, server = await served(b"partial")
        try:
            await stream.readline()
        finally:
            server.close()

    with pytest.raises(TransportError, match="closed the connection"):
        asyncio.run(hang_up())

    async def silent() -> None:
        stream, server = await served(b"", close=False)
        stream.timeout = 0.2
        try:
            await stream.readline()
        finally:
            server.close()

    with pytest.raises(TransportError, match="did not answer in time"):
        asyncio.run(silent())


def test_plain_only_to_loopback() -> None:
    assert is_loopback("127.0.0.5") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("outlook.office365.com") and not is_loopback("10.0.0.1")
    check_security("127.0.0.1", Security.PLAIN)
    check_security("outlook.office365.com", Security.TLS)
    with pytest.raises(ConfigurationError):
        check_security("outlook.office365.com", Security.PLAIN)


def test_many_lines_and_literals_cut_from_one_read() -> None:
    # Bulk FETCH replies: many small lines and literals arrive in one socket read and are cut
    # from the stream's own buffer; the result must not depend on where the reads end.
    reply = b"".join(
        b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (i, i, 5 + i) + bytes([65 + i]) * (5 + i) + b")\r\n"
        for i in range(20)
    )

    async def go() -> list[bytes]:
        stream, server = await served(reply + b"M1 OK done\r\n")
        seen = []
        for i in range(20):
            seen.append(await stream.readline())
            dest = io.BytesIO()
            await stream.copy_exactly(5 + i, dest)
            seen.append(dest.getvalue())
            seen.append(await stream.readexactly(3))
        seen.append(await stream.readline())
        await stream.close()
        server.close()
        return seen

    seen = asyncio.run(go())
    assert b"".join(seen) == reply + b"M1 OK done\r\n"


def test_data_before_the_tls_handshake_is_refused() -> None:
    # STARTTLS injection: bytes that arrived in clear after the go-ahead must not be read as
    # if TLS had protected them.
    async def go() -> None:
        receiver = Receiver()
        sent = b"M1 OK Begin TLS\r\n* CAPABILITY injected\r\n"
        receiver.get_buffer(len(sent))[: len(sent)] = sent
        receiver.buffer_updated(len(sent))
        stream = MailStream(receiver, "mail.example", 143, 5)
        assert await stream.readline() == b"M1 OK Begin TLS\r\n"
        await stream.start_tls(ssl.create_default_context())

    with pytest.raises(TransportError, match="before the TLS handshake"):
        asyncio.run(go())
