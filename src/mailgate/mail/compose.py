"""Building outgoing messages with Python's ``email`` package, refusing header injection.

Every header value a user gives (subject, addresses, reply-to) is checked for CR/LF and NUL
before it reaches the MIME builder: ``email`` would fold or reject some of these silently, and a
value with a line break is how header injection starts. Attachments keep their bytes as given;
their names are sanitised (no path components) because recipients' clients may save them.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from pathlib import Path

from mailgate.errors import InvalidInputError
from mailgate.mail.filenames import safe_filename

__all__ = [
    "Attachment",
    "OutgoingMessage",
    "build_message",
    "check_header_value",
    "parse_addresses",
]


def check_header_value(field_name: str, value: str) -> str:
    """``value`` if it has no CR, LF or NUL; otherwise an error naming the field."""
    if any(ch in value for ch in "\r\n\x00"):
        raise InvalidInputError(field_name, "a single line (no CR, LF or NUL characters)")
    return value


def parse_addresses(field_name: str, values: Sequence[str]) -> list[str]:
    """Addresses from ``values`` (each may hold several, comma-separated, with display names)."""
    result: list[str] = []
    for value in values:
        check_header_value(field_name, value)
        for name, address in getaddresses([value]):
            if "@" not in address or address.startswith("@") or address.endswith("@"):
                raise InvalidInputError(
                    field_name, "e-mail addresses such as 'Name <inbox@contoso.com>'", value
                )
            result.append(formataddr((name, address)) if name else address)
    return result


@dataclass(frozen=True)
class Attachment:
    """A file to attach: its name as the recipient sees it, its type, its bytes."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"

    @classmethod
    def from_path(cls, path: Path) -> Attachment:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInputError("attachment", "a readable file", str(path)) from exc
        guessed, _ = mimetypes.guess_type(path.name)
        return cls(path.name, data, guessed or "application/octet-stream")


@dataclass(frozen=True)
class OutgoingMessage:
    """What ``mailgate send`` and the outbox send."""

    sender: str
    to: tuple[str, ...]
    subject: str = ""
    text: str | None = None
    html: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    message_id: str | None = None
    headers: tuple[tuple[str, str], ...] = field(default=())

    @property
    def recipients(self) -> list[str]:
        """Envelope recipients: To, Cc and Bcc, bare addresses, each once."""
        seen: dict[str, None] = {}
        for value in (*self.to, *self.cc, *self.bcc):
            for _, address in getaddresses([value]):
                seen.setdefault(address.lower(), None)
        return list(seen)


def build_message(message: OutgoingMessage, now: datetime | None = None) -> EmailMessage:
    """The MIME message (Bcc is not a header; it only reaches the envelope)."""
    sender = parse_addresses("from", [message.sender])
    to = parse_addresses("to", message.to)
    cc = parse_addresses("cc", message.cc)
    parse_addresses("bcc", message.bcc)
    reply_to = parse_addresses("reply-to", message.reply_to)
    if not (to or cc or message.bcc):
        raise InvalidInputError("to", "at least one recipient (--to, --cc or --bcc)")
    mime = EmailMessage(policy=SMTP)
    mime["From"] = sender[0]
    if to:
        mime["To"] = ", ".join(to)
    if cc:
        mime["Cc"] = ", ".join(cc)
    if reply_to:
        mime["Reply-To"] = ", ".join(reply_to)
    mime["Subject"] = check_header_value("subject", message.subject)
    mime["Date"] = format_datetime(now or datetime.now(UTC))
    domain = sender[0].rsplit("@", 1)[-1].rstrip(">")
    mime["Message-ID"] = check_header_value(
        "message-id", message.message_id or make_msgid(domain=domain)
    )
    for name, value in message.headers:
        mime[check_header_value("header name", name)] = check_header_value(name, value)
    text = message.text if message.text is not None else ("" if message.html is None else None)
    if text is not None:
        mime.set_content(text)
    if message.html is not None:
        if text is None:
            mime.set_content(message.html, subtype="html")
        else:
            mime.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        mime.add_attachment(
            attachment.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=safe_filename(attachment.filename),
        )
    return mime
