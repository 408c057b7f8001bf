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

__all__ = [
    "CHUNK",
    "LINE_LIMIT",
    "READER_LIMIT",
    "MailStream",
    "Receiver",
    "check_security",
    "is_loopback",
    "open_stream",
    "transport_error",
]

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


class Receiver(asyncio.BufferedProtocol):
    """The protocol under a :class:`MailStream`: received bytes land in :attr:`data` directly.

    As a buffered protocol, the transport (TLS included: asyncio's SSL layer decrypts into the
    buffer it is given) writes into one scratch buffer that is appended to :attr:`data`; a
    ``StreamReader`` would cost two more copies of every byte and a Python call per read, a
    tenth of a bulk fetch's client time. Reading pauses while :attr:`data` holds more than
    :data:`READER_LIMIT` (a big literal arriving faster than the disk takes it), writing
    while the transport's buffer is full.
    """

    def __init__(self) -> None:
        self.data = bytearray()
        self._scratch = memoryview(bytearray(CHUNK))
        self.transport: asyncio.Transport | None = None
        self.at_eof = False  # the peer closed its side or the connection is gone
        self.gone = False  # the connection is gone
        self.error: BaseException | None = None  # why the connection was lost, if it was
        self.reading_paused = False
        self._writing_paused = False
        self._readers: asyncio.Future[None] | None = None
        self._writers: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        self.data += self._scratch[:nbytes]
        if len(self.data) >= READER_LIMIT and not self.reading_paused and self.transport:
            self.reading_paused = True
            self.transport.pause_reading()
        _wake(self._readers)

    def eof_received(self) -> bool:
        self.at_eof = True
        _wake(self._readers)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.at_eof = self.gone = True
        self.error = exc
        for waiter in (self._readers, self._writers, self._lost):
            _wake(waiter)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        _wake(self._writers)

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self.transport.resume_reading()

    async def readable(self) -> None:
        """Wait until more bytes arrive (or the connection ends)."""
        self.resume_reading()
        if not self.at_eof:
            self._readers = asyncio.get_running_loop().create_future()
            try:
                await self._readers
            finally:
                self._readers = None

    async def writable(self) -> None:
        """Wait until the transport takes more (or the connection ends)."""
        while self._writing_paused and not self.gone:
            self._writers = asyncio.get_running_loop().create_future()
            try:
                await self._writers
            finally:
                self._writers = None

    async def lost(self) -> None:
        """Wait until the connection is gone."""
        if self.gone or self.transport is None:
            return
        if self._lost is None:
            self._lost = asyncio.get_running_loop().create_future()
        await self._lost


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class MailStream:
    """A connected stream with a timeout on every read and write."""

    def __init__(self, receiver: Receiver, host: str, port: int, timeout: float) -> None:
        self.receiver = receiver
        self.host = host
        self.port = port
        self.timeout = timeout
        self.closed = False
        # The receiver's buffer: lines and small literals are cut from it without an await
        # (and a timeout) each; the stream waits for the socket only when it runs dry.
        self._buffer = receiver.data

    async def _guard(self, what: str, coro: Awaitable[T], timeout: float | None = -1.0) -> T:
        limit = self.timeout if timeout == -1.0 else timeout
        try:
            # asyncio.timeout, not wait_for: wait_for wraps every read in a new Task (3.11),
            # which was a third of the client's time in the bulk-fetch benchmark.
            async with asyncio.timeout(limit):
                return await coro
        except (OSError, TimeoutError, EOFError) as exc:
            self.closed = True
            raise transport_error(what, self.host, self.port, exc) from exc

    def _hung_up(self, what: str) -> TransportError:
        self.closed = True
        error = self.receiver.error
        if error is not None and not isinstance(error, ConnectionResetError | BrokenPipeError):
            return transport_error(what, self.host, self.port, error)
        return TransportError(
            f"The server at {self.host}:{self.port} closed the connection during {what}.",
            "retry; if it keeps happening check the server's logs and limits.",
        )

    async def _fill(self, what: str, timeout: float | None = -1.0) -> None:
        """Wait until the buffer has grown; TransportError if the connection ended instead."""
        before = len(self._buffer)
        while len(self._buffer) == before:
            if self.receiver.at_eof:
                raise self._hung_up(what)
            await self._guard(what, self.receiver.readable(), timeout)

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        with memoryview(buffer) as view:
            data = bytes(view[:size])
        del buffer[:size]
        if self.receiver.reading_paused and len(buffer) < READER_LIMIT // 2:
            self.receiver.resume_reading()
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
        await self.ensure(size, what)
        return self._take(size)

    @property
    def pending(self) -> bytearray:
        """The bytes received and not yet taken (read-only for callers: use :meth:`cut`)."""
        return self._buffer

    async def ensure(self, size: int, what: str = "reading data") -> None:
        """Wait until at least ``size`` bytes are pending; TransportError if the peer hangs up."""
        while len(self._buffer) < size:
            await self._fill(what)

    async def more(self, what: str = "reading a reply") -> None:
        """Wait until more bytes are pending than now."""
        await self._fill(what)

    def cut(self, start: int, stop: int, consumed: int) -> bytes:
        """``pending[start:stop]`` as bytes (one copy), then drop the first ``consumed`` bytes.

        A bulk reader that has matched a whole response in :attr:`pending` takes the part it
        wants without the line-by-line reads (and their copies) of the general path.
        """
        buffer = self._buffer
        with memoryview(buffer) as view:
            data = bytes(view[start:stop])
        del buffer[:consumed]
        if self.receiver.reading_paused and len(buffer) < READER_LIMIT // 2:
            self.receiver.resume_reading()
        return data

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
            if not self._buffer:
                await self._fill(what)
            chunk = self._take(min(len(self._buffer), remaining))
            remaining -= len(chunk)
            data = transform(chunk) if transform else chunk
            dest.write(data)
            written += len(data)
        return written

    async def write(self, data: bytes, what: str = "sending a command") -> None:
        transport = self.receiver.transport
        if transport is None or transport.is_closing() or self.receiver.gone:
            raise self._hung_up(what)
        transport.write(data)
        await self._guard(what, self.receiver.writable())

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
        transport = self.receiver.transport
        assert transport is not None
        loop = asyncio.get_running_loop()
        upgraded = await self._guard(
            "the TLS handshake",
            loop.start_tls(transport, self.receiver, context, server_hostname=self.host),
        )
        if upgraded is None:  # the connection ended during the handshake
            raise self._hung_up("the TLS handshake")
        self.receiver.transport = upgraded

    async def close(self) -> None:
        """Close without raising; safe to call twice."""
        transport = self.receiver.transport
        if transport is None or (self.closed and transport.is_closing()):
            self.closed = True
            return
        self.closed = True
        transport.close()
        # The peer may be gone already; there is nothing left to release then.
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.receiver.lost(), 2)


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
    loop = asyncio.get_running_loop()
    receiver = Receiver()
    try:
        await asyncio.wait_for(
            loop.create_connection(
                lambda: receiver,
                host,
                port,
                ssl=context if security is Security.TLS else None,
                server_hostname=host if security is Security.TLS else None,
            ),
            timeout,
        )
    except (OSError, TimeoutError) as exc:
        raise transport_error("Connecting", host, port, exc) from exc
    return MailStream(receiver, host, port, timeout)
