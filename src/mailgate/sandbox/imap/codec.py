"""Pure IMAP4rev1 wire pieces for the sandbox server: command lexer, modified UTF-7, sequence
sets, quoting, dates. No sockets here.

A command arrives as *segments*: text pieces alternating with literal payloads, because the
server reads ``{n}``/``{n+}`` literals separately (it must answer ``+`` for synchronising
ones). :func:`parse_command` turns the segments into a tag, a verb and a token tree, where
literal payloads stay the very ``bytes`` objects that were read (no copy of a 50 MB APPEND).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailgate.protocols.imap.utf7 import decode_mailbox_name, encode_mailbox_name

__all__ = [
    "LITERAL_AT_END",
    "Atom",
    "Command",
    "ImapSyntaxError",
    "as_text",
    "decode_mutf7",
    "encode_mutf7",
    "format_internal_date",
    "in_ranges",
    "parse_command",
    "parse_date",
    "parse_internal_date",
    "parse_sequence_set",
    "quote",
    "render_list",
    "sequence_set_text",
]

LITERAL_AT_END = re.compile(rb"\{(\d+)(\+?)\}\r?\n?$")


class ImapSyntaxError(ValueError):
    """The command cannot be parsed; the server answers BAD."""


class Atom(str):
    """An unquoted token (atoms, flags, sequence sets, ``BODY[...]<...>`` fetch items)."""


_Tree = list[object]


@dataclass(frozen=True)
class Command:
    """A parsed command line: ``args`` holds Atoms, bytes (strings, literals) and lists."""

    tag: str
    verb: str
    args: list[object]


# -- modified UTF-7 (RFC 3501 section 5.1.3) ------------------------------------------------


# The client's codec is the one implementation; the server adds its strictness on input.
encode_mutf7 = encode_mailbox_name


def decode_mutf7(text: str) -> str:
    """Decode a modified UTF-7 mailbox name; ImapSyntaxError if malformed or not 7-bit."""
    if not all(0x20 <= ord(char) <= 0x7E for char in text):
        raise ImapSyntaxError("mailbox names must be 7-bit (modified UTF-7)")
    try:
        return decode_mailbox_name(text)
    except ValueError as exc:
        raise ImapSyntaxError(f"malformed modified UTF-7 sequence: {exc}") from exc


# -- lexer --------------------------------------------------------------------------------

_ATOM_END = b" ()\r\n"


def _lex(segments: Sequence[bytes]) -> list[object]:
    """Token tree of the command text; literal segments (odd indexes) become bytes tokens."""
    stack: list[_Tree] = [[]]
    for index, segment in enumerate(segments):
        if index % 2:
            stack[-1].append(segment)
            continue
        text = segment
        if index + 1 < len(segments):
            found = LITERAL_AT_END.search(text)
            if found is None:
                raise ImapSyntaxError("literal marker missing")
            text = text[: found.start()]
        i, n = 0, len(text)
        while i < n:
            c = text[i : i + 1]
            if c in (b" ", b"\r", b"\n"):
                i += 1
            elif c == b"(":
                stack.append([])
                i += 1
            elif c == b")":
                if len(stack) == 1:
                    raise ImapSyntaxError("unbalanced parenthesis")
                done = stack.pop()
                stack[-1].append(done)
                i += 1
            elif c == b'"':
                i, value = _quoted(text, i + 1)
                stack[-1].append(value)
            else:
                i, atom = _atom(text, i)
                stack[-1].append(Atom(atom.decode("utf-8", "surrogateescape")))
    if len(stack) != 1:
        raise ImapSyntaxError("unbalanced parenthesis")
    return stack[0]


def _quoted(text: bytes, i: int) -> tuple[int, bytes]:
    out = bytearray()
    while i < len(text):
        c = text[i]
        if c == 0x5C and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        elif c == 0x22:
            return i + 1, bytes(out)
        else:
            out.append(c)
            i += 1
    raise ImapSyntaxError("unterminated quoted string")


def _atom(text: bytes, i: int) -> tuple[int, bytes]:
    start, depth = i, 0
    while i < len(text):
        c = text[i : i + 1]
        if c == b"[":
            depth += 1
        elif c == b"]":
            depth -= 1
        elif depth == 0 and c in _ATOM_END:
            break
        i += 1
    return i, text[start:i]


def parse_command(segments: Sequence[bytes]) -> Command:
    """Parse a complete command (text/literal segments); ImapSyntaxError if malformed."""
    tokens = _lex(segments)
    if len(tokens) < 2 or not isinstance(tokens[0], Atom) or not isinstance(tokens[1], Atom):
        raise ImapSyntaxError("expected a tag and a command")
    return Command(str(tokens[0]), str(tokens[1]).upper(), tokens[2:])


def as_text(token: object) -> str:
    """A token as a string (atoms and strings); ImapSyntaxError for lists."""
    if isinstance(token, Atom):
        return str(token)
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    raise ImapSyntaxError("expected a string")


# -- sequence sets --------------------------------------------------------------------------


def parse_sequence_set(text: str, largest: int) -> list[tuple[int, int]]:
    """Ranges (low, high) of a sequence set; ``*`` is ``largest``; ImapSyntaxError if bad."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        first, _, last = part.partition(":")
        try:
            low = largest if first == "*" else int(first)
            high = low if not last else (largest if last == "*" else int(last))
        except ValueError as exc:
            raise ImapSyntaxError(f"bad sequence set {text!r}") from exc
        if (first != "*" and low < 1) or (last not in ("", "*") and high < 1):
            raise ImapSyntaxError(f"bad sequence set {text!r}")
        ranges.append((min(low, high), max(low, high)))
    return ranges


def in_ranges(value: int, ranges: Iterable[tuple[int, int]]) -> bool:
    """True if ``value`` lies in one of the ranges."""
    return any(low <= value <= high for low, high in ranges)


def sequence_set_text(values: Iterable[int]) -> str:
    """Compact form of numbers: ``1:3,7``."""
    out: list[str] = []
    ordered = sorted(set(values))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(out)


# -- strings and dates ----------------------------------------------------------------------


def quote(value: str | bytes | None) -> bytes:
    """NIL, a quoted string, or a literal when the value has 8-bit or line-break bytes."""
    if value is None:
        return b"NIL"
    data = value.encode("utf-8") if isinstance(value, str) else value
    if any(b > 0x7E or b in (0x0A, 0x0D, 0x00) for b in data):
        return b"{%d}\r\n" % len(data) + data
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def render_list(items: Iterable[bytes]) -> bytes:
    """``(a b c)``."""
    return b"(" + b" ".join(items) + b")"


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def format_internal_date(moment: datetime) -> str:
    """``"17-Jul-1996 02:44:25 +0000"`` (INTERNALDATE, in UTC)."""
    utc = moment.astimezone(UTC)
    return f"{utc.day:02d}-{_MONTHS[utc.month - 1]}-{utc.year} {utc:%H:%M:%S} +0000"


def parse_internal_date(text: str) -> datetime:
    """Parse an APPEND date-time; ImapSyntaxError if malformed."""
    try:
        return datetime.strptime(text.strip(), "%d-%b-%Y %H:%M:%S %z").astimezone(UTC)
    except ValueError as exc:
        raise ImapSyntaxError(f"bad date-time {text!r}") from exc


def parse_date(text: str) -> datetime:
    """Parse a SEARCH date (``1-Feb-2026``) as midnight UTC; ImapSyntaxError if malformed."""
    try:
        return datetime.strptime(text.strip(), "%d-%b-%Y").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ImapSyntaxError(f"bad date {text!r}") from exc
