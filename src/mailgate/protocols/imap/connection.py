"""One IMAP connection: tagged commands, literals both ways, SASL. Thin I/O over the parser.

A response is read as line chunks and literals (see :mod:`mailgate.protocols.imap.parser`).
Before each literal the connection asks the command's :data:`LiteralSink` whether this literal
goes to a file; if so it is copied in chunks and a :class:`Streamed` placeholder takes its
place, so message bodies are never held in memory. Commands run one at a time.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from mailgate.errors import MailgateError, ProtocolError, TransportError
from mailgate.protocols._mailstream import MailStream
from mailgate.protocols.imap.commands import Part, join_parts
from mailgate.protocols.imap.parser import (
    Continuation,
    DataResponse,
    ParseError,
    RawResponse,
    Response,
    StatusResponse,
    Streamed,
    fetch_body_head,
    literal_marker,
    parse_response,
    response_code,
)
from mailgate.protocols.imap.results import authentication_failure, command_failure

__all__ = ["BODY_LIMIT", "BodyTaker", "CommandResult", "ImapConnection", "LiteralSink"]

LiteralSink = Callable[[Sequence[bytes], int], BinaryIO | None]
"""Given the line chunks read so far and a literal's size: a file to copy it to, or None."""

BodyTaker = Callable[[int, bytes], None]
"""Given a message's UID and its whole body: takes it (a bulk ``UID FETCH (UID BODY.PEEK[])``)."""

BODY_LIMIT = 1024 * 1024
"""Bodies up to this size may go to a :data:`BodyTaker` whole; larger ones stream to the sink."""

_INLINE_LITERAL = 4096  # LITERAL- allows non-synchronising literals up to this size


@dataclass
class CommandResult:
    """The tagged reply and the untagged responses that came with it."""

    status: StatusResponse
    data: list[DataResponse] = field(default_factory=list)
    untagged: list[StatusResponse] = field(default_factory=list)

    def of(self, keyword: str) -> list[DataResponse]:
        return [d for d in self.data if d.keyword == keyword]


