"""MIME structure of stored messages for IMAP FETCH: ENVELOPE, BODYSTRUCTURE, body sections.

:func:`scan` walks the raw bytes once and records *offsets* of every part's header and body
(boundaries found with ``bytes.find``), so a section of a 50 MB message is one slice and
the message is never decoded to a ``str``. Only header blocks go through the stdlib parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses

from mailgate.sandbox.imap.codec import ImapSyntaxError, quote, render_list

__all__ = ["MimePart", "body_section", "bodystructure", "envelope", "scan"]


@dataclass
class MimePart:
    """Offsets of one entity in the raw message; ``children`` for multiparts."""

    header_start: int
    body_start: int
    body_end: int
    headers: Message
    children: list[MimePart] = field(default_factory=list)

    @property
    def maintype(self) -> str:
        """e.g. ``text``."""
        return self.headers.get_content_maintype()

    @property
    def subtype(self) -> str:
        """e.g. ``plain``."""
        return self.headers.get_content_subtype()


def _header_end(raw: bytes, start: int, end: int) -> int:
    if raw.startswith(b"\r\n", start):
        return start + 2
    found = raw.find(b"\r\n\r\n", start, end)
    return end if found < 0 else found + 4


def _parse_headers(raw: bytes, start: int, stop: int) -> Message:
    return BytesHeaderParser(policy=compat32).parsebytes(raw[start:stop])


def scan(raw: bytes, start: int = 0, end: int | None = None, depth: int = 0) -> MimePart:
    """The MIME tree of ``raw[start:end]``."""
    stop = len(raw) if end is None else end
    body_start = _header_end(raw, start, stop)
    part = MimePart(start, body_start, stop, _parse_headers(raw, start, body_start))
    boundary = part.headers.get_param("boundary") if part.maintype == "multipart" else None
    if not isinstance(boundary, str) or depth > 20:
        return part
    delimiter = b"--" + boundary.encode("ascii", "replace")
    if raw.startswith(delimiter, body_start):
        position = body_start
    else:
        found = raw.find(b"\r\n" + delimiter, body_start, stop)
        if found < 0:
            return part
        position = found + 2
    while True:
        after = position + len(delimiter)
        if raw.startswith(b"--", after):
            break
        line_end = raw.find(b"\r\n", after, stop)
        if line_end < 0:
            break
        child_start = line_end + 2
        following = raw.find(b"\r\n" + delimiter, child_start, stop)
        child_end = stop if following < 0 else following
        part.children.append(scan(raw, child_start, child_end, depth + 1))
        if following < 0:
            break
        position = following + 2
    return part


def _nstring(value: str | None) -> bytes:
    return b"NIL" if value is None else quote(value)


def _unfold(value: str | None) -> str | None:
    return None if value is None else re.sub(r"\r?\n[ \t]", " ", str(value)).strip()


def _addresses(headers: Message, name: str) -> bytes:
    values = headers.get_all(name)
    if not values:
        return b"NIL"
    items = []
    for display, address in getaddresses([_unfold(v) or "" for v in values]):
        if not address and not display:
            continue
        local, _, host = address.rpartition("@") if "@" in address else (address, "", "")
        items.append(
            render_list(
                [_nstring(display or None), b"NIL", _nstring(local), _nstring(host or None)]
            )
        )
    return render_list(items) if items else b"NIL"


def envelope(part: MimePart) -> bytes:
    """The ENVELOPE of a message (RFC 3501 section 7.4.2)."""
    h = part.headers
    sender = "Sender" if h.get("Sender") else "From"
    reply_to = "Reply-To" if h.get("Reply-To") else "From"
    return render_list(
        [
            _nstring(_unfold(h.get("Date"))),
            _nstring(_unfold(h.get("Subject"))),
            _addresses(h, "From"),
            _addresses(h, sender),
            _addresses(h, reply_to),
            _addresses(h, "To"),
            _addresses(h, "Cc"),
            _addresses(h, "Bcc"),
            _nstring(_unfold(h.get("In-Reply-To"))),
            _nstring(_unfold(h.get("Message-ID"))),
        ]
    )


def _params(pairs: list[tuple[str, str]] | None) -> bytes:
    if not pairs:
        return b"NIL"
    out: list[bytes] = []
    for key, value in pairs:
        out += [quote(key.upper()), quote(str(value))]
    return render_list(out)


def _disposition(headers: Message) -> bytes:
    value = headers.get("Content-Disposition")
    if value is None:
        return b"NIL"
    kind = str(value).split(";")[0].strip().upper()
    params = headers.get_params(header="content-disposition") or []
    return render_list([quote(kind), _params([(k, str(v)) for k, v in params[1:]])])


def bodystructure(raw: bytes, part: MimePart, extended: bool = True) -> bytes:
    """BODYSTRUCTURE (``extended``) or BODY of a part (RFC 3501 section 7.4.2)."""
    h = part.headers
    if part.children:
        items = [bodystructure(raw, c, extended) for c in part.children]
        inner = b"".join(items) + b" " + quote(part.subtype.upper())
        if extended:
            params = [(k, str(v)) for k, v in (h.get_params() or [])[1:]]
            inner += b" " + _params(params) + b" " + _disposition(h) + b" NIL NIL"
        return b"(" + inner + b")"
    params = [(k, str(v)) for k, v in (h.get_params() or [])[1:]]
    if h.get_content_type() == "text/plain" and not params and not h.get("Content-Type"):
        params = [("charset", "us-ascii")]
    size = part.body_end - part.body_start
    fields = [
        quote(part.maintype.upper()),
        quote(part.subtype.upper()),
        _params(params),
        _nstring(_unfold(h.get("Content-ID"))),
        _nstring(_unfold(h.get("Content-Description"))),
        quote((_unfold(h.get("Content-Transfer-Encoding")) or "7BIT").upper()),
        str(size).encode(),
    ]
    if part.maintype == "text":
        fields.append(str(raw.count(b"\n", part.body_start, part.body_end)).encode())
    if extended:
        fields += [b"NIL", _disposition(h), b"NIL", b"NIL"]
    return render_list(fields)


def _part(root: MimePart, numbers: list[int]) -> MimePart:
    part = root
    for number in numbers:
        if not part.children:
            # A non-multipart entity has exactly one part: its own body.
            if number != 1:
                raise ImapSyntaxError("no such body part")
            continue
        if not 1 <= number <= len(part.children):
            raise ImapSyntaxError("no such body part")
        part = part.children[number - 1]
    return part


def _header_fields(raw: bytes, part: MimePart, names: set[str], exclude: bool) -> bytes:
    block = raw[part.header_start : part.body_start]
    lines = re.split(rb"\r\n(?![ \t])", block.rstrip(b"\r\n"))
    kept = []
    for line in lines:
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").upper()
        if line and ((name in names) != exclude):
            kept.append(line + b"\r\n")
    return b"".join(kept) + b"\r\n"


def body_section(raw: bytes, section: str, fields: list[str]) -> bytes:
    """The bytes of ``BODY[section]``; ``fields`` for HEADER.FIELDS[.NOT]; ImapSyntaxError.

    ``BODY[]`` is ``raw`` itself (no copy); other sections are slices.
    """
    if not section:
        return raw
    root = scan(raw)
    parts = section.split(".")
    numbers: list[int] = []
    while parts and parts[0].isdigit():
        numbers.append(int(parts.pop(0)))
    rest = ".".join(parts).upper()
    part = _part(root, numbers)
    if rest == "":
        if not numbers:
            return raw
        return raw[part.body_start : part.body_end]
    if rest == "MIME" and numbers:
        return raw[part.header_start : part.body_start]
    if rest == "HEADER":
        return raw[part.header_start : part.body_start]
    if rest == "TEXT":
        return raw[part.body_start : part.body_end]
    if rest in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        return _header_fields(raw, part, {f.upper() for f in fields}, rest.endswith(".NOT"))
    raise ImapSyntaxError(f"unknown section {section!r}")
