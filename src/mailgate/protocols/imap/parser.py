"""IMAP response parsing: pure functions from bytes to values, no sockets.

Theory of operation: the connection reads one response as *line chunks* and *literals*. A chunk
that ends in ``{n}`` is followed by a literal of n bytes, then the next chunk, and so on up to a
chunk without a literal marker. The reader may hand a large literal (a message body) straight
to a file; it then puts a :class:`Streamed` placeholder where the bytes would be.
:class:`RawResponse` holds that shape and :func:`parse_response` turns it into one of

- :class:`StatusResponse` — ``tag OK/NO/BAD/BYE/PREAUTH [code] text`` (tag ``*`` if untagged);
  the text is kept verbatim because Exchange's texts hold unbalanced quotes and brackets;
- :class:`DataResponse` — ``* [number] KEYWORD values`` (CAPABILITY, LIST, SEARCH, FETCH...);
- :class:`Continuation` — ``+ text`` (SASL challenges, literal go-ahead, IDLE).

Values: an *atom* is ``str`` (``\\Seen``, ``BODY[HEADER.FIELDS (FROM)]``, numbers), a quoted
string or literal is ``bytes``, ``NIL`` is ``None``, a parenthesised list is ``list``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailgate.errors import ProtocolError

__all__ = [
    "STATUS_WORDS",
    "Continuation",
    "DataResponse",
    "ParseError",
    "RawResponse",
    "Response",
    "StatusResponse",
    "Streamed",
    "Value",
    "as_int",
    "as_text",
    "fetch_body_head",
    "fetch_items",
    "literal_marker",
    "parse_response",
    "response_code",
    "tokenize",
]

STATUS_WORDS = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_LITERAL_MARKER = re.compile(rb"\{(\d+)\+?\}\r?\n?$")
_ATOM_END = b' ()"{\r\n'
_PLAIN_ATOM = re.compile(rb'[^ ()"{\r\n\[]+')
_NUMBERS = re.compile(rb"[0-9 ]*")


class ParseError(ProtocolError, ValueError):
    """The bytes are not a well-formed IMAP response."""

    def __init__(self, message: str) -> None:
        super().__init__(
            f"The IMAP server sent a reply mailgate cannot read: {message}",
            "report the server's name and version; retrying rarely helps.",
        )


@dataclass(frozen=True)
class Streamed:
    """A literal the reader wrote to a file instead of keeping; ``size`` bytes long."""

    size: int


Value = str | bytes | None | Streamed | list["Value"]


@dataclass
class RawResponse:
    """One response as read: ``len(chunks) == len(literals) + 1``."""

    chunks: list[bytes]
    literals: list[bytes | Streamed] = field(default_factory=list)

    @classmethod
    def from_bytes(cls, data: bytes) -> RawResponse:
        """Split a complete response (as a test or a log has it) into chunks and literals."""
        chunks: list[bytes] = []
        literals: list[bytes | Streamed] = []
        pos = 0
        while True:
            eol = data.find(b"\n", pos)
            line = data[pos : eol + 1] if eol >= 0 else data[pos:]
            size = literal_marker(line)
            if size is None:
                chunks.append(line)
                return cls(chunks, literals)
            chunks.append(line)
            start = pos + len(line)
            literals.append(data[start : start + size])
            pos = start + size


# Exactly what Dovecot, Exchange and the sandbox send for ``UID FETCH (UID BODY.PEEK[])``.
_BODY_HEAD = re.compile(rb"\* \d+ FETCH \(UID (\d+) BODY\[\] \{(\d+)\}\r\n")


def fetch_body_head(data: bytes | bytearray) -> tuple[int, int, int] | None:
    """``(uid, size, start)`` if ``data`` begins with ``* n FETCH (UID u BODY[] {size}`` CRLF.

    The bulk path reads the literal at ``data[start:start + size]`` and expects ``)`` CRLF
    right after it; any other shape (more items, another order, a partial line) is None and
    goes through the general parser instead.
    """
    match = _BODY_HEAD.match(data)
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2)), match.end()


def literal_marker(line: bytes) -> int | None:
    """The size announced by a trailing ``{n}`` (or ``{n+}``), else None."""
    match = _LITERAL_MARKER.search(line)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class StatusResponse:
    """``tag STATUS [code] text``. ``line`` is what error messages quote (never a token)."""

    tag: str
    status: str
    code: str | None
    text: str

    @property
    def line(self) -> str:
        code = f"[{self.code}] " if self.code else ""
        return f"{self.status} {code}{self.text}".strip()


@dataclass(frozen=True)
class DataResponse:
    """``* [number] KEYWORD values``."""

    keyword: str
    number: int | None
    values: list[Value]


@dataclass(frozen=True)
class Continuation:
    """``+ text``; for SASL the text is base64."""

    text: str


Response = StatusResponse | DataResponse | Continuation


class _Lexer:
    """Tokens over chunks and literals; a ``{n}`` at a chunk's end yields the next literal."""

    def __init__(self, raw: RawResponse) -> None:
        self.chunks = [
            _strip_eol(c) if i == len(raw.chunks) - 1 else c for i, c in enumerate(raw.chunks)
        ]
        self.literals = raw.literals
        self.index = 0
        self.pos = 0

    @property
    def data(self) -> bytes:
        return self.chunks[self.index]

    def skip_spaces(self) -> None:
        while self.pos < len(self.data) and self.data[self.pos] == 0x20:
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_spaces()
        return self.index == len(self.chunks) - 1 and self.pos >= len(self.data)

    def rest_of_line(self) -> str:
        """Everything up to the end as text; literals inside it are kept as bytes decoded."""
        parts = [self.data[self.pos :]]
        for i in range(self.index + 1, len(self.chunks)):
            literal = self.literals[i - 1]
            parts.append(literal if isinstance(literal, bytes) else b"")
            parts.append(self.chunks[i])
        self.index, self.pos = len(self.chunks) - 1, len(self.chunks[-1])
        return b"".join(parts).decode("utf-8", "replace").strip()

    def values(self, closing: int | None = None) -> list[Value]:
        out: list[Value] = []
        while True:
            self.skip_spaces()
            if self.pos >= len(self.data) and self.index == len(self.chunks) - 1:
                if closing is not None:
                    raise ParseError("unterminated parenthesised list")
                return out
            byte = self.data[self.pos] if self.pos < len(self.data) else None
            if byte is None:
                raise ParseError("unexpected end of a line chunk")
            if closing is not None and byte == closing:
                self.pos += 1
                return out
            out.append(self.value())

    def value(self) -> Value:
        data, pos = self.data, self.pos
        byte = data[pos]
        if byte == 0x28:  # (
            self.pos += 1
            return self.values(closing=0x29)
        if byte == 0x22:  # "
            return self.quoted()
        if byte == 0x7B:  # {
            return self.literal()
        return self.atom()

    def quoted(self) -> bytes:
        data, pos = self.data, self.pos + 1
        out = bytearray()
        while pos < len(data):
            byte = data[pos]
            if byte == 0x5C and pos + 1 < len(data):  # backslash escape
                out.append(data[pos + 1])
                pos += 2
                continue
            if byte == 0x22:
                self.pos = pos + 1
                return bytes(out)
            out.append(byte)
            pos += 1
        raise ParseError("unterminated quoted string")

    def literal(self) -> bytes | Streamed:
        size = literal_marker(self.data[self.pos :])
        if size is None or self.index >= len(self.literals):
            raise ParseError("literal marker without literal data")
        literal = self.literals[self.index]
        if isinstance(literal, bytes) and len(literal) != size:
            raise ParseError(f"literal of {len(literal)} bytes announced as {size}")
        self.index += 1
        self.pos = 0
        return literal

    def atom(self) -> str | None:
        data, pos = self.data, self.pos
        plain = _PLAIN_ATOM.match(data, pos)
        if plain is not None and data[plain.end() : plain.end() + 1] != b"[":
            # The common case, in C: an atom without a [section] (whose brackets may hold
            # spaces and parentheses, scanned below).
            self.pos = plain.end()
            text = plain.group().decode("utf-8", "replace")
            return None if text.upper() == "NIL" else text
        start, depth = pos, 0
        while pos < len(data):
            byte = data[pos]
            if byte == 0x5B:  # [ : a section may hold spaces and parentheses
                depth += 1
            elif byte == 0x5D and depth:
                depth -= 1
            elif not depth and byte in _ATOM_END:
                break
            pos += 1
        if pos == start:
            raise ParseError(f"unexpected byte {data[pos : pos + 1]!r}")
        self.pos = pos
        text = data[start:pos].decode("utf-8", "replace")
        return None if text.upper() == "NIL" else text


