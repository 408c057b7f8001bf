"""The byte stream under IMAP and POP3: connect, TLS/STARTTLS, timeouts, and error conversion.

Every OS, TLS and timeout failure is converted here, in one place, into
:class:`~mailgate.errors.TransportError` with a remedy; adapters above never see ``OSError``.
Literal and message bodies are copied to a file in chunks (:meth:`MailStream.copy_exactly`),
so a 50 MB message never sits in memory whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from typing import BinaryIO, TypeVar

from mailgate.errors import ConfigurationError, TransportError
from mailgate.protocols.base import Security

__all__ = ["CHUNK", "MailStream", "check_security", "open_stream"]

CHUNK = 256 * 1024  # the most one socket read takes (lines and literals are cut from it)
# The StreamReader pauses the socket at twice its limit, so the limit bounds memory while a
# big literal arrives faster than the disk takes it. Longer lines are accumulated piecewise.
READER_LIMIT = 512 * 1024
LINE_LIMIT = 64 * 1024 * 1024  # SEARCH results for big folders are one long line
T = TypeVar("T")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_security(host: str, security: Security) -> None:
    """Refuse a plain-text connection to anything but loopback (tokens would travel in clear)."""
    if security is Security.PLAIN and not is_loopback(host):
        raise ConfigurationError(
            f"Plain-text (unencrypted) connections are only allowed to this machine, not {host}.",
            "use security 'tls' or 'starttls'; plain is for local test servers only.",
        )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def transport_error(what: str, host: str, port: int, exc: BaseException) -> TransportError:
    """One conversion for every low-level failure."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        remedy = (
            "the server's certificate is not trusted for this host name: check the host, or "
            "give the CA of a test server with ssl_context."
        )
    elif isinstance(exc, ssl.SSLError):
        remedy = "check that the port speaks TLS (993/995) or use STARTTLS (143/110/587)."
    elif isinstance(exc, ConnectionRefusedError):
        remedy = f"check the host and port ({host}:{port}) and that the server is running."
    elif isinstance(exc, TimeoutError | asyncio.TimeoutError):
        remedy = "the server did not answer in time: check the network or raise the timeout."
    else:
        remedy = "check the network connection and retry."
    return TransportError(f"{what} with {host}:{port} failed ({_describe(exc)}).", remedy)


class MailStream:
    """A connected stream with a timeout on every read and write."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        timeout: float,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host
        self.port = port
        self.timeout = timeout
        self.closed = False
        # Our own read buffer: lines and small literals are cut from it without an await (and
        # a timeout) each; the socket is read in blocks of CHUNK only when it runs dry.
        self._buffer = bytearray()

    async def _guard(self, what: str, coro: Awaitable[T], timeout: float | None = -1.0) -> T:
        limit = self.timeout if timeout == -1.0 else timeout
        try:
            # asyncio.timeout, not wait_for: wait_for wraps every read in a new Task (3.11),
            # which was a third of the client's time in the bulk-fetch benchmark.
            async with asyncio.timeout(limit):
                return await coro
        except asyncio.IncompleteReadError as exc:
            self.closed = True
            raise TransportError(
                f"The server at {self.host}:{self.port} closed the connection during {what}.",
                "retry; if it keeps happening check the server's logs and limits.",
            ) from exc
        except (OSError, TimeoutError, EOFError) as exc:
            self.closed = True
            raise transport_error(what, self.host, self.port, exc) from exc

    async def _fill(self, what: str, timeout: float | None = -1.0) -> None:
        """Append what the socket has (up to :data:`CHUNK`) to the buffer; waits if empty."""
        data = await self._guard(what, self.reader.read(CHUNK), timeout)
        if not data:
            self.closed = True
            raise TransportError(
                f"The server at {self.host}:{self.port} closed the connection during {what}.",
                "retry; if it keeps happening check the server's logs and limits.",
            )
        self._buffer += data

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        with memoryview(buffer) as view:
            data = bytes(view[:size])
        del buffer[:size]
        return data

    async def readline(self, what: str = "reading a reply", timeout: float | None = -1.0) -> bytes:
        """One line including CRLF; TransportError if the server hangs up."""
        start = 0
        while True:
            end = self._buffer.find(b"\n", start)
            if end >= 0:
                return self._take(end + 1)
            start = len(self._buffer)
            if start > LINE_LIMIT:
                raise TransportError(
                    f"The server at {self.host}:{self.port} sent a line over {LINE_LIMIT} bytes.",
                    "search or fetch fewer messages at once.",
                )
            await self._fill(what, timeout)

    async def readexactly(self, size: int, what: str = "reading data") -> bytes:
        while len(self._buffer) < size:
            await self._fill(what)
        return self._take(size)

    async def copy_exactly(
        self,
        size: int,
        dest: BinaryIO,
        what: str = "reading a message",
        transform: Callable[[bytes], bytes] | None = None,
    ) -> int:
        """Copy ``size`` bytes to ``dest`` in chunks; returns bytes written to ``dest``."""
        remaining, written = size, 0
        while remaining:
            if self._buffer:
                chunk = self._take(min(len(self._buffer), remaining))
            else:
                # Nothing buffered: a big literal goes from the socket to ``dest`` directly.
                chunk = await self._guard(what, self.reader.read(min(CHUNK, remaining)))
                if not chunk:
                    self.closed = True
                    raise TransportError(
                        f"The server at {self.host}:{self.port} closed the connection during "
                        f"{what}.",
                        "retry; if it keeps happening check the server's logs and limits.",
                    )
            remaining -= len(chunk)
            data = transform(chunk) if transform else chunk
            dest.write(data)
            written += len(data)
        return written

    async def write(self, data: bytes, what: str = "sending a command") -> None:
        self.writer.write(data)
        await self._guard(what, self.writer.drain())

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade after STARTTLS/STLS."""
        if self._buffer:
            # Bytes after the go-ahead but before the handshake were never protected by TLS
            # (the STARTTLS injection attack): refuse rather than read them as if they were.
            self.closed = True
            raise TransportError(
                f"The server at {self.host}:{self.port} sent data before the TLS handshake.",
                "the connection may be tampered with: use security 'tls' (implicit TLS).",
            )
        await self._guard(
            "the TLS handshake", self.writer.start_tls(context, server_hostname=self.host)
        )

    async def close(self) -> None:
        """Close without raising; safe to call twice."""
        if self.closed and self.writer.is_closing():
            return
        self.closed = True
        self.writer.close()
        # The peer may be gone already; there is nothing left to release then.
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


async def open_stream(
    host: str,
    port: int,
    security: Security,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
) -> MailStream:
    """Connect (with TLS at once for :attr:`Security.TLS`); STARTTLS is the protocol's job."""
    check_security(host, security)
    context = ssl_context or ssl.create_default_context()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=context if security is Security.TLS else None,
                server_hostname=host if security is Security.TLS else None,
                limit=READER_LIMIT,
            ),
            timeout,
        )
    except (OSError, TimeoutError) as exc:
        raise transport_error("Connecting", host, port, exc) from exc
    return MailStream(reader, writer, host, port, timeout)
