"""EWS SOAP request builders: pure functions returning XML text, no I/O.

Each builder returns the body element of one EWS operation; :func:`envelope` wraps it with
``RequestServerVersion`` and, for app-only access, ``ExchangeImpersonation`` (the adapter adds
the matching ``X-AnchorMailbox`` header). Delegated access to a shared mailbox names the
mailbox inside each ``DistinguishedFolderId`` instead (:class:`FolderTarget`). Replies are
read by :mod:`mailgate.protocols.ews.replies`.

Item ids are sent without their ChangeKey: every update uses ``AlwaysOverwrite``, and a stale
ChangeKey would only turn a harmless race into an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailgate.protocols.base import MessageRef, SearchCriteria

__all__ = [
    "HEADER_PROPERTIES",
    "MESSAGES_NS",
    "SOAP_NS",
    "TYPES_NS",
    "FolderTarget",
    "create_folder",
    "create_item",
    "delete_item",
    "envelope",
    "find_folder",
    "find_item",
    "get_folder",
    "get_item",
    "move_item",
    "restriction",
    "sync_folder_items",
    "update_item",
    "xml_text",
]

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
TYPES_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
MESSAGES_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"

HEADER_PROPERTIES = (
    "item:Subject",
    "message:From",
    "message:ToRecipients",
    "message:CcRecipients",
    "item:DateTimeReceived",
    "message:InternetMessageId",
    "item:Size",
    "message:IsRead",
    "item:Flag",
    "item:HasAttachments",
)
"""What :meth:`fetch_headers` asks GetItem for (``item:Flag`` needs Exchange 2013 or later)."""

_PR_MESSAGE_FLAGS = '<t:ExtendedFieldURI PropertyTag="0x0E07" PropertyType="Integer"/>'


# Everything outside XML 1.0's Char production: C0 controls but TAB/LF/CR, lone surrogates
# (a str can hold them, e.g. from surrogateescape), U+FFFE and U+FFFF.
_NOT_XML_CHAR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&apos;",
        # As references they survive attribute-value and line-end normalisation of the parser.
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def xml_text(value: str) -> str:
    """Escape text or an attribute value for XML (quotes included).

    Characters XML 1.0 cannot carry at all (``\\x0b``, ``\\x1b``, lone surrogates...) are
    dropped: not even a character reference may name them, and one of them makes the whole
    SOAP request malformed. They only ever come from pasted or mis-decoded text.
    """
    if not (value.isascii() and value.isprintable()):
        value = _NOT_XML_CHAR.sub("", value)
    return value.translate(_ESCAPES)


@dataclass(frozen=True)
class FolderTarget:
    """A folder as EWS addresses it: a distinguished name (``inbox``) or a FolderId.

    ``mailbox`` is set for delegated access to another (shared) mailbox: EWS then needs the
    mailbox inside ``DistinguishedFolderId``; FolderIds already identify their mailbox.
    """

    id: str
    distinguished: bool = False
    mailbox: str | None = None

    def xml(self) -> str:
        if not self.distinguished:
            return f'<t:FolderId Id="{xml_text(self.id)}"/>'
        inner = ""
        if self.mailbox:
            inner = (
                f"<t:Mailbox><t:EmailAddress>{xml_text(self.mailbox)}</t:EmailAddress></t:Mailbox>"
            )
        return (
            f'<t:DistinguishedFolderId Id="{xml_text(self.id)}">{inner}</t:DistinguishedFolderId>'
        )


def envelope(body: str, *, version: str, impersonate: str | None = None) -> bytes:
    """The SOAP envelope around one operation; ``impersonate`` is the app-only target mailbox."""
    header = f'<t:RequestServerVersion Version="{xml_text(version)}"/>'
    if impersonate:
        header += (
            "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>"
            f"{xml_text(impersonate)}"
            "</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<soap:Envelope xmlns:soap="{SOAP_NS}" xmlns:t="{TYPES_NS}" xmlns:m="{MESSAGES_NS}">'
        f"<soap:Header>{header}</soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()


def _field(uri: str) -> str:
    return f'<t:FieldURI FieldURI="{uri}"/>'


def _item_ids(refs: Sequence[MessageRef]) -> str:
    return "".join(f'<t:ItemId Id="{xml_text(ref.id)}"/>' for ref in refs)


def find_folder(root: FolderTarget, offset: int = 0, page_size: int = 500) -> str:
    """FindFolder Deep under ``root`` with parent ids (to build paths) and counts."""
    extra = "".join(
        _field(f"folder:{name}")
        for name in ("ParentFolderId", "DisplayName", "TotalCount", "UnreadCount", "FolderClass")
    )
    return (
        '<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>'
        f"<t:AdditionalProperties>{extra}{_field('folder:ChildFolderCount')}"
        "</t:AdditionalProperties></m:FolderShape>"
        f'<m:IndexedPageFolderView MaxEntriesReturned="{page_size}" Offset="{offset}" '
        'BasePoint="Beginning"/>'
        f"<m:ParentFolderIds>{root.xml()}</m:ParentFolderIds></m:FindFolder>"
    )


def create_folder(parent: FolderTarget, name: str) -> str:
    """CreateFolder of a mail folder (``IPF.Note``) named ``name`` under ``parent``."""
    return (
        f"<m:CreateFolder><m:ParentFolderId>{parent.xml()}</m:ParentFolderId><m:Folders>"
        f"<t:Folder><t:FolderClass>IPF.Note</t:FolderClass>"
        f"<t:DisplayName>{xml_text(name)}</t:DisplayName></t:Folder></m:Folders></m:CreateFolder>"
    )


def get_folder(targets: Sequence[FolderTarget]) -> str:
    """GetFolder IdOnly: learns the ids of distinguished folders in one request."""
    ids = "".join(t.xml() for t in targets)
    return (
        "<m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>"
        f"<m:FolderIds>{ids}</m:FolderIds></m:GetFolder>"
    )


def _datetime(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("search dates must be timezone-aware")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _compare(op: str, uri: str, value: str) -> str:
    return (
        f"<t:{op}>{_field(uri)}<t:FieldURIOrConstant>"
        f'<t:Constant Value="{xml_text(value)}"/></t:FieldURIOrConstant></t:{op}>'
    )


def restriction(criteria: SearchCriteria) -> str:
    """The ``<m:Restriction>`` for ``criteria``, or ``""`` when it matches everything."""
    terms: list[str] = []
    if criteria.unread is not None:
        terms.append(_compare("IsEqualTo", "message:IsRead", str(not criteria.unread).lower()))
    if criteria.from_address:
        terms.append(_compare("IsEqualTo", "message:From", criteria.from_address))
    if criteria.subject_contains:
        terms.append(
            '<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase">'
            f'{_field("item:Subject")}<t:Constant Value="{xml_text(criteria.subject_contains)}"/>'
            "</t:Contains>"
        )
    if criteria.since is not None:
        terms.append(
            _compare("IsGreaterThanOrEqualTo", "item:DateTimeReceived", _datetime(criteria.since))
        )
    if criteria.before is not None:
        terms.append(_compare("IsLessThan", "item:DateTimeReceived", _datetime(criteria.before)))
    if criteria.has_attachments is not None:
        terms.append(
            _compare("IsEqualTo", "item:HasAttachments", str(criteria.has_attachments).lower())
        )
    if not terms:
        return ""
    inner = terms[0] if len(terms) == 1 else f"<t:And>{''.join(terms)}</t:And>"
    return f"<m:Restriction>{inner}</m:Restriction>"


def find_item(
    folder: FolderTarget, criteria: SearchCriteria, offset: int = 0, page_size: int = 100
) -> str:
    """FindItem Shallow, IdOnly plus DateTimeReceived, oldest first, one indexed page."""
    return (
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        f"<t:AdditionalProperties>{_field('item:DateTimeReceived')}</t:AdditionalProperties>"
        "</m:ItemShape>"
        f'<m:IndexedPageItemView MaxEntriesReturned="{page_size}" Offset="{offset}" '
        'BasePoint="Beginning"/>'
        f"{restriction(criteria)}"
        '<m:SortOrder><t:FieldOrder Order="Ascending">'
        f"{_field('item:DateTimeReceived')}</t:FieldOrder></m:SortOrder>"
        f"<m:ParentFolderIds>{folder.xml()}</m:ParentFolderIds></m:FindItem>"
    )


def get_item(refs: Sequence[MessageRef], *, mime: bool = False) -> str:
    """GetItem: the header properties, or (``mime=True``) the base64 MimeContent."""
    if mime:
        shape = "<t:BaseShape>IdOnly</t:BaseShape><t:IncludeMimeContent>true</t:IncludeMimeContent>"
    else:
        props = "".join(_field(p) for p in HEADER_PROPERTIES)
        shape = (
            "<t:BaseShape>IdOnly</t:BaseShape>"
            f"<t:AdditionalProperties>{props}</t:AdditionalProperties>"
        )
    return (
        f"<m:GetItem><m:ItemShape>{shape}</m:ItemShape>"
        f"<m:ItemIds>{_item_ids(refs)}</m:ItemIds></m:GetItem>"
    )


def update_item(
    refs: Sequence[MessageRef], *, seen: bool | None = None, flagged: bool | None = None
) -> str:
    """UpdateItem setting IsRead and/or the follow-up flag, without sending read receipts."""
    updates = ""
    if seen is not None:
        updates += (
            f"<t:SetItemField>{_field('message:IsRead')}"
            f"<t:Message><t:IsRead>{str(seen).lower()}</t:IsRead></t:Message></t:SetItemField>"
        )
    if flagged is not None:
        status = "Flagged" if flagged else "NotFlagged"
        updates += (
            f"<t:SetItemField>{_field('item:Flag')}<t:Message><t:Flag>"
            f"<t:FlagStatus>{status}</t:FlagStatus></t:Flag></t:Message></t:SetItemField>"
        )
    changes = "".join(
        f'<t:ItemChange><t:ItemId Id="{xml_text(ref.id)}"/><t:Updates>{updates}</t:Updates>'
        "</t:ItemChange>"
        for ref in refs
    )
    return (
        '<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="AlwaysOverwrite" '
        f'SuppressReadReceipts="true"><m:ItemChanges>{changes}</m:ItemChanges></m:UpdateItem>'
    )


def move_item(refs: Sequence[MessageRef], destination: FolderTarget) -> str:
    """MoveItem; Exchange answers with the new ItemIds."""
    return (
        f"<m:MoveItem><m:ToFolderId>{destination.xml()}</m:ToFolderId>"
        f"<m:ItemIds>{_item_ids(refs)}</m:ItemIds></m:MoveItem>"
    )


def delete_item(refs: Sequence[MessageRef], *, hard: bool) -> str:
    """DeleteItem: ``MoveToDeletedItems`` (recoverable) or ``HardDelete`` (gone)."""
    kind = "HardDelete" if hard else "MoveToDeletedItems"
    return (
        f'<m:DeleteItem DeleteType="{kind}"><m:ItemIds>{_item_ids(refs)}</m:ItemIds></m:DeleteItem>'
    )


def create_item(mime_base64: str, folder: FolderTarget, *, send: bool, seen: bool = False) -> str:
    """CreateItem from MIME: ``SaveOnly`` into ``folder`` (append) or ``SendAndSaveCopy`` with
    the copy in ``folder`` (send; pass Sent Items).

    An appended message gets PR_MESSAGE_FLAGS (read, not unsent) so Outlook shows it as a
    received message, not a draft.
    """
    disposition = "SendAndSaveCopy" if send else "SaveOnly"
    flags = ""
    if not send:
        flags = (
            f"<t:ExtendedProperty>{_PR_MESSAGE_FLAGS}<t:Value>{1 if seen else 0}</t:Value>"
            f"</t:ExtendedProperty><t:IsRead>{str(seen).lower()}</t:IsRead>"
        )
    return (
        f'<m:CreateItem MessageDisposition="{disposition}">'
        f"<m:SavedItemFolderId>{folder.xml()}</m:SavedItemFolderId><m:Items><t:Message>"
        f"<t:MimeContent>{mime_base64}</t:MimeContent>{flags}</t:Message></m:Items>"
        "</m:CreateItem>"
    )


def sync_folder_items(folder: FolderTarget, sync_state: str | None, max_changes: int = 512) -> str:
    """SyncFolderItems IdOnly; no ``sync_state`` starts from the folder's current content."""
    state = f"<m:SyncState>{xml_text(sync_state)}</m:SyncState>" if sync_state else ""
    return (
        "<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>"
        f"<m:SyncFolderId>{folder.xml()}</m:SyncFolderId>{state}"
        f"<m:MaxChangesReturned>{max_changes}</m:MaxChangesReturned>"
        "<m:SyncScope>NormalItems</m:SyncScope></m:SyncFolderItems>"
    )
