"""SEARCH criteria and FETCH items of the sandbox IMAP server, parsed and evaluated purely.

:func:`compile_search` turns the criteria tokens into a predicate over :class:`Candidate`;
:func:`parse_fetch_items` turns ``(UID FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.100>)``
into :class:`FetchItem` values the server renders.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from mailgate.sandbox.exchange.store import StoredMessage
from mailgate.sandbox.imap.codec import (
    Atom,
    ImapSyntaxError,
    as_text,
    in_ranges,
    parse_date,
    parse_sequence_set,
)

__all__ = ["Candidate", "FetchItem", "Predicate", "compile_search", "parse_fetch_items"]


@dataclass(frozen=True)
class Candidate:
    """A message with its position in the selected folder."""

    message: StoredMessage
    seq: int
    max_seq: int
    max_uid: int


Predicate = Callable[[Candidate], bool]

_FLAG_KEYS = {
    "SEEN": ("\\Seen", True),
    "UNSEEN": ("\\Seen", False),
    "FLAGGED": ("\\Flagged", True),
    "UNFLAGGED": ("\\Flagged", False),
    "DELETED": ("\\Deleted", True),
    "UNDELETED": ("\\Deleted", False),
    "ANSWERED": ("\\Answered", True),
    "UNANSWERED": ("\\Answered", False),
    "DRAFT": ("\\Draft", True),
    "UNDRAFT": ("\\Draft", False),
}
_HEADER_KEYS = {"FROM": "From", "TO": "To", "CC": "Cc", "BCC": "Bcc", "SUBJECT": "Subject"}
_SEQUENCE = re.compile(r"^[0-9*:,]+$")


def _contains(haystack: str | bytes, needle: str) -> bool:
    if isinstance(haystack, bytes):
        return needle.encode("utf-8").lower() in haystack.lower()
    return needle.casefold() in haystack.casefold()


def _header_text(message: StoredMessage, name: str) -> str:
    return " ".join(str(v) for v in message.headers.get_all(name, []))


def _date_key(name: str, value: str) -> Predicate:
    day = parse_date(value)
    sent = name.startswith("SENT")
    kind = name.removeprefix("SENT")

    def check(c: Candidate) -> bool:
        when = c.message.date if sent else c.message.internal_date
        if when is None:
            return False
        if kind == "SINCE":
            return when >= day
        if kind == "BEFORE":
            return when < day
        return day <= when < day + timedelta(days=1)

    return check


class _Parser:
    def __init__(self, tokens: list[object]) -> None:
        self.tokens = tokens
        self.i = 0

    def take(self) -> object:
        if self.i >= len(self.tokens):
            raise ImapSyntaxError("search criteria end too early")
        token = self.tokens[self.i]
        self.i += 1
        return token

    def all(self) -> Predicate:
        keys: list[Predicate] = []
        while self.i < len(self.tokens):
            keys.append(self.key())
        if not keys:
            raise ImapSyntaxError("no search criteria")
        return lambda c: all(k(c) for k in keys)

    def key(self) -> Predicate:
        token = self.take()
        if isinstance(token, list):
            inner = _Parser(token).all()
            return inner
        name = as_text(token).upper()
        if name == "ALL":
            return lambda c: True
        if name in _FLAG_KEYS:
            flag, wanted = _FLAG_KEYS[name]
            return lambda c: (flag in c.message.flags) is wanted
        if name in ("NEW", "RECENT"):
            return lambda c: False
        if name == "OLD":
            return lambda c: True
        if name in _HEADER_KEYS:
            header, needle = _HEADER_KEYS[name], as_text(self.take())
            return lambda c: _contains(_header_text(c.message, header), needle)
        if name == "HEADER":
            header, needle = as_text(self.take()), as_text(self.take())
            return lambda c: (
                header in c.message.headers and _contains(_header_text(c.message, header), needle)
            )
        if name in ("BODY", "TEXT"):
            needle = as_text(self.take())
            return lambda c: _contains(c.message.raw, needle)
        if name in ("SINCE", "BEFORE", "ON", "SENTSINCE", "SENTBEFORE", "SENTON"):
            return _date_key(name, as_text(self.take()))
        if name in ("LARGER", "SMALLER"):
            try:
                size = int(as_text(self.take()))
            except ValueError as exc:
                raise ImapSyntaxError("LARGER/SMALLER need a number") from exc
            if name == "LARGER":
                return lambda c: c.message.size > size
            return lambda c: c.message.size < size
        if name == "NOT":
            inner = self.key()
            return lambda c: not inner(c)
        if name == "OR":
            left, right = self.key(), self.key()
            return lambda c: left(c) or right(c)
        if name == "UID":
            text = as_text(self.take())
            return lambda c: in_ranges(c.message.uid, parse_sequence_set(text, c.max_uid))
        if name == "KEYWORD" or name == "UNKEYWORD":
            flag = as_text(self.take())
            wanted = name == "KEYWORD"
            return lambda c: (flag in c.message.flags) is wanted
        if isinstance(token, Atom) and _SEQUENCE.match(name):
            return lambda c: in_ranges(c.seq, parse_sequence_set(name, c.max_seq))
        raise ImapSyntaxError(f"unknown search key {name}")


def compile_search(tokens: list[object]) -> Predicate:
    """A predicate for the criteria (CHARSET already removed); ImapSyntaxError if bad."""
    return _Parser(tokens).all()


@dataclass(frozen=True)
class FetchItem:
    """One FETCH data item; ``section`` is set for ``BODY[...]`` forms."""

    name: str
    section: str | None = None
    fields: tuple[str, ...] = ()
    partial: tuple[int, int | None] | None = None
    peek: bool = False

    def response_name(self) -> str:
        """What the response calls the item, e.g. ``BODY[HEADER.FIELDS (SUBJECT)]<0>``."""
        if self.section is None:
            return self.name
        section = self.section
        if self.fields:
            section += " (" + " ".join(self.fields) + ")"
        origin = f"<{self.partial[0]}>" if self.partial else ""
        return f"BODY[{section}]{origin}"


_MACROS = {
    "ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
    "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
    "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"],
}
_SIMPLE = {
    "UID",
    "FLAGS",
    "RFC822.SIZE",
    "INTERNALDATE",
    "ENVELOPE",
    "BODYSTRUCTURE",
    "BODY",
    "RFC822",
    "RFC822.HEADER",
    "RFC822.TEXT",
}
_BODY = re.compile(
    r"^(BODY|BODY\.PEEK|BINARY|BINARY\.PEEK)\[([^\]]*)\](?:<(\d+)(?:\.(\d+))?>)?$", re.I
)
_FIELDS = re.compile(r"^(.*?)\s*\((.*)\)$", re.S)


def _item(text: str) -> FetchItem:
    upper = text.upper()
    if upper in _SIMPLE:
        return FetchItem(upper)
    found = _BODY.match(text)
    if found is None:
        raise ImapSyntaxError(f"unknown fetch item {text}")
    kind, section, origin, length = found.groups()
    fields: tuple[str, ...] = ()
    inner = _FIELDS.match(section)
    if inner is not None:
        section = inner.group(1)
        fields = tuple(f.strip('"').upper() for f in inner.group(2).split())
    partial = (int(origin), int(length) if length else None) if origin else None
    return FetchItem(
        "BODY", section.strip().upper(), fields, partial, kind.upper().endswith("PEEK")
    )


def parse_fetch_items(token: object) -> list[FetchItem]:
    """FETCH items of one token: an atom, a macro, or a parenthesised list."""
    if isinstance(token, list):
        items = [as_text(t) for t in token]
    else:
        name = as_text(token).upper()
        if name in _MACROS:
            return [FetchItem(n) for n in _MACROS[name]]
        items = [as_text(token)]
    if not items:
        raise ImapSyntaxError("no fetch items")
    return [_item(i) for i in items]
