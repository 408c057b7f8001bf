"""Pure mapping between stored RFC 822 messages and Graph's JSON shapes.

:func:`parse_mail` reads what both Graph and EWS show of a message (addresses with names,
dates, the text or HTML body, attachments); :func:`message_json` renders a ``microsoft.graph.
message``; :func:`folder_json` a ``mailFolder``; :func:`error_body` Graph's error envelope;
:func:`mime_from_json` turns a ``sendMail`` JSON message into RFC 822 bytes for delivery.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any

__all__ = [
    "PREVIEW_CHARS",
    "Address",
    "FolderView",
    "MessageView",
    "ParsedMail",
    "error_body",
    "folder_json",
    "graph_datetime",
    "html_text",
    "message_json",
    "mime_from_json",
    "parse_mail",
    "preview",
    "project",
]

PREVIEW_CHARS = 255


@dataclass(frozen=True)
class Address:
    """A mailbox as Graph's ``emailAddress`` shows it."""

    name: str
    address: str

    def json(self) -> dict[str, Any]:
        """``{"emailAddress": {"name", "address"}}``."""
        return {"emailAddress": {"name": self.name or self.address, "address": self.address}}


@dataclass(frozen=True)
class ParsedMail:
    """What Graph and EWS show of a message's headers and body."""

    subject: str
    sender: Address | None
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    sent: datetime | None
    message_id: str
    body_type: str  # "html" or "text"
    body: str
    text: str  # plain text for previews
    has_attachments: bool


@dataclass(frozen=True)
class MessageView:
    """One stored message with its place in the store."""

    item_id: str
    change_key: str
    folder_id: str
    raw: bytes
    is_read: bool
    flagged: bool
    received: datetime


@dataclass(frozen=True)
class FolderView:
    """One folder with its counts."""

    folder_id: str
    display_name: str
    parent_id: str
    child_count: int
    unread: int
    total: int
    size: int = 0


