"""IMAP command arguments: quoting, literals, sequence sets, dates, SEARCH keys. Pure functions.

A command is a list of *parts*: ``bytes`` go on the wire as they are, :class:`Literal` becomes
``{n}`` (or ``{n+}`` with LITERAL+) plus its bytes after the server's go-ahead. The connection
does that dance; everything here only builds values, so every quoting rule is unit-tested.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailgate.protocols.base import SearchCriteria
from mailgate.protocols.imap.utf7 import encode_mailbox_name

__all__ = [
    "Literal",
    "Part",
    "SearchPlan",
    "astring",
    "imap_date",
    "join_parts",
    "mailbox_argument",
    "search_plan",
    "sequence_set",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, repr=False)
class Literal:
    """Bytes sent as an IMAP literal (message bodies, strings with CR/LF or 8-bit)."""

    data: bytes

    def __repr__(self) -> str:  # message bodies can be large and private
        return f"Literal({len(self.data)} bytes)"


Part = bytes | Literal


def astring(value: str) -> Part:
    """A string argument: quoted when ASCII without CR/LF, a literal otherwise."""
    raw = value.encode("utf-8")
    if any(b > 0x7E or b in (0x0D, 0x0A, 0x00) for b in raw):
        return Literal(raw)
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def mailbox_argument(name: str, delimiter: str | None) -> bytes:
    """A user's folder path (``/``-separated) as the quoted, modified-UTF-7 wire name."""
    if name.upper() == "INBOX":
        return b'"INBOX"'
    wire = name.replace("/", delimiter) if delimiter and delimiter != "/" else name
    quoted = astring(encode_mailbox_name(wire))
    assert isinstance(quoted, bytes)  # modified UTF-7 is 7-bit
    return quoted


def sequence_set(uids: Iterable[int]) -> bytes:
    """``[1, 2, 3, 7, 9, 10]`` → ``b"1:3,7,9:10"``; ValueError when empty."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an IMAP sequence set needs at least one number")
    ranges: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid != prev + 1:
            ranges.append(f"{start}:{prev}" if prev != start else str(start))
            start = uid
        prev = uid
    ranges.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(ranges).encode("ascii")


def imap_date(when: datetime) -> bytes:
    """An aware datetime as the IMAP ``date`` of its UTC day: ``b"05-Jan-2024"``."""
    day = when.astimezone(UTC)
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}".encode("ascii")


@dataclass(frozen=True)
class SearchPlan:
    """The ``UID SEARCH`` arguments and what must still be checked on the client.

    IMAP dates are whole days, so SINCE/BEFORE select a superset and ``exact_since`` /
    ``exact_before`` say to filter by INTERNALDATE; SEARCH has no key for attachments, so
    ``has_attachments`` is checked against BODYSTRUCTURE.
    """

    arguments: list[Part]
    exact_since: datetime | None = None
    exact_before: datetime | None = None
    has_attachments: bool | None = None

    @property
    def needs_fetch(self) -> bool:
        return bool(self.exact_since or self.exact_before or self.has_attachments is not None)


def _midnight(when: datetime) -> bool:
    utc = when.astimezone(UTC)
    return (utc.hour, utc.minute, utc.second, utc.microsecond) == (0, 0, 0, 0)


def search_plan(criteria: SearchCriteria) -> SearchPlan:
    """Build ``UID SEARCH`` arguments (with ``CHARSET UTF-8`` when a value is not ASCII)."""
    keys: list[Part] = []
    if criteria.unread is True:
        keys.append(b"UNSEEN")
    elif criteria.unread is False:
        keys.append(b"SEEN")
    if criteria.from_address:
        keys += [b"FROM", astring(criteria.from_address)]
    if criteria.subject_contains:
        keys += [b"SUBJECT", astring(criteria.subject_contains)]
    exact_since = exact_before = None
    for name, value in (("since", criteria.since), ("before", criteria.before)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"SearchCriteria.{name} must be an aware datetime")
    if criteria.since is not None:
        keys += [b"SINCE", imap_date(criteria.since)]
        exact_since = None if _midnight(criteria.since) else criteria.since
    if criteria.before is not None:
        if _midnight(criteria.before):
            keys += [b"BEFORE", imap_date(criteria.before)]
        else:  # BEFORE excludes the whole day; take the next one and filter exactly
            keys += [b"BEFORE", imap_date(criteria.before + timedelta(days=1))]
            exact_before = criteria.before
    if not keys:
        keys.append(b"ALL")
    if any(isinstance(k, Literal) for k in keys):
        keys = [b"CHARSET", b"UTF-8", *keys]
    return SearchPlan(keys, exact_since, exact_before, criteria.has_attachments)


def join_parts(parts: Sequence[Part]) -> list[Part]:
    """Space-separate parts, merging adjacent bytes so literals stay separate elements."""
    out: list[Part] = []
    for i, part in enumerate(parts):
        if i:
            out.append(b" ")
        out.append(part)
    merged: list[Part] = []
    for part in out:
        if isinstance(part, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + part
        else:
            merged.append(part)
    return merged
