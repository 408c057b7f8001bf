"""Attachments from raw MIME bytes the client already holds: a light splitter. Pure functions.

Bulk import fetches each whole message for its ``.eml`` anyway; splitting those bytes on the
MIME boundaries is far cheaper than asking the server for BODYSTRUCTURE and each part again
(Dovecot parses every message twice for that) and than a full :mod:`email` parse. Only the MIME
fields of part headers are read (parameters by the stdlib); bodies are sliced and decoded
(base64, quoted-printable).
Section numbers follow IMAP's, so results match :func:`imap_results.attachment_parts`.
"""

from __future__ import annotations

import binascii
import email.header
import email.utils
import quopri
import re
from email.errors import HeaderParseError
from email.message import Message

from mailgate.protocols.imap_results import AttachmentPart

__all__ = ["split_attachments"]

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_MIME_FIELDS = frozenset({b"content-type", b"content-disposition", b"content-transfer-encoding"})
MAX_DEPTH = 20  # nested multiparts deeper than this are treated as opaque


def _mime_headers(block: bytes) -> Message:
    """Only the MIME fields of a header block, in a ``Message`` for its parameter parsing.

    Unfolding and picking three fields by hand skips the full header parse of every part
    (most of the splitter's time on 10,000 messages); ``get_param``/``get_filename`` still do
    the RFC 2045/2231 work on what is kept.
    """
    message = Message()
    for line in _FOLD.sub(b"", block).splitlines():
        name, colon, value = line.partition(b":")
        key = name.strip().lower()
        if colon and key in _MIME_FIELDS:
            message[key.decode("ascii")] = value.strip().decode("ascii", "surrogateescape")
    return message


def _headers(part: bytes) -> tuple[Message, bytes]:
    if part.startswith((b"\r\n", b"\n")):  # no headers at all: body follows at once
        return Message(), part[2 if part.startswith(b"\r\n") else 1 :]
    match = _HEADER_END.search(part)
    if not match:
        return _mime_headers(part), b""
    return _mime_headers(part[: match.start()]), part[match.end() :]


def _filename(headers: Message) -> str | None:
    name = headers.get_filename() or headers.get_param("name")
    if isinstance(name, tuple):  # RFC 2231 triple from get_param
        name = email.utils.collapse_rfc2231_value(name)
    if not isinstance(name, str):
        return None
    if "=?" in name:
        try:
            return str(email.header.make_header(email.header.decode_header(name)))
        except (ValueError, LookupError, UnicodeError, HeaderParseError):
            return name
    return name


def _decode(body: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        try:
            return binascii.a2b_base64(body)
        except binascii.Error:
            return body
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    return body


def _children(body: bytes, boundary: bytes) -> list[bytes]:
    delimiter = b"--" + boundary
    pieces = body.split(delimiter)
    children: list[bytes] = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):  # close delimiter: the epilogue follows
            break
        # Drop the rest of the delimiter line and the CRLF that belongs to the next delimiter.
        start = piece.find(b"\n") + 1
        end = len(piece) - (2 if piece.endswith(b"\r\n") else 1 if piece.endswith(b"\n") else 0)
        children.append(piece[start:end])
    return children


def split_attachments(raw: bytes) -> list[tuple[AttachmentPart, bytes]]:
    """The attachments of one RFC 822 message with their decoded bytes, depth-first."""
    headers, body = _headers(raw)
    return _walk(headers, body, "", 0)


def _walk(
    headers: Message, body: bytes, section: str, depth: int
) -> list[tuple[AttachmentPart, bytes]]:
    content_type = headers.get_content_type()
    if content_type.startswith("multipart/") and depth < MAX_DEPTH:
        boundary = headers.get_boundary()
        if not boundary:
            return []
        found: list[tuple[AttachmentPart, bytes]] = []
        for index, child in enumerate(_children(body, boundary.encode("utf-8", "replace"))):
            child_headers, child_body = _headers(child)
            child_section = f"{section}.{index + 1}" if section else str(index + 1)
            found += _walk(child_headers, child_body, child_section, depth + 1)
        return found
    filename = _filename(headers)
    disposition = (headers.get_content_disposition() or "").lower()
    is_body_text = content_type in ("text/plain", "text/html") and filename is None
    if disposition != "attachment" and (filename is None or is_body_text):
        return []
    encoding = str(headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()
    part = AttachmentPart(section or "1", content_type, filename, encoding, len(body))
    return [(part, _decode(body, encoding))]
