"""EWS reply parsing and error mapping: pure functions over bytes, no I/O.

- :func:`response_messages` opens a reply, raises the mapped error for a SOAP fault or a
  ``ResponseClass="Error"`` message, and returns the ``*ResponseMessage`` elements.
- :func:`error_for_code` maps a ``ResponseCode`` to a mailgate error with a remedy;
  :func:`error_from_http` does the same for HTTP statuses (401 with ``x-ms-diagnostics``, 403).
- Parsers for folders, items, summaries and SyncFolderItems changes.
- :class:`MimeStreamDecoder` pulls MimeContent out of a GetItem reply fed in chunks and
  decodes its base64 straight into a file, so a large message is never held whole in memory.

Replies are parsed with expat (ElementTree); a DOCTYPE is refused outright, since SOAP forbids
it and it is the only way entity tricks get in. Exchange writes mail text as it is, control
characters included (as ``&#x1B;``-style references, or raw), which XML 1.0 forbids and expat
rejects: :func:`strip_xml_forbidden` drops those characters before any parse, so one message's
Subject cannot make a whole folder unreadable.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import BinaryIO
from xml.parsers import expat

from mailgate.errors import MailgateError, ProtocolError
from mailgate.protocols.base import (
    MailAuthenticationError,
    MailboxAccessError,
    MessageRef,
    MessageSummary,
    ThrottledError,
)
from mailgate.protocols.ews.soap import MESSAGES_NS, SOAP_NS, TYPES_NS
from mailgate.protocols.graph.shapes import POLICY_REMEDY
from mailgate.protocols.transport import retry_after_seconds

__all__ = [
    "EwsError",
    "EwsFolder",
    "FoundItems",
    "MimeStreamDecoder",
    "SyncChanges",
    "error_for_code",
    "error_from_http",
    "parse_folder_ids",
    "parse_folders",
    "parse_found_items",
    "parse_item_ids",
    "parse_summaries",
    "parse_sync",
    "response_messages",
    "strip_xml_forbidden",
]

_T = f"{{{TYPES_NS}}}"
_M = f"{{{MESSAGES_NS}}}"


class EwsError(ProtocolError):
    """EWS answered an error code mailgate has no more specific type for (``code``)."""

    def __init__(self, message: str, remedy: str = "", *, code: str = "") -> None:
        super().__init__(message, remedy)
        self.code = code


def _mailbox_remedies(mailbox: str, app_only: bool) -> dict[str, str]:
    access = (
        POLICY_REMEDY
        if app_only
        else f"the signed-in user needs FullAccess on {mailbox} (Add-MailboxPermission) and a "
        "token with EWS.AccessAsUser.All."
    )
    return {
        "ErrorAccessDenied": access,
        "ErrorImpersonateUserDenied": (
            "the app may not impersonate this mailbox: grant the application permission "
            "full_access_as_app (Office 365 Exchange Online) with admin consent, and check "
            "no ApplicationAccessPolicy or RBAC for Applications scope excludes the mailbox."
        ),
        "ErrorNonExistentMailbox": (
            f"Exchange Online has no mailbox {mailbox}: check the spelling and use the "
            "primary SMTP address of a mailbox in the token's tenant."
        ),
        "ErrorInvalidExchangeImpersonationHeaderData": (
            f"the impersonation header names {mailbox}, which Exchange cannot resolve: use "
            "the mailbox's primary SMTP address (Get-Mailbox <name> | fl PrimarySmtpAddress)."
        ),
    }


def error_for_code(
    code: str, text: str, *, mailbox: str, app_only: bool, back_off_ms: int | None = None
) -> MailgateError:
    """The mailgate error for an EWS ``ResponseCode`` (from a response message or a fault)."""
    reply = f"{code}: {text}" if text else code
    remedies = _mailbox_remedies(mailbox, app_only)
    if code in remedies:
        return MailboxAccessError(
            f"EWS refused access to {mailbox} ({reply}).", remedies[code], reply=code
        )
    if code == "ErrorServerBusy":
        return ThrottledError(
            f"EWS is throttling requests for {mailbox} ({reply}).",
            "wait BackOffMilliseconds before the next request; reduce concurrency.",
            retry_after=(back_off_ms or 0) / 1000,
        )
    if code == "ErrorItemNotFound":
        return EwsError(
            f"EWS: the item no longer exists in {mailbox} ({reply}).",
            "it was moved or deleted meanwhile; search again.",
            code=code,
        )
    if code == "ErrorInvalidSyncStateData":
        return EwsError(f"EWS: the sync state expired ({reply}).", "resync the folder.", code=code)
    return EwsError(
        f"EWS error for {mailbox} ({reply}).", "check the request; report the reply.", code=code
    )


def error_from_http(
    status: int, headers: Mapping[str, str], body: bytes, *, mailbox: str, app_only: bool
) -> MailgateError:
    """The error for a non-200 EWS reply; a SOAP fault in the body wins over the status."""
    if body.lstrip().startswith(b"<"):
        try:
            response_messages(body, mailbox=mailbox, app_only=app_only)
        except MailgateError as exc:
            if type(exc) is not ProtocolError:  # a mapped EWS error, not "unreadable"
                return exc
    if status == 401:
        diagnostics = headers.get("x-ms-diagnostics", "")
        return MailAuthenticationError(
            f"EWS refused the access token for {mailbox} (HTTP 401).",
            "use a token for https://outlook.office365.com (app-only: scope "
            "https://outlook.office365.com/.default with full_access_as_app; delegated: "
            "EWS.AccessAsUser.All) that has not expired; x-ms-diagnostics says why.",
            reply=diagnostics or "HTTP 401",
        )
    if status == 403:
        return MailboxAccessError(
            f"EWS access to {mailbox} is blocked (HTTP 403).",
            "EWS may be disabled for the organisation or mailbox (Set-CASMailbox -EWSEnabled, "
            "EWSAllowedAppIDs) or the mailbox lacks an EWS licence; otherwise " + POLICY_REMEDY,
            reply=headers.get("x-ms-diagnostics", "") or "HTTP 403",
        )
    if status in (429, 503):
        return ThrottledError(
            f"EWS is throttling requests for {mailbox} (HTTP {status}).",
            "wait and retry with less concurrency.",
            retry_after=retry_after_seconds(headers.get("retry-after")) or 0.0,
        )
    return EwsError(
        f"EWS answered HTTP {status} for {mailbox}.",
        "check the EWS URL (…/EWS/Exchange.asmx) and the server's state.",
        code=f"HTTP {status}",
    )


# What XML 1.0's Char production leaves out and a server may still send: C0 controls other than
# TAB, LF and CR, raw; U+FFFE and U+FFFF, raw (in UTF-8; a lone surrogate cannot be valid
# UTF-8); and any numeric character reference, which _keep_reference judges by its number.
_FORBIDDEN = re.compile(
    rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]|&#(x[0-9A-Fa-f]+|[0-9]+);"
)
# The start of a reference or of U+FFFE/U+FFFF that the next chunk of a stream may complete.
_PARTIAL_REFERENCE = re.compile(rb"&(?:#(?:x[0-9A-Fa-f]*|[0-9]*))?")


def _xml_char(code: int) -> bool:
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or 0x10000 <= code <= 0x10FFFF
    )


def _keep_reference(match: re.Match[bytes]) -> bytes:
    number = match[1]
    if number is None:  # a raw forbidden character
        return b""
    # Leading zeros are allowed, and a huge number is as forbidden as a small one.
    digits = number[1:].lstrip(b"0") if number[:1] == b"x" else number.lstrip(b"0")
    if len(digits) > 8:
        return b""
    code = int(number[1:], 16) if number[:1] == b"x" else int(number)
    return match[0] if _xml_char(code) else b""


def strip_xml_forbidden(body: bytes) -> bytes:
    """``body`` (UTF-8 XML) without the characters XML 1.0 forbids, raw or as ``&#…;``.

    What other EWS clients do before parsing: the C0 controls but TAB, LF and CR, U+FFFE,
    U+FFFF, and references to those, to surrogates or beyond U+10FFFF are dropped; everything
    else, DEL and the C1 controls included (XML allows them), is left exactly as it was. Not
    CDATA-aware: SOAP replies carry none.
    """
    return _FORBIDDEN.sub(_keep_reference, body)


def _held_back(data: bytes) -> int:
    """Where the part of ``data`` that can be filtered now ends: before a trailing ``&``, ``&#``,
    ``&#x1`` … or a trailing first part of U+FFFE/U+FFFF, which the next chunk may complete."""
    end = len(data)
    if data.endswith(b"\xef"):
        end -= 1
    elif data.endswith(b"\xef\xbf"):
        end -= 2
    amp = data.rfind(b"&", 0, end)
    if amp != -1 and _PARTIAL_REFERENCE.fullmatch(data, amp, end):
        end = amp
    return end


