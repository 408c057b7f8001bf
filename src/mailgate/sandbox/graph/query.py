"""Pure parsing of the Graph query options the sandbox supports, and message matching.

Graph's OData subset for ``/messages`` (design/microsoft-facts.md §5)::

    $filter   isRead eq true|false, hasAttachments eq true|false,
              from/emailAddress/address eq '...', contains(subject,'...'),
              receivedDateTime ge|gt|le|lt 2026-11-01T00:00:00Z, joined with ``and``
    $select   comma-separated top-level message properties (``id`` always comes back)
    $top      1..1000, default 10;  $skip  >= 0;  $skiptoken  opaque (ours: an offset)
    $orderby  receivedDateTime desc|asc (default desc)

A filter is a conjunction of :class:`Condition`; EWS restrictions compile to the same shape
(:mod:`mailgate.sandbox.ews.restriction`), so :func:`matches` serves both protocols. Errors
are :class:`QueryError` carrying the Graph error code, so the router only renders them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

__all__ = [
    "DEFAULT_TOP",
    "MAX_TOP",
    "MESSAGE_PROPERTIES",
    "Condition",
    "Field",
    "Filter",
    "MessageFacts",
    "Op",
    "QueryError",
    "QueryOptions",
    "Value",
    "decode_skiptoken",
    "encode_skiptoken",
    "matches",
    "page_link",
    "parse_datetime",
    "parse_filter",
    "parse_options",
    "parse_select",
]

MAX_TOP = 1000
DEFAULT_TOP = 10

Field = Literal["isRead", "hasAttachments", "receivedDateTime", "from", "subject"]
Op = Literal["eq", "ne", "ge", "gt", "le", "lt", "contains"]
Value = bool | str | datetime

# Everything the sandbox renders for a message; $select may name any of these.
MESSAGE_PROPERTIES = (
    "id",
    "changeKey",
    "createdDateTime",
    "lastModifiedDateTime",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "isRead",
    "isDraft",
    "webLink",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
    "categories",
)


class QueryError(ValueError):
    """A query option Graph would refuse: ``code`` is the Graph error code (HTTP 400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Condition:
    """One comparison of a message property with a literal."""

    field: Field
    op: Op
    value: Value


Filter = tuple[Condition, ...]


@dataclass(frozen=True)
class MessageFacts:
    """The properties a filter can test, taken from a stored message."""

    is_read: bool
    has_attachments: bool
    received: datetime
    from_address: str
    subject: str


@dataclass(frozen=True)
class QueryOptions:
    """The parsed query options of one list request."""

    filter: Filter = ()
    select: tuple[str, ...] | None = None
    top: int = DEFAULT_TOP
    skip: int = 0
    descending: bool = True


# -- $filter ----------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<date>\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_/]*)|(?P<punct>[(),]))"
)
_COMPARISONS = {"eq", "ne", "ge", "gt", "le", "lt"}
_PROPERTIES: dict[str, Field] = {
    "isread": "isRead",
    "hasattachments": "hasAttachments",
    "receiveddatetime": "receivedDateTime",
    "from/emailaddress/address": "from",
    "subject": "subject",
}
# Which operators each property accepts (Graph refuses e.g. `isRead gt true`).
_ALLOWED: dict[Field, set[str]] = {
    "isRead": {"eq", "ne"},
    "hasAttachments": {"eq", "ne"},
    "receivedDateTime": {"ge", "gt", "le", "lt", "eq"},
    "from": {"eq"},
    "subject": {"eq", "contains"},
}


def _invalid(detail: str) -> QueryError:
    return QueryError("BadRequest", f"Invalid filter clause: {detail}")


def _unsupported() -> QueryError:
    return QueryError(
        "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
    )


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise _invalid(f"syntax error at position {pos} in '{text}'.")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 date-time as Graph writes it (``Z`` or an offset); naive means UTC."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _invalid(f"'{text}' is not a valid DateTimeOffset.") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _literal(kind: str, text: str) -> Value:
    if kind == "str":
        return text[1:-1].replace("''", "'")
    if kind == "date":
        return parse_datetime(text)
    if kind == "word" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise _invalid(f"'{text}' is not a literal.")


def _check(field: Field, op: str, value: Value) -> Condition:
    if op not in _ALLOWED[field]:
        raise _unsupported()
    expected: type = {
        "isRead": bool,
        "hasAttachments": bool,
        "receivedDateTime": datetime,
        "from": str,
        "subject": str,
    }[field]
    if not isinstance(value, expected):
        raise _invalid(f"a {expected.__name__} literal is needed for {field}.")
    return Condition(field, op, value)  # type: ignore[arg-type]


