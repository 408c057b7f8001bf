"""A message made ready for the outbox: final MIME bytes, stable Message-ID, envelope.

The outbox stores exactly the bytes it will submit, built once: every attempt (and a check of
Sent Items after a crash) then refers to the same Message-ID. :func:`prepare_outgoing` accepts an
:class:`~mailgate.mail.compose.OutgoingMessage` (built by :func:`build_message`) or raw RFC 5322
bytes from a caller's own composer, which it checks rather than trusts:

- the header section must parse (a blank line ends it; no NUL bytes or bare non-header lines);
- ``From`` must hold one address (it becomes the envelope sender unless one is given);
- the recipients are To, Cc and Bcc (or the ones given); a ``Bcc`` header is removed from the
  stored bytes, since SMTP would show it to every recipient, and kept in the envelope;
- a missing ``Message-ID`` is added, on the sender's domain;
- the size must not exceed ``max_size`` (Exchange refuses larger messages at submission anyway,
  so refusing at enqueue tells the caller while they are still there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import errors as email_errors
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, make_msgid, parseaddr

from mailgate.errors import InvalidInputError
from mailgate.mail.compose import OutgoingMessage, build_message

__all__ = ["PreparedMessage", "prepare_outgoing"]

_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
_BCC_HEADER = re.compile(rb"^bcc:", re.IGNORECASE)
_SEPARATOR = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class PreparedMessage:
    """What the outbox persists for one message."""

    mime: bytes
    message_id: str
    envelope_from: str
    recipients: tuple[str, ...]


def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Header section, the blank line after it, body (separator empty if there is none)."""
    match = _SEPARATOR.search(raw)
    if match is None:
        return raw, b"", b""
    return raw[: match.start()], match.group(), raw[match.end() :]


def _damaged(why: str) -> InvalidInputError:
    return InvalidInputError("message", f"an RFC 5322 message ({why})")


def _header_lines(head: bytes) -> list[bytes]:
    """Logical header lines (continuations folded into their header), checked."""
    lines: list[bytes] = []
    for line in head.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b"\n" + line
        elif _HEADER_LINE.match(line):
            lines.append(line)
        else:
            shown = line[:40].decode("ascii", "replace")
            raise _damaged(f"line {shown!r} in the header section is not a header")
    return lines


def _addresses(values: Sequence[str]) -> list[str]:
    found: dict[str, str] = {}
    for _, address in getaddresses(list(values)):
        if address and "@" in address:
            found.setdefault(address.lower(), address)
    return list(found.values())


def prepare_outgoing(
    source: OutgoingMessage | bytes,
    *,
    max_size: int,
    envelope_from: str | None = None,
    recipients: Sequence[str] | None = None,
    now: datetime | None = None,
) -> PreparedMessage:
    """Build or check the message; raises :class:`InvalidInputError` naming what is wrong."""
    if isinstance(source, OutgoingMessage):
        raw = build_message(source, now).as_bytes()
        recipients = recipients or source.recipients
    else:
        raw = bytes(source)
    if not raw.strip():
        raise _damaged("it is empty")
    head, sep, body = _split(raw)
    if not sep:  # headers only, no body: fine if every line is a header (checked below)
        head = raw.rstrip(b"\r\n")
        sep = b"\r\n\r\n" if b"\r\n" in raw else b"\n\n"
    if not head.strip():
        raise _damaged("it has no header section")
    if b"\x00" in head:
        raise _damaged("NUL bytes in the header section")
    lines = _header_lines(head)
    parser = BytesHeaderParser(policy=compat32)
    headers = parser.parsebytes(b"\n".join(lines) + b"\n\n")
    if any(isinstance(d, email_errors.MessageDefect) for d in headers.defects):
        raise _damaged("its headers cannot be parsed")
    senders = _addresses([str(v) for v in headers.get_all("From", [])])
    if len(senders) != 1:
        raise _damaged("it needs exactly one From address")
    if envelope_from is None:
        envelope_from = parseaddr(senders[0])[1]
    listed = [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
    envelope = _addresses(list(recipients) if recipients else listed)
    if not envelope:
        raise InvalidInputError("to", "at least one recipient (To, Cc or Bcc)")
    newline = b"\r\n" if b"\r\n" in head else b"\n"
    kept = [line for line in lines if not _BCC_HEADER.match(line)]
    changed = len(kept) != len(lines)
    message_id = str(headers.get("Message-ID", "") or "").strip()
    if not message_id:
        domain = envelope_from.rpartition("@")[2] or "localhost"
        message_id = make_msgid(domain=domain)
        kept.insert(0, b"Message-ID: " + message_id.encode("ascii"))
        changed = True
    if len(message_id) > 998:
        raise _damaged("its Message-ID is longer than 998 characters")
    if changed:
        head = newline.join(line.replace(b"\n", newline) for line in kept)
    mime = head + sep + body
    if len(mime) > max_size:
        raise InvalidInputError(
            "message",
            f"at most {max_size} bytes (outbox.max_message_size; Exchange refuses larger "
            "messages); share large files as links",
            f"{len(mime)} bytes",
        )
    return PreparedMessage(mime, message_id, envelope_from, tuple(envelope))