def _parse(body: bytes) -> ET.Element:
    body = strip_xml_forbidden(body)
    if b"<!DOCTYPE" in body:
        raise ProtocolError("EWS reply contains a DOCTYPE.", "check the EWS URL; report this.")
    try:
        # Safe: DTDs are refused above, and CPython's expat never fetches external entities.
        return ET.fromstring(body)  # noqa: S314
    except ET.ParseError as exc:
        raise ProtocolError(
            f"EWS reply is not XML ({exc}).", "check the EWS URL points at Exchange.asmx."
        ) from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find_local(root: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in root.iter() if _local(e.tag) == name), None)


def _back_off(root: ET.Element) -> int | None:
    for value in root.iter(f"{_T}Value"):
        if value.get("Name") == "BackOffMilliseconds" and (value.text or "").strip().isdigit():
            return int((value.text or "").strip())
    return None


def response_messages(body: bytes, *, mailbox: str, app_only: bool) -> list[ET.Element]:
    """The ``*ResponseMessage`` elements of a reply; raises for faults and Error messages."""
    root = _parse(body)
    soap_body = root.find(f"{{{SOAP_NS}}}Body")
    if soap_body is None:
        raise ProtocolError("EWS reply has no SOAP Body.", "check the EWS URL.")
    fault = soap_body.find(f"{{{SOAP_NS}}}Fault")
    if fault is not None:
        code_el = _find_local(fault, "ResponseCode")
        faultcode = (fault.findtext("faultcode") or "").rsplit(":", 1)[-1]
        code = (code_el.text or "").strip() if code_el is not None else faultcode
        text = (fault.findtext("faultstring") or "").strip()
        raise error_for_code(
            code or "SOAPFault",
            text,
            mailbox=mailbox,
            app_only=app_only,
            back_off_ms=_back_off(fault),
        )
    messages = [
        e for e in soap_body.iter() if e.tag.endswith("ResponseMessage") and e.get("ResponseClass")
    ]
    for message in messages:
        if message.get("ResponseClass") == "Error":
            raise error_for_code(
                (message.findtext(f"{_M}ResponseCode") or "").strip(),
                (message.findtext(f"{_M}MessageText") or "").strip(),
                mailbox=mailbox,
                app_only=app_only,
                back_off_ms=_back_off(message),
            )
    return messages