def _strip_eol(line: bytes) -> bytes:
    return line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")


def tokenize(raw: RawResponse) -> list[Value]:
    """All values of a response, for tests and for data after the keyword."""
    return _Lexer(raw).values()


def parse_response(raw: RawResponse) -> Response:
    """Classify one response; ParseError if it has no tag."""
    lexer = _Lexer(raw)
    first = lexer.data
    if first.startswith(b"+"):
        return Continuation(lexer.rest_of_line()[1:].strip())
    space = first.find(b" ")
    if space <= 0:
        raise ParseError(f"response without a tag: {first[:80]!r}")
    tag = first[:space].decode("ascii", "replace")
    lexer.pos = space + 1
    word = lexer.atom() or ""
    number: int | None = None
    if tag == "*" and word.isdigit():
        number = int(word)
        lexer.skip_spaces()
        word = lexer.atom() or ""
    upper = word.upper()
    if upper in STATUS_WORDS and number is None:
        text = lexer.rest_of_line()
        code = None
        if text.startswith("["):
            end = text.find("]")
            if end > 0:
                code, text = text[1:end], text[end + 1 :].strip()
        return StatusResponse(tag, upper, code, text)
    if tag != "*":
        raise ParseError(f"tagged response without a status: {first[:80]!r}")
    rest = lexer.data[lexer.pos :]
    if len(lexer.chunks) == 1 and _NUMBERS.fullmatch(rest):
        # SEARCH results: thousands of numbers on one line, split at once rather than
        # lexed byte by byte (a tenth of a second for a 10,000-message folder).
        return DataResponse(upper, number, list(rest.decode("ascii").split()))
    return DataResponse(upper, number, lexer.values())


