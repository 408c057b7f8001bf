"""Unit tests for the EWS request builders: parse what they produce and check the shapes
Microsoft documents (operation element, attributes, ids, impersonation header)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from mailgate.protocols.base import MessageRef, SearchCriteria
from mailgate.protocols.ews import soap as soap

S = f"{{{soap.SOAP_NS}}}"
T = f"{{{soap.TYPES_NS}}}"
M = f"{{{soap.MESSAGES_NS}}}"


def body_of(xml: bytes) -> ET.Element:
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    body = root.find(f"{S}Body")
    assert body is not None
    return body[0]


def wrap(body: str, **kwargs: object) -> ET.Element:
    return body_of(soap.envelope(body, version="Exchange2013_SP1", **kwargs))  # type: ignore[arg-type]


def test_envelope_app_only_impersonates() -> None:
    xml = soap.envelope("<m:GetFolder/>", version="Exchange2016", impersonate="a&b@x.example")
    root = ET.fromstring(xml)  # noqa: S314
    header = root.find(f"{S}Header")
    assert header is not None
    assert header.find(f"{T}RequestServerVersion").get("Version") == "Exchange2016"  # type: ignore[union-attr]
    address = header.findtext(f"{T}ExchangeImpersonation/{T}ConnectingSID/{T}PrimarySmtpAddress")
    assert address == "a&b@x.example"
    assert xml.startswith(b'<?xml version="1.0" encoding="utf-8"?>')


def test_envelope_delegated_has_no_impersonation() -> None:
    root = ET.fromstring(soap.envelope("<m:GetFolder/>", version="Exchange2013_SP1"))  # noqa: S314
    assert root.find(f".//{T}ExchangeImpersonation") is None


def test_folder_targets() -> None:
    shared = soap.FolderTarget("inbox", distinguished=True, mailbox="approvals@contoso.example")
    element = ET.fromstring(f'<r xmlns:t="{soap.TYPES_NS}">{shared.xml()}</r>')[0]  # noqa: S314
    assert element.tag == f"{T}DistinguishedFolderId" and element.get("Id") == "inbox"
    assert element.findtext(f"{T}Mailbox/{T}EmailAddress") == "approvals@contoso.example"
    own = soap.FolderTarget("inbox", distinguished=True)
    assert "Mailbox" not in own.xml()
    assert soap.FolderTarget('AQ"<>=', distinguished=False).xml() == (
        '<t:FolderId Id="AQ&quot;&lt;&gt;="/>'
    )


def test_find_folder_deep_from_root() -> None:
    op = wrap(soap.find_folder(soap.FolderTarget("msgfolderroot", True), offset=500))
    assert op.tag == f"{M}FindFolder" and op.get("Traversal") == "Deep"
    uris = [f.get("FieldURI") for f in op.iter(f"{T}FieldURI")]
    assert "folder:ParentFolderId" in uris and "folder:DisplayName" in uris
    view = op.find(f"{M}IndexedPageFolderView")
    assert view is not None and view.get("Offset") == "500"
    assert op.find(f"{M}ParentFolderIds/{T}DistinguishedFolderId").get("Id") == "msgfolderroot"  # type: ignore[union-attr]


def test_restriction_all_terms() -> None:
    criteria = SearchCriteria(
        unread=True,
        from_address="billing@vendor.example",
        subject_contains='Rechnung "Müller" <&>',
        since=datetime(2024, 1, 1, tzinfo=UTC),
        before=datetime(2024, 2, 1, tzinfo=UTC),
        has_attachments=False,
    )
    op = wrap(soap.find_item(soap.FolderTarget("inbox", True), criteria, offset=100, page_size=25))
    children = [child.tag for child in op]
    assert children == [
        f"{M}ItemShape",
        f"{M}IndexedPageItemView",
        f"{M}Restriction",
        f"{M}SortOrder",
        f"{M}ParentFolderIds",
    ]  # the order the schema requires
    view = op.find(f"{M}IndexedPageItemView")
    assert view is not None and (view.get("Offset"), view.get("MaxEntriesReturned")) == (
        "100",
        "25",
    )
    terms = list(op.find(f"{M}Restriction/{T}And"))  # type: ignore[arg-type]
    assert [t.tag[len(T) :] for t in terms] == [
        "IsEqualTo",
        "IsEqualTo",
        "Contains",
        "IsGreaterThanOrEqualTo",
        "IsLessThan",
        "IsEqualTo",
    ]
    assert terms[0].find(f"{T}FieldURI").get("FieldURI") == "message:IsRead"  # type: ignore[union-attr]
    assert terms[0].find(f".//{T}Constant").get("Value") == "false"  # type: ignore[union-attr]
    assert terms[2].get("ContainmentMode") == "Substring"
    assert terms[2].get("ContainmentComparison") == "IgnoreCase"
    assert terms[2].find(f"{T}Constant").get("Value") == 'Rechnung "Müller" <&>'  # type: ignore[union-attr]
    assert terms[3].find(f".//{T}Constant").get("Value") == "2024-01-01T00:00:00Z"  # type: ignore[union-attr]
    assert terms[5].find(f".//{T}Constant").get("Value") == "false"  # type: ignore[union-attr]
    order = op.find(f"{M}SortOrder/{T}FieldOrder")
    assert order is not None and order.get("Order") == "Ascending"


def test_restriction_single_and_none() -> None:
    assert soap.restriction(SearchCriteria()) == ""
    single = soap.restriction(SearchCriteria(unread=False))
    assert "<t:And>" not in single and 'Value="true"' in single
    with pytest.raises(ValueError):
        soap.restriction(SearchCriteria(since=datetime(2024, 1, 1)))


REFS = [MessageRef("Inbox", "AAMk1=", "CQ1"), MessageRef("Inbox", "AAMk2=", "CQ2")]


def test_get_item_headers_and_mime() -> None:
    op = wrap(soap.get_item(REFS))
    assert [i.get("Id") for i in op.iter(f"{T}ItemId")] == ["AAMk1=", "AAMk2="]
    uris = {f.get("FieldURI") for f in op.iter(f"{T}FieldURI")}
    assert {"item:Subject", "message:From", "item:Size", "message:IsRead"} <= uris
    mime = wrap(soap.get_item(REFS[:1], mime=True))
    assert mime.findtext(f"{M}ItemShape/{T}IncludeMimeContent") == "true"


def test_update_move_delete() -> None:
    op = wrap(soap.update_item(REFS, seen=True, flagged=False))
    assert op.get("ConflictResolution") == "AlwaysOverwrite"
    assert op.get("SuppressReadReceipts") == "true"
    changes = op.findall(f"{M}ItemChanges/{T}ItemChange")
    assert len(changes) == 2
    assert changes[0].findtext(f".//{T}IsRead") == "true"
    assert changes[0].findtext(f".//{T}FlagStatus") == "NotFlagged"
    assert changes[0].find(f"{T}ItemId").get("ChangeKey") is None  # type: ignore[union-attr]
    move = wrap(soap.move_item(REFS, soap.FolderTarget("deleteditems", True)))
    assert move.find(f"{M}ToFolderId/{T}DistinguishedFolderId").get("Id") == "deleteditems"  # type: ignore[union-attr]
    assert wrap(soap.delete_item(REFS, hard=False)).get("DeleteType") == "MoveToDeletedItems"
    assert wrap(soap.delete_item(REFS, hard=True)).get("DeleteType") == "HardDelete"


def test_create_item_append_and_send() -> None:
    append = wrap(soap.create_item("TUlNRQ==", soap.FolderTarget("F1"), send=False, seen=True))
    assert append.get("MessageDisposition") == "SaveOnly"
    message = append.find(f"{M}Items/{T}Message")
    assert message is not None
    assert [c.tag[len(T) :] for c in message] == ["MimeContent", "ExtendedProperty", "IsRead"]
    assert message.findtext(f"{T}MimeContent") == "TUlNRQ=="
    assert message.findtext(f"{T}ExtendedProperty/{T}Value") == "1"
    assert append.find(f"{M}SavedItemFolderId/{T}FolderId").get("Id") == "F1"  # type: ignore[union-attr]
    send = wrap(soap.create_item("TUlNRQ==", soap.FolderTarget("sentitems", True), send=True))
    assert send.get("MessageDisposition") == "SendAndSaveCopy"
    assert [c.tag[len(T) :] for c in send.find(f"{M}Items/{T}Message")] == ["MimeContent"]  # type: ignore[union-attr]


def test_sync_folder_items() -> None:
    first = wrap(soap.sync_folder_items(soap.FolderTarget("inbox", True), None))
    assert first.find(f"{M}SyncState") is None
    assert first.findtext(f"{M}MaxChangesReturned") == "512"
    later = wrap(soap.sync_folder_items(soap.FolderTarget("inbox", True), "H4sI<state>"))
    assert later.findtext(f"{M}SyncState") == "H4sI<state>"
    assert [c.tag[len(M) :] for c in later] == [
        "ItemShape",
        "SyncFolderId",
        "SyncState",
        "MaxChangesReturned",
        "SyncScope",
    ]
