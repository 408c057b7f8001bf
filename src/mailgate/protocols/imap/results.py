"""What IMAP replies mean: folders, BODYSTRUCTURE parts, summaries and errors. Pure functions.

The values come from :mod:`mailgate.protocols.imap.parser`; nothing here touches a socket, so
each Exchange and Dovecot reply shape is a unit test.
"""

from __future__ import annotations

import email.header
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from urllib.parse import unquote

from mailgate.errors import MailgateError, ProtocolError, TransportError
from mailgate.mail.attachments import AttachmentPart
from mailgate.mail.headers import summary_from_headers
from mailgate.protocols.base import (
    Folder,
    MailAuthenticationError,
    MailboxAccessError,
    MessageRef,
    MessageSummary,
    ThrottledError,
)
from mailgate.protocols.imap.parser import (
    ParseError,
    StatusResponse,
    Value,
    as_int,
    as_text,
    response_code,
)
from mailgate.protocols.imap.utf7 import decode_mailbox_name

__all__ = [
    "HEADER_FIELDS",
    "SPECIAL_USE",
    "AttachmentPart",
    "ListEntry",
    "attachment_parts",
    "authentication_failure",
    "command_failure",
    "copyuid_map",
    "folder_from_list",
    "parse_internaldate",
    "parse_list",
    "parse_status",
    "summary_from_fetch",
]