class _TextOf(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(html: str) -> str:
    reader = _TextOf()
    reader.feed(html)
    return " ".join(reader.parts)


def _addresses(values: list[str]) -> tuple[Address, ...]:
    return tuple(
        Address(name, addr) for name, addr in email.utils.getaddresses(values) if addr or name
    )


def _first(values: list[str]) -> Address | None:
    found = _addresses(values)
    return found[0] if found else None


def _header_values(msg: EmailMessage, name: str) -> list[str]:
    return [str(v) for v in msg.get_all(name, [])]


@functools.lru_cache(maxsize=512)
def parse_mail(raw: bytes) -> ParsedMail:
    """Parse a message once (cached by content) for rendering in Graph or EWS."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    sent = None
    if msg["Date"]:
        try:
            sent = email.utils.parsedate_to_datetime(str(msg["Date"]))
        except (TypeError, ValueError):
            sent = None
        if sent is not None and sent.tzinfo is None:
            sent = sent.replace(tzinfo=UTC)
    html_part = msg.get_body(preferencelist=("html",))
    text_part = msg.get_body(preferencelist=("plain",))
    html = _content(html_part)
    text = _content(text_part)
    has_attachments = any(True for _ in msg.iter_attachments()) if msg.is_multipart() else False
    from_ = _first(_header_values(msg, "From"))
    return ParsedMail(
        subject=str(msg.get("Subject", "") or ""),
        sender=_first(_header_values(msg, "Sender")) or from_,
        from_=from_,
        to=_addresses(_header_values(msg, "To")),
        cc=_addresses(_header_values(msg, "Cc")),
        bcc=_addresses(_header_values(msg, "Bcc")),
        reply_to=_addresses(_header_values(msg, "Reply-To")),
        sent=sent.astimezone(UTC) if sent else None,
        message_id=str(msg.get("Message-ID", "") or "").strip(),
        body_type="html" if html_part is not None else "text",
        body=html if html_part is not None else text,
        text=text if text_part is not None else html_text(html),
        has_attachments=has_attachments,
    )


def _content(part: Any) -> str:
    if part is None:
        return ""
    try:
        return str(part.get_content())
    except (LookupError, ValueError):
        payload = part.get_payload(decode=True) or b""
        return bytes(payload).decode("utf-8", "replace")


def graph_datetime(value: datetime) -> str:
    """``2026-11-01T08:00:00Z``: UTC, whole seconds, as Graph writes DateTimeOffset."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def preview(text: str) -> str:
    """Graph's ``bodyPreview``: the first 255 characters of the text, whitespace folded."""
    return re.sub(r"\s+", " ", text).strip()[:PREVIEW_CHARS]


def message_json(view: MessageView, base_url: str = "") -> dict[str, Any]:
    """The full ``microsoft.graph.message`` for a stored message."""
    mail = parse_mail(view.raw)
    received = graph_datetime(view.received)
    return {
        "@odata.etag": f'W/"{view.change_key}"',
        "id": view.item_id,
        "createdDateTime": received,
        "lastModifiedDateTime": received,
        "changeKey": view.change_key,
        "categories": [],
        "receivedDateTime": received,
        "sentDateTime": graph_datetime(mail.sent) if mail.sent else received,
        "hasAttachments": mail.has_attachments,
        "internetMessageId": mail.message_id,
        "subject": mail.subject,
        "bodyPreview": preview(mail.text),
        "importance": "normal",
        "parentFolderId": view.folder_id,
        "conversationId": _conversation_id(mail.subject),
        "isRead": view.is_read,
        "isDraft": False,
        "webLink": f"{base_url}/owa/?ItemID={view.item_id}&exvsurl=1&viewmodel=ReadMessageItem",
        "body": {"contentType": mail.body_type, "content": mail.body},
        "sender": mail.sender.json() if mail.sender else None,
        "from": mail.from_.json() if mail.from_ else None,
        "toRecipients": [a.json() for a in mail.to],
        "ccRecipients": [a.json() for a in mail.cc],
        "bccRecipients": [a.json() for a in mail.bcc],
        "replyTo": [a.json() for a in mail.reply_to],
        "flag": {"flagStatus": "flagged" if view.flagged else "notFlagged"},
    }


def _conversation_id(subject: str) -> str:
    topic = re.sub(r"^((re|fw|fwd|aw|wg)\s*:\s*)+", "", subject.strip(), flags=re.IGNORECASE)
    # Replies share the conversation of their original, as in Exchange.
    digest = hashlib.sha1(topic.lower().encode(), usedforsecurity=False).digest()
    return "AAQk" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def project(full: dict[str, Any], select: tuple[str, ...] | None) -> dict[str, Any]:
    """Keep only ``$select``'s properties (plus ``id`` and the etag, as Graph does)."""
    if select is None:
        return full
    keep = {"@odata.etag", "id", *select}
    return {k: v for k, v in full.items() if k in keep}


def folder_json(view: FolderView) -> dict[str, Any]:
    """A ``microsoft.graph.mailFolder``."""
    return {
        "id": view.folder_id,
        "displayName": view.display_name,
        "parentFolderId": view.parent_id,
        "childFolderCount": view.child_count,
        "unreadItemCount": view.unread,
        "totalItemCount": view.total,
        "sizeInBytes": view.size,
        "isHidden": False,
    }


def error_body(
    code: str, message: str, request_id: str, client_request_id: str, now: datetime
) -> dict[str, Any]:
    """Graph's error envelope with its ``innerError`` correlation data."""
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id or request_id,
            },
        }
    }


def _recipients(items: Any, field: str) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError(f"{field} must be an array of recipients")
    out = []
    for entry in items:
        address = entry.get("emailAddress", {}) if isinstance(entry, dict) else {}
        addr = address.get("address") if isinstance(address, dict) else None
        if not isinstance(addr, str) or "@" not in addr:
            raise ValueError(f"every entry of {field} needs emailAddress.address")
        name = address.get("name")
        out.append(email.utils.formataddr((name if isinstance(name, str) else "", addr)))
    return out


def mime_from_json(
    message: dict[str, Any], sender: str, now: datetime, require_recipients: bool = True
) -> EmailMessage:
    """Build the RFC 822 message Exchange would submit for a ``sendMail`` JSON message.

    ValueError names the offending field (the router answers 400 ``ErrorInvalidRecipients``
    or ``BadRequest``).
    """
    to = _recipients(message.get("toRecipients"), "toRecipients")
    cc = _recipients(message.get("ccRecipients"), "ccRecipients")
    bcc = _recipients(message.get("bccRecipients"), "bccRecipients")
    if require_recipients and not (to or cc or bcc):
        raise ValueError("At least one recipient is required.")
    body = message.get("body") or {}
    if not isinstance(body, dict):
        raise ValueError("body must be an object")
    from_field = message.get("from") or {}
    from_addr = (from_field.get("emailAddress") or {}).get("address") if from_field else None
    msg = EmailMessage()
    msg["From"] = from_addr or sender
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    if bcc:
        msg["Bcc"] = ", ".join(bcc)
    msg["Subject"] = str(message.get("subject", ""))
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = email.utils.make_msgid(domain=sender.rpartition("@")[2] or "sandbox")
    content = str(body.get("content", ""))
    if str(body.get("contentType", "text")).lower() == "html":
        msg.set_content(content, subtype="html")
    else:
        msg.set_content(content)
    return msg