def _int(element: ET.Element, path: str) -> int | None:
    text = element.findtext(path)
    return int(text) if text is not None and text.strip().lstrip("-").isdigit() else None


def _datetime(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EwsFolder:
    """One folder from FindFolder."""

    id: str
    parent_id: str | None
    display_name: str
    total: int | None
    unread: int | None
    folder_class: str | None


def _root_folder(messages: list[ET.Element]) -> tuple[ET.Element | None, int | None]:
    """(RootFolder, next offset or None when the last item is included)."""
    root = messages[0].find(f"{_M}RootFolder") if messages else None
    if root is None or root.get("IncludesLastItemInRange", "true") == "true":
        return root, None
    offset = root.get("IndexedPagingOffset")
    return root, int(offset) if offset and offset.isdigit() else None


def parse_folders(messages: list[ET.Element]) -> tuple[list[EwsFolder], int | None]:
    """FindFolder: the folders of this page and the offset of the next page (None if last)."""
    root, next_offset = _root_folder(messages)
    folders: list[EwsFolder] = []
    holder = root.find(f"{_T}Folders") if root is not None else None
    for element in holder if holder is not None else []:
        folder_id = element.find(f"{_T}FolderId")
        if folder_id is None or not folder_id.get("Id"):
            continue
        parent = element.find(f"{_T}ParentFolderId")
        folders.append(
            EwsFolder(
                id=folder_id.get("Id", ""),
                parent_id=parent.get("Id") if parent is not None else None,
                display_name=element.findtext(f"{_T}DisplayName") or "",
                total=_int(element, f"{_T}TotalCount"),
                unread=_int(element, f"{_T}UnreadCount"),
                folder_class=element.findtext(f"{_T}FolderClass"),
            )
        )
    return folders, next_offset


def parse_folder_ids(messages: list[ET.Element]) -> list[str | None]:
    """GetFolder: each requested folder's id in request order (None where it failed)."""
    ids: list[str | None] = []
    for message in messages:
        folder_id = message.find(f"{_M}Folders/*/{_T}FolderId")
        ids.append(folder_id.get("Id") if folder_id is not None else None)
    return ids


@dataclass(frozen=True)
class FoundItems:
    """One FindItem page: (item id, change key, received) and the next offset (None if last)."""

    items: list[tuple[str, str | None, datetime | None]]
    next_offset: int | None


def parse_found_items(messages: list[ET.Element]) -> FoundItems:
    root, next_offset = _root_folder(messages)
    items: list[tuple[str, str | None, datetime | None]] = []
    holder = root.find(f"{_T}Items") if root is not None else None
    for element in holder if holder is not None else []:
        item_id = element.find(f"{_T}ItemId")
        if item_id is not None and item_id.get("Id"):
            received = _datetime(element.findtext(f"{_T}DateTimeReceived"))
            items.append((item_id.get("Id", ""), item_id.get("ChangeKey"), received))
    return FoundItems(items, next_offset)


def parse_item_ids(messages: list[ET.Element]) -> list[tuple[str, str | None] | None]:
    """MoveItem/CreateItem: each message's new (Id, ChangeKey), None where none was returned."""
    result: list[tuple[str, str | None] | None] = []
    for message in messages:
        item_id = message.find(f"{_M}Items/*/{_T}ItemId")
        if item_id is not None and item_id.get("Id"):
            result.append((item_id.get("Id", ""), item_id.get("ChangeKey")))
        else:
            result.append(None)
    return result


def _mailbox_address(element: ET.Element | None) -> str:
    if element is None:
        return ""
    return (element.findtext(f"{_T}EmailAddress") or "").strip()


def parse_summaries(messages: list[ET.Element], folder: str) -> list[MessageSummary]:
    """GetItem with the header properties: one summary per returned item."""
    summaries = []
    for message in messages:
        items = message.find(f"{_M}Items")
        for item in items if items is not None else []:
            item_id = item.find(f"{_T}ItemId")
            if item_id is None:
                continue
            has_attachments = item.findtext(f"{_T}HasAttachments")
            summaries.append(
                MessageSummary(
                    ref=MessageRef(folder, item_id.get("Id", ""), item_id.get("ChangeKey")),
                    subject=item.findtext(f"{_T}Subject") or "",
                    from_address=_mailbox_address(item.find(f"{_T}From/{_T}Mailbox")),
                    to=tuple(
                        _mailbox_address(m) for m in item.iterfind(f"{_T}ToRecipients/{_T}Mailbox")
                    ),
                    cc=tuple(
                        _mailbox_address(m) for m in item.iterfind(f"{_T}CcRecipients/{_T}Mailbox")
                    ),
                    date=_datetime(item.findtext(f"{_T}DateTimeReceived")),
                    message_id=item.findtext(f"{_T}InternetMessageId") or None,
                    size=_int(item, f"{_T}Size"),
                    seen=item.findtext(f"{_T}IsRead") == "true",
                    flagged=item.findtext(f"{_T}Flag/{_T}FlagStatus") == "Flagged",
                    has_attachments=None if has_attachments is None else has_attachments == "true",
                )
            )
    return summaries


@dataclass
class SyncChanges:
    """One SyncFolderItems reply: the new state, whether it is the last page, and the ids."""

    sync_state: str
    last: bool
    created: list[tuple[str, str | None]] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def parse_sync(messages: list[ET.Element]) -> SyncChanges:
    if not messages:
        raise ProtocolError("EWS SyncFolderItems returned no response.", "report this reply.")
    message = messages[0]
    changes = SyncChanges(
        sync_state=message.findtext(f"{_M}SyncState") or "",
        last=message.findtext(f"{_M}IncludesLastItemInRange", "true") == "true",
    )
    holder = message.find(f"{_M}Changes")
    for change in holder if holder is not None else []:
        item_id = change.find(f"*/{_T}ItemId")
        if _local(change.tag) == "Delete":
            item_id = change.find(f"{_T}ItemId")
            if item_id is not None:
                changes.deleted.append(item_id.get("Id", ""))
        elif _local(change.tag) == "Create" and item_id is not None:
            changes.created.append((item_id.get("Id", ""), item_id.get("ChangeKey")))
    return changes


class MimeStreamDecoder:
    """Feed a GetItem (IncludeMimeContent) reply in chunks; MimeContent goes to ``dest``.

    Base64 is decoded in 4-character groups as expat hands over text, so memory stays at one
    network chunk plus expat's text buffer. Everything before MimeContent is kept (it is small)
    so an error reply can still be mapped by :func:`response_messages` in :meth:`close`.
    """

    def __init__(self, dest: BinaryIO, *, mailbox: str, app_only: bool) -> None:
        self._dest = dest
        self._mailbox = mailbox
        self._app_only = app_only
        self._parser = expat.ParserCreate(namespace_separator="}")
        self._parser.buffer_text = True
        self._parser.buffer_size = 1 << 16
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._text
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._head = bytearray()
        self._in_mime = False
        self._seen_mime = False
        self._pending = ""
        self._held = b""  # a chunk's tail that may be the start of a forbidden character
        self.written = 0

    def _doctype(self, *args: object) -> None:
        raise ProtocolError("EWS reply contains a DOCTYPE.", "check the EWS URL; report this.")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        if name == f"{TYPES_NS}}}MimeContent":
            self._in_mime = self._seen_mime = True

    def _end(self, name: str) -> None:
        if self._in_mime and name == f"{TYPES_NS}}}MimeContent":
            self._in_mime = False
            self._flush(final=True)

    def _text(self, data: str) -> None:
        if self._in_mime:
            self._pending += "".join(data.split())
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        usable = len(self._pending) if final else len(self._pending) // 4 * 4
        if not usable:
            return
        chunk, self._pending = self._pending[:usable], self._pending[usable:]
        try:
            data = base64.b64decode(chunk, validate=True)
        except binascii.Error as exc:
            raise ProtocolError(
                "EWS MimeContent is not valid base64.", "report this reply."
            ) from exc
        self._dest.write(data)
        self.written += len(data)

    def feed(self, chunk: bytes) -> None:
        data = self._held + chunk if self._held else chunk
        end = _held_back(data)
        self._held = data[end:]
        self._parse(strip_xml_forbidden(data[:end]), final=False)

    def _parse(self, data: bytes, *, final: bool) -> None:
        if not self._seen_mime:
            self._head += data
        try:
            self._parser.Parse(data, final)
        except expat.ExpatError as exc:
            raise ProtocolError(f"EWS reply is not XML ({exc}).", "check the EWS URL.") from exc

    def close(self) -> int:
        """Finish; returns bytes written. Raises the mapped error if there was no MimeContent."""
        self._parse(strip_xml_forbidden(self._held), final=True)
        if not self._seen_mime:
            response_messages(bytes(self._head), mailbox=self._mailbox, app_only=self._app_only)
            raise ProtocolError("EWS returned no MimeContent for the item.", "report this reply.")
        return self.written