class ImapConnection:
    """Sends commands and reads replies on a :class:`MailStream`."""

    def __init__(self, stream: MailStream) -> None:
        self.stream = stream
        self.capabilities: frozenset[str] = frozenset()
        self._tag = 0
        self._lock = asyncio.Lock()
        self.bye: StatusResponse | None = None

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    def _next_tag(self) -> str:
        self._tag += 1
        return f"M{self._tag:04d}"

    def set_capabilities(self, words: Sequence[str]) -> None:
        self.capabilities = frozenset(w.upper() for w in words)

    async def read_response(
        self, sink: LiteralSink | None = None, timeout: float | None = -1.0
    ) -> Response:
        """Read one whole response, streaming literals the sink claims."""
        chunks: list[bytes] = []
        literals: list[bytes | Streamed] = []
        while True:
            line = await self.stream.readline(timeout=timeout)
            chunks.append(line)
            size = literal_marker(line)
            if size is None:
                break
            dest = sink(chunks, size) if sink else None
            if dest is not None:
                await self.stream.copy_exactly(size, dest)
                literals.append(Streamed(size))
            else:
                literals.append(await self.stream.readexactly(size))
        if any(isinstance(lit, Streamed) for lit in literals):
            # The sink already has what mattered; parsing the rest of a bulk FETCH line per
            # message cost a fifth of the client's time in the import benchmark.
            head = chunks[0].split(b" ", 3)
            if len(head) > 2 and head[0] == b"*" and head[2] == b"FETCH" and head[1].isdigit():
                return DataResponse("FETCH", int(head[1]), [])
        try:
            response = parse_response(RawResponse(chunks, literals))
        except ParseError as exc:
            raise ProtocolError(
                f"The IMAP server sent a reply mailgate cannot parse ({exc}).",
                "report this with the server's name; retry with another protocol meanwhile.",
            ) from exc
        if isinstance(response, StatusResponse) and response.status == "BYE":
            self.bye = response
        return response

    async def greeting(self) -> StatusResponse:
        """Read the server greeting; BYE means the server refuses us."""
        response = await self.read_response()
        if not isinstance(response, StatusResponse) or response.tag != "*":
            raise ProtocolError(
                "The server did not greet like an IMAP server.",
                "check the port (993 for IMAP over TLS, 143 for STARTTLS).",
            )
        if response.status == "BYE":
            raise command_failure("connect", response)
        self._note_capabilities(response)
        return response

    def _note_capabilities(self, response: StatusResponse) -> None:
        name, args = response_code(response.code)
        if name == "CAPABILITY":
            self.set_capabilities(args)

    async def _send_parts(self, tag: str, parts: Sequence[Part]) -> StatusResponse | None:
        """Write a command; a synchronising literal waits for ``+``. Returns an early refusal."""
        buffer = bytearray(tag.encode("ascii") + b" ")
        for part in parts:
            if isinstance(part, bytes):
                buffer += part
                continue
            size = len(part.data)
            plus = self.has("LITERAL+") or (self.has("LITERAL-") and size <= _INLINE_LITERAL)
            buffer += b"{%d%s}\r\n" % (size, b"+" if plus else b"")
            if not plus:
                await self.stream.write(bytes(buffer))
                buffer.clear()
                while True:
                    response = await self.read_response()
                    if isinstance(response, Continuation):
                        break
                    if isinstance(response, StatusResponse) and response.tag == tag:
                        return response
            buffer += part.data
        buffer += b"\r\n"
        await self.stream.write(bytes(buffer))
        return None

    async def command(
        self,
        name: str,
        *args: Part,
        sink: LiteralSink | None = None,
        check: bool = True,
        bodies: BodyTaker | None = None,
    ) -> CommandResult:
        """Run ``name args``; NO/BAD raise the mapped error unless ``check`` is False.

        ``bodies``: for a bulk ``UID FETCH (UID BODY.PEEK[])``, each response of exactly that
        shape with a body up to :data:`BODY_LIMIT` is cut from the received bytes in one piece
        and handed over (it is not in the result); any other response goes through ``sink``
        and the parser as usual.
        """
        async with self._lock:
            tag = self._next_tag()
            parts = join_parts([name.encode("ascii"), *args])
            try:
                early = await self._send_parts(tag, parts)
                result = (
                    CommandResult(early)
                    if early
                    else await self._collect(tag, sink, name == "LOGOUT", bodies)
                )
            except TransportError as exc:
                if self.bye is not None:
                    raise command_failure(name, self.bye) from exc
                raise
            except BaseException:
                # The reply is left half-read (a sink failed mid-literal, the caller was
                # cancelled, a reply did not parse): the connection is out of step, and a
                # LOGOUT would only read the rest of a bulk FETCH until its timeout.
                self.stream.closed = True
                raise
        if check and result.status.status != "OK":
            raise command_failure(
                name.split()[-1] if name.startswith("UID") else name, result.status
            )
        return result

    async def _collect(
        self,
        tag: str,
        sink: LiteralSink | None,
        expect_bye: bool = False,
        bodies: BodyTaker | None = None,
    ) -> CommandResult:
        data: list[DataResponse] = []
        untagged: list[StatusResponse] = []
        while True:
            if bodies is not None and await self._take_body(bodies):
                continue
            response = await self.read_response(sink)
            if isinstance(response, DataResponse):
                if response.keyword == "CAPABILITY":
                    self.set_capabilities([str(v) for v in response.values])
                data.append(response)
            elif isinstance(response, StatusResponse):
                if response.tag == tag:
                    self._note_capabilities(response)
                    return CommandResult(response, data, untagged)
                if response.tag != "*":
                    raise ProtocolError(
                        f"The IMAP server answered an unknown command tag {response.tag!r}.",
                        "retry; report the server's name if it keeps happening.",
                    )
                untagged.append(response)
                if response.status == "BYE" and not expect_bye:
                    raise command_failure("a command", response)

    async def _take_body(self, bodies: BodyTaker) -> bool:
        """Bulk-FETCH bodies straight from the received bytes, while the next response is one.

        A tenth of a bulk save's client time went into reading such a response line by line,
        literal by literal, through the general parser. Every body already received is taken
        in this one call (awaiting only for bytes still to come: a call and two awaits per
        message were measurable). False if the first response is not such a body (nothing
        consumed), a tagged reply included.
        """
        stream = self.stream
        pending = stream.pending
        taken = False
        while True:
            if b"\n" not in pending:
                await stream.more()  # any reader would wait for the rest of the line here
            head = fetch_body_head(pending)
            if head is None or head[1] > BODY_LIMIT:
                return taken
            uid, size, start = head
            end = start + size
            if len(pending) < end + 3:
                await stream.ensure(end + 3, "reading a message")
            if pending[end : end + 3] != b")\r\n":
                return taken
            bodies(uid, stream.cut(start, end, end + 3))
            taken = True

    async def authenticate(self, mechanism: str, initial: bytes) -> StatusResponse:
        """SASL with an initial response; both failure styles end in MailAuthenticationError.

        Exchange answers a bad token at once with ``NO AUTHENTICATE failed.``; Dovecot first
        sends a base64 JSON challenge, which we answer with an empty line to get the final NO.
        """
        if f"AUTH={mechanism.upper()}" not in self.capabilities:
            raise authentication_failure(
                f"the server does not offer AUTH={mechanism.upper()} "
                f"(it offers {', '.join(sorted(self.capabilities)) or 'nothing'})"
            )
        encoded = base64.b64encode(initial)
        async with self._lock:
            tag = self._next_tag()
            line = f"{tag} AUTHENTICATE {mechanism.upper()}".encode("ascii")
            sent = self.has("SASL-IR")
            await self.stream.write(line + (b" " + encoded if sent else b"") + b"\r\n")
            while True:
                response = await self.read_response()
                if isinstance(response, Continuation):
                    # First "+" without SASL-IR asks for the response; any later one is the
                    # failure challenge, answered with an empty line.
                    await self.stream.write(b"\r\n" if sent else encoded + b"\r\n")
                    sent = True
                elif isinstance(response, StatusResponse) and response.tag == tag:
                    break
        if response.status != "OK":
            raise authentication_failure(response.line)
        self._note_capabilities(response)
        return response

    async def start_idle(self) -> str:
        """Send IDLE and wait for the go-ahead; returns the tag to finish with."""
        tag = self._next_tag()
        await self.stream.write(f"{tag} IDLE\r\n".encode("ascii"))
        while True:
            response = await self.read_response()
            if isinstance(response, Continuation):
                return tag
            if isinstance(response, StatusResponse) and response.tag == tag:
                raise command_failure("IDLE", response)

    async def finish_idle(self, tag: str) -> list[DataResponse]:
        """Send DONE and read up to IDLE's tagged OK; returns what arrived meanwhile."""
        await self.stream.write(b"DONE\r\n")
        result = await self._collect(tag, None)
        if result.status.status != "OK":
            raise command_failure("IDLE", result.status)
        return result.data

    async def close(self) -> MailgateError | None:
        """LOGOUT (best effort) and close the stream."""
        error: MailgateError | None = None
        if not self.stream.closed:
            try:
                await asyncio.wait_for(self.command("LOGOUT", check=False), 5)
            except (MailgateError, TimeoutError) as exc:
                error = exc if isinstance(exc, MailgateError) else None
        await self.stream.close()
        return error