def parse_filter(text: str) -> Filter:
    """Parse a ``$filter`` expression of the supported subset; QueryError otherwise."""
    tokens = _tokenize(text)
    if not tokens:
        raise _invalid("the filter is empty.")
    conditions: list[Condition] = []
    pos = 0

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise _invalid(f"unexpected end of '{text}'.")
        pos += 1
        return tokens[pos - 1]

    while True:
        kind, word = take()
        if kind == "punct" and word == "(":
            raise _unsupported()  # grouping only matters with `or`, which is not supported
        if kind == "word" and word.lower() == "contains":
            if take() != ("punct", "("):
                raise _invalid("contains needs '('.")
            prop = take()[1].lower()
            if take() != ("punct", ","):
                raise _invalid("contains takes two arguments.")
            lit_kind, lit = take()
            if take() != ("punct", ")"):
                raise _invalid("contains takes two arguments.")
            if prop not in _PROPERTIES:
                raise _unsupported()
            conditions.append(_check(_PROPERTIES[prop], "contains", _literal(lit_kind, lit)))
        elif kind == "word" and word.lower() in ("not", "or"):
            raise _unsupported()
        elif kind == "word":
            field = _PROPERTIES.get(word.lower())
            op_kind, op = take()
            if op_kind != "word" or op.lower() not in _COMPARISONS:
                raise _invalid(f"expected a comparison after '{word}'.")
            lit_kind, lit = take()
            if field is None:
                raise QueryError(
                    "BadRequest",
                    f"Could not find a property named '{word}' on type 'microsoft.graph.message'.",
                )
            conditions.append(_check(field, op.lower(), _literal(lit_kind, lit)))
        else:
            raise _invalid(f"unexpected '{word}'.")
        if pos == len(tokens):
            return tuple(conditions)
        kind, word = take()
        if kind != "word" or word.lower() != "and":
            if kind == "word" and word.lower() in ("or", "not"):
                raise _unsupported()
            raise _invalid(f"expected 'and', got '{word}'.")


def _compare(op: Op, left: Value, right: Value) -> bool:
    if op == "eq":
        return left == right
    if op == "ne":
        return left != right
    if op == "contains":
        return isinstance(left, str) and isinstance(right, str) and right.lower() in left.lower()
    if not isinstance(left, datetime) or not isinstance(right, datetime):
        return False
    return {"ge": left >= right, "gt": left > right, "le": left <= right, "lt": left < right}[op]


def matches(conditions: Filter, facts: MessageFacts) -> bool:
    """True if the message satisfies every condition."""
    for cond in conditions:
        values: dict[str, Value] = {
            "isRead": facts.is_read,
            "hasAttachments": facts.has_attachments,
            "receivedDateTime": facts.received,
            "from": facts.from_address.lower(),
            "subject": facts.subject,
        }
        actual = values[cond.field]
        expected = cond.value.lower() if cond.field == "from" else cond.value  # type: ignore[union-attr]
        if not _compare(cond.op, actual, expected):
            return False
    return True


# -- $select, $top, $skip, $skiptoken, $orderby -----------------------------------------------


def parse_select(text: str, known: Sequence[str] = MESSAGE_PROPERTIES) -> tuple[str, ...]:
    """The properties named by ``$select`` in Graph's spelling; unknown names are a 400."""
    by_lower = {name.lower(): name for name in known}
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if not name:
            continue
        canonical = by_lower.get(name.lower())
        if canonical is None:
            raise QueryError(
                "RequestBroker--ParseUri",
                f"Could not find a property named '{name}' on type 'microsoft.graph.message'.",
            )
        if canonical not in chosen:
            chosen.append(canonical)
    return tuple(chosen)


def encode_skiptoken(offset: int) -> str:
    """An opaque ``$skiptoken`` for the page starting at ``offset``."""
    raw = json.dumps({"v": 1, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str) -> int:
    """The offset in a token from :func:`encode_skiptoken`; QueryError if it is not one."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = data["o"]
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise QueryError("BadRequest", "The $skiptoken is invalid.") from exc
    if not isinstance(offset, int) or offset < 0:
        raise QueryError("BadRequest", "The $skiptoken is invalid.")
    return offset


def _int_option(name: str, text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise QueryError("BadRequest", f"Invalid value '{text}' for {name}.") from exc
    if value < low or (high is not None and value > high):
        limit = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise QueryError("BadRequest", f"The value of {name} must be {limit}.")
    return value


def parse_options(params: Sequence[tuple[str, str]]) -> QueryOptions:
    """Parse the query options of a message list request (unknown ``$`` options are a 400)."""
    values = dict(params)
    for name in values:
        if name.startswith("$") and name not in (
            "$filter",
            "$select",
            "$top",
            "$skip",
            "$skiptoken",
            "$orderby",
            "$count",
        ):
            raise QueryError("BadRequest", f"Query option '{name}' is not supported.")
    descending = True
    if "$orderby" in values:
        order = " ".join(values["$orderby"].split()).lower()
        if order not in ("receiveddatetime", "receiveddatetime desc", "receiveddatetime asc"):
            raise QueryError("BadRequest", f"The $orderby '{values['$orderby']}' is not supported.")
        descending = order.endswith("desc")  # a bare property sorts ascending in OData
    skip = _int_option("$skip", values["$skip"], 0) if "$skip" in values else 0
    if "$skiptoken" in values:
        skip = decode_skiptoken(values["$skiptoken"])
    return QueryOptions(
        filter=parse_filter(values["$filter"]) if values.get("$filter", "").strip() else (),
        select=parse_select(values["$select"]) if "$select" in values else None,
        top=_int_option("$top", values["$top"], 1, MAX_TOP) if "$top" in values else DEFAULT_TOP,
        skip=skip,
        descending=descending,
    )


def page_link(url: str, params: Sequence[tuple[str, str]], offset: int) -> str:
    """The absolute ``@odata.nextLink``: the same request with a skiptoken for ``offset``."""
    kept = [(k, v) for k, v in params if k not in ("$skip", "$skiptoken")]
    kept.append(("$skiptoken", encode_skiptoken(offset)))
    return f"{url}?{urlencode(kept, safe='$/,:')}"