def response_code(code: str | None) -> tuple[str, list[str]]:
    """``"APPENDUID 38505 3955"`` → ``("APPENDUID", ["38505", "3955"])``."""
    if not code:
        return "", []
    name, *args = code.split()
    return name.upper(), args


def as_text(value: Value) -> str:
    """A string value as text (UTF-8, lenient); '' for NIL."""
    if value is None or isinstance(value, Streamed | list):
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def as_int(value: Value) -> int:
    """A number atom; ParseError otherwise."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ParseError(f"expected a number, got {value!r}")


def fetch_items(values: Sequence[Value]) -> dict[str, Value]:
    """The ``(NAME value NAME value ...)`` of a FETCH response, names upper-cased.

    ``BODY[HEADER.FIELDS (FROM TO)]`` keeps its section so callers can tell sections apart.
    """
    if len(values) != 1 or not isinstance(values[0], list):
        raise ParseError("FETCH data must be one parenthesised list")
    items = values[0]
    if len(items) % 2:
        raise ParseError("FETCH data must be name/value pairs")
    out: dict[str, Value] = {}
    for i in range(0, len(items), 2):
        name = items[i]
        if not isinstance(name, str):
            raise ParseError(f"FETCH item name must be an atom, got {name!r}")
        out[name.upper()] = items[i + 1]
    return out