SPECIAL_USE = frozenset(
    {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
)
HEADER_FIELDS = ("FROM", "TO", "CC", "SUBJECT", "DATE", "MESSAGE-ID")

_AUTH_REMEDY = (
    "check that the token is for https://outlook.office365.com with IMAP.AccessAsUser.All "
    "(delegated) or IMAP.AccessAsApp (app-only); for app-only access register the app in "
    "Exchange with New-ServicePrincipal using the *enterprise application* object id and grant "
    "it FullAccess on the mailbox; run `mailgate test` for a diagnosis."
)
_ACCESS_REMEDY = (
    "the token was accepted but the mailbox cannot be opened: check that the address is the "
    "mailbox's primary SMTP address and that the user or the app's service principal has "
    "FullAccess on it (Add-MailboxPermission)."
)


@dataclass(frozen=True)
class ListEntry:
    """One ``* LIST (attributes) "delimiter" name`` line, name decoded."""

    attributes: frozenset[str]
    delimiter: str | None
    wire_name: str
    name: str


def parse_list(values: Sequence[Value]) -> ListEntry:
    """Parse the values of a LIST (or LSUB) response."""
    if len(values) < 3 or not isinstance(values[0], list):
        raise ParseError("LIST response must have attributes, delimiter and name")
    attributes = frozenset(as_text(v) for v in values[0])
    delimiter = as_text(values[1]) or None
    raw = values[2]
    wire = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else as_text(raw)
    return ListEntry(attributes, delimiter, wire, decode_mailbox_name(wire))


def folder_from_list(entry: ListEntry, counts: dict[str, tuple[int, int]]) -> Folder:
    """A :class:`Folder` with ``/``-separated name; ``counts`` maps wire names to STATUS."""
    name = entry.name
    if entry.delimiter and entry.delimiter != "/":
        name = name.replace(entry.delimiter, "/")
    special = next((a for a in sorted(entry.attributes) if a in SPECIAL_USE), None)
    if name.upper() == "INBOX":
        name, special = "INBOX", "\\Inbox"
    total, unread = counts.get(entry.wire_name, (None, None))
    return Folder(name=name, id=entry.wire_name, special_use=special, total=total, unread=unread)


def parse_status(values: Sequence[Value]) -> tuple[str, dict[str, int]]:
    """``* STATUS name (MESSAGES 3 UNSEEN 1)`` → wire name and counters."""
    if len(values) != 2 or not isinstance(values[1], list):
        raise ParseError("STATUS response must have a name and a list")
    raw = values[0]
    name = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else as_text(raw)
    items = values[1]
    return name, {
        as_text(items[i]).upper(): as_int(items[i + 1]) for i in range(0, len(items) - 1, 2)
    }


def copyuid_map(code: str | None) -> dict[int, int]:
    """``COPYUID 9 3:4,7 11:13`` → ``{3: 11, 4: 12, 7: 13}`` (empty when there is none)."""
    name, args = response_code(code)
    if name != "COPYUID" or len(args) != 3:
        return {}
    source, dest = _expand(args[1]), _expand(args[2])
    return dict(zip(source, dest, strict=False)) if len(source) == len(dest) else {}


def _expand(text: str) -> list[int]:
    out: list[int] = []
    for piece in text.split(","):
        low, _, high = piece.partition(":")
        start, end = int(low), int(high or low)
        step = 1 if end >= start else -1
        out.extend(range(start, end + step, step))
    return out


def _params(value: Value) -> dict[str, str]:
    if not isinstance(value, list):
        return {}
    return {as_text(value[i]).lower(): as_text(value[i + 1]) for i in range(0, len(value) - 1, 2)}


def _decode_name(params: dict[str, str]) -> str | None:
    for key in ("filename", "name"):
        if f"{key}*" in params:  # RFC 2231, not decoded by every server
            charset, _, rest = params[f"{key}*"].partition("''")
            try:
                return unquote(rest, encoding=charset or "utf-8", errors="replace")
            except LookupError:  # unknown charset name
                return unquote(rest, errors="replace")
        if key in params:
            raw = params[key]
            try:
                return str(email.header.make_header(email.header.decode_header(raw)))
            except (ValueError, LookupError, UnicodeError, HeaderParseError):
                return raw
    return None


def attachment_parts(structure: Value, prefix: str = "") -> list[AttachmentPart]:
    """The attachments in a BODYSTRUCTURE, depth-first, with their section numbers."""
    if not isinstance(structure, list) or not structure:
        return []
    if isinstance(structure[0], list):  # multipart: children, then the subtype
        parts: list[AttachmentPart] = []
        for index, child in enumerate(structure):
            if not isinstance(child, list):
                break
            section = f"{prefix}.{index + 1}" if prefix else str(index + 1)
            parts += attachment_parts(child, section)
        return parts
    section = prefix or "1"
    main, sub = as_text(structure[0]).lower(), as_text(structure[1]).lower()
    params = _params(structure[2]) if len(structure) > 2 else {}
    encoding = as_text(structure[5]).lower() if len(structure) > 5 else "7bit"
    size = int(as_text(structure[6]) or 0) if len(structure) > 6 else 0
    disposition, disp_params = _disposition(structure, main, sub)
    names = {**params, **disp_params}
    filename = _decode_name(names)
    is_body_text = main == "text" and sub in ("plain", "html") and filename is None
    if disposition == "attachment" or (filename is not None and not is_body_text):
        return [AttachmentPart(section, f"{main}/{sub}", filename, encoding, size)]
    return []


def _disposition(structure: list[Value], main: str, sub: str) -> tuple[str, dict[str, str]]:
    # Extension data starts after size (+ lines for text, + envelope/body/lines for message).
    base = 7
    if main == "text":
        base = 8
    elif main == "message" and sub == "rfc822":
        base = 10
    index = base + 1  # md5 comes first
    value = structure[index] if len(structure) > index else None
    if isinstance(value, list) and value:
        params = _params(value[1]) if len(value) > 1 else {}
        return as_text(value[0]).lower(), params
    return "", {}


def parse_internaldate(value: Value) -> datetime:
    """``"17-Jul-1996 02:44:25 -0700"`` as an aware datetime."""
    try:
        return datetime.strptime(as_text(value), "%d-%b-%Y %H:%M:%S %z")
    except ValueError as exc:
        raise ParseError(f"bad INTERNALDATE {value!r}") from exc


def summary_from_fetch(ref: MessageRef, items: dict[str, Value]) -> MessageSummary:
    """A :class:`MessageSummary` from FETCH items (header fields, FLAGS, size, BODYSTRUCTURE)."""
    header_bytes = next(
        (v for k, v in items.items() if k.startswith("BODY[HEADER") and isinstance(v, bytes)),
        b"",
    )
    raw_flags = items.get("FLAGS")
    structure = items.get("BODYSTRUCTURE")
    size = items.get("RFC822.SIZE")
    return summary_from_headers(
        ref,
        header_bytes,
        size=int(size) if isinstance(size, str) and size.isdigit() else None,
        flags=[as_text(f) for f in raw_flags] if isinstance(raw_flags, list) else (),
        has_attachments=bool(attachment_parts(structure)) if structure is not None else None,
    )


def authentication_failure(reply: str) -> MailAuthenticationError:
    """The server refused the token (Exchange ``NO AUTHENTICATE failed.``, Dovecot's NO)."""
    return MailAuthenticationError(
        f"The IMAP server refused the token: {reply}", _AUTH_REMEDY, reply=reply
    )


def command_failure(command: str, response: StatusResponse) -> MailgateError:
    """Map a tagged NO/BAD (or an untagged BYE) to the error the caller sees."""
    reply = response.line
    code, _ = response_code(response.code)
    if "not connected" in response.text.lower():
        return MailboxAccessError(
            f"Authenticated, but the server will not open the mailbox: {reply}",
            _ACCESS_REMEDY,
            reply=reply,
        )
    if code in ("AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED"):
        return authentication_failure(reply)
    if code in ("UNAVAILABLE", "LIMIT", "INUSE"):
        return ThrottledError(
            f"The IMAP server is busy ({command}): {reply}",
            "wait a minute and retry; use fewer parallel connections.",
            retry_after=60.0,
        )
    if response.status == "BYE":
        return TransportError(
            f"The IMAP server closed the connection during {command}: {reply}",
            "retry; if it keeps happening the server is overloaded or the session timed out.",
        )
    if code == "NONEXISTENT" or (command == "SELECT" and response.status == "NO"):
        return ProtocolError(
            f"The IMAP folder does not exist or cannot be opened: {reply}",
            "`mailgate folders <mailbox>` lists the folder names; they are case-sensitive "
            "except INBOX.",
        )
    return ProtocolError(f"IMAP {command} failed: {reply}", "check the request and retry.")
