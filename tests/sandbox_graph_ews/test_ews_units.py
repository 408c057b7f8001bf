"""Unit tests of the pure EWS parts: SOAP parsing/building, restrictions, shapes, rendering."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from mailgate.sandbox.ews.envelope import (
    ENS,
    MNS,
    SOAPNS,
    TNS,
    SoapError,
    envelope,
    fault,
    parse_request,
    response,
    response_message,
)
from mailgate.sandbox.ews.render import folder_xml, message_xml
from mailgate.sandbox.ews.restriction import (
    ItemShape,
    parse_page_view,
    parse_restriction,
    parse_shape,
    sort_descending,
)
from mailgate.sandbox.graph.query import Condition
from mailgate.sandbox.graph.resources import FolderView, MessageView


def parse_xml(data: str | bytes) -> ET.Element:
    # Our own server's output and literals from this file: trusted input.
    return ET.fromstring(data)  # noqa: S314


NS = f'xmlns:s="{SOAPNS}" xmlns:m="{MNS}" xmlns:t="{TNS}"'


def request(body: str, header: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope {NS}><s:Header>'
        f'<t:RequestServerVersion Version="Exchange2016"/>{header}</s:Header>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


IMPERSONATE = (
    "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>a@x.test"
    "</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
)


def test_parse_request() -> None:
    soap = parse_request(request("<m:GetFolder/>", IMPERSONATE))
    assert soap.operation == "GetFolder"
    assert soap.impersonation is not None
    assert (soap.impersonation.kind, soap.impersonation.value) == ("PrimarySmtpAddress", "a@x.test")
    assert soap.server_version == "Exchange2016"
    assert parse_request(request("<m:FindItem/>")).impersonation is None


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"not xml", "ErrorSchemaValidation"),
        (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "ErrorSchemaValidation"),
        (b"<x/>", "ErrorInvalidRequest"),
        (request(""), "ErrorInvalidRequest"),
        (request("<t:GetFolder/>"), "ErrorInvalidRequest"),
        (
            request(
                "<m:GetFolder/>",
                "<t:ExchangeImpersonation><t:ConnectingSID/></t:ExchangeImpersonation>",
            ),
            "ErrorInvalidExchangeImpersonationHeaderData",
        ),
    ],
)
def test_parse_request_refuses(data: bytes, code: str) -> None:
    with pytest.raises(SoapError) as info:
        parse_request(data)
    assert info.value.code == code


def test_envelope_carries_server_version_and_messages() -> None:
    ok = response_message("GetItem")
    bad = response_message("GetItem", "ErrorItemNotFound", "gone")
    root = parse_xml(envelope([response("GetItem", [ok, bad])]))
    info = root.find(f"{{{SOAPNS}}}Header/{{{TNS}}}ServerVersionInfo")
    assert info is not None and info.get("MajorVersion") == "15"
    messages = root.findall(f".//{{{MNS}}}GetItemResponseMessage")
    assert [m.get("ResponseClass") for m in messages] == ["Success", "Error"]
    assert messages[0].findtext(f"{{{MNS}}}ResponseCode") == "NoError"
    assert messages[1].findtext(f"{{{MNS}}}MessageText") == "gone"


def test_fault_server_busy() -> None:
    root = parse_xml(fault("ErrorServerBusy", "busy", {"BackOffMilliseconds": "1500"}))
    found = root.find(f"{{{SOAPNS}}}Body/{{{SOAPNS}}}Fault")
    assert found is not None
    assert found.findtext("faultcode") == "a:ErrorServerBusy"
    assert found.findtext(f"detail/{{{ENS}}}ResponseCode") == "ErrorServerBusy"
    value = found.find(f"detail/{{{TNS}}}MessageXml/{{{TNS}}}Value")
    assert value is not None and (value.get("Name"), value.text) == ("BackOffMilliseconds", "1500")


def op(xml: str) -> ET.Element:
    return parse_xml(f'<m:FindItem {NS} Traversal="Shallow">{xml}</m:FindItem>')


def test_restriction_subset() -> None:
    found = parse_restriction(
        op(
            "<m:Restriction><t:And>"
            '<t:IsEqualTo><t:FieldURI FieldURI="message:IsRead"/>'
            '<t:FieldURIOrConstant><t:Constant Value="false"/></t:FieldURIOrConstant></t:IsEqualTo>'
            '<t:Contains ContainmentMode="Substring" ContainmentComparison="IgnoreCase">'
            '<t:FieldURI FieldURI="item:Subject"/><t:Constant Value="Invoice"/></t:Contains>'
            '<t:IsGreaterThanOrEqualTo><t:FieldURI FieldURI="item:DateTimeReceived"/>'
            '<t:FieldURIOrConstant><t:Constant Value="2026-11-01T00:00:00Z"/>'
            "</t:FieldURIOrConstant></t:IsGreaterThanOrEqualTo>"
            '<t:IsEqualTo><t:FieldURI FieldURI="message:From"/>'
            '<t:FieldURIOrConstant><t:Constant Value="v@x.test"/></t:FieldURIOrConstant>'
            "</t:IsEqualTo>"
            '<t:IsEqualTo><t:FieldURI FieldURI="item:HasAttachments"/>'
            '<t:FieldURIOrConstant><t:Constant Value="true"/></t:FieldURIOrConstant>'
            "</t:IsEqualTo>"
            "</t:And></m:Restriction>"
        ).find(f"{{{MNS}}}Restriction")
    )
    assert found == (
        Condition("isRead", "eq", False),
        Condition("subject", "contains", "Invoice"),
        Condition("receivedDateTime", "ge", datetime(2026, 11, 1, tzinfo=UTC)),
        Condition("from", "eq", "v@x.test"),
        Condition("hasAttachments", "eq", True),
    )
    assert parse_restriction(None) == ()


@pytest.mark.parametrize(
    ("xml", "code"),
    [
        ("<t:Or/>", "ErrorUnsupportedQueryFilter"),
        ("<t:Not/>", "ErrorUnsupportedQueryFilter"),
        (
            '<t:IsEqualTo><t:FieldURI FieldURI="item:Importance"/><t:FieldURIOrConstant>'
            '<t:Constant Value="High"/></t:FieldURIOrConstant></t:IsEqualTo>',
            "ErrorUnsupportedQueryFilter",
        ),
        (
            '<t:IsGreaterThan><t:FieldURI FieldURI="message:IsRead"/><t:FieldURIOrConstant>'
            '<t:Constant Value="true"/></t:FieldURIOrConstant></t:IsGreaterThan>',
            "ErrorUnsupportedQueryFilter",
        ),
        (
            '<t:IsEqualTo><t:FieldURI FieldURI="message:IsRead"/><t:FieldURIOrConstant>'
            '<t:Constant Value="maybe"/></t:FieldURIOrConstant></t:IsEqualTo>',
            "ErrorInvalidValueForProperty",
        ),
        (
            '<t:IsLessThan><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURIOrConstant>'
            '<t:Constant Value="soon"/></t:FieldURIOrConstant></t:IsLessThan>',
            "ErrorInvalidValueForProperty",
        ),
    ],
)
def test_restriction_refusals(xml: str, code: str) -> None:
    elem = op(f"<m:Restriction>{xml}</m:Restriction>").find(f"{{{MNS}}}Restriction")
    with pytest.raises(SoapError) as info:
        parse_restriction(elem)
    assert info.value.code == code


def test_page_view_sort_and_shape() -> None:
    elem = op(
        "<m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties>"
        '<t:FieldURI FieldURI="item:Subject"/></t:AdditionalProperties></m:ItemShape>'
        '<m:IndexedPageItemView MaxEntriesReturned="5" Offset="10" BasePoint="Beginning"/>'
        '<m:SortOrder><t:FieldOrder Order="Ascending">'
        '<t:FieldURI FieldURI="item:DateTimeReceived"/></t:FieldOrder></m:SortOrder>'
    )
    view = parse_page_view(elem)
    assert (view.offset, view.max_entries, view.from_end) == (10, 5, False)
    assert sort_descending(elem) is False
    assert sort_descending(op("")) is True
    shape = parse_shape(elem)
    assert shape.base == "IdOnly" and shape.wants("item:Subject") and not shape.wants("item:Body")
    with pytest.raises(SoapError):
        parse_page_view(op('<m:IndexedPageItemView MaxEntriesReturned="0" Offset="0"/>'))
    with pytest.raises(SoapError):
        parse_page_view(op('<m:IndexedPageItemView MaxEntriesReturned="x" Offset="0"/>'))
    mime = parse_shape(
        op(
            "<m:ItemShape><t:BaseShape>Default</t:BaseShape>"
            "<t:IncludeMimeContent>true</t:IncludeMimeContent></m:ItemShape>"
        )
    )
    assert mime.include_mime


RAW = (
    b"From: Vendor <v@x.test>\r\nTo: a@x.test\r\nSubject: Invoice\r\n"
    b"Message-ID: <1@x.test>\r\n\r\nBody text\r\n"
)
VIEW = MessageView("ID1", "CK1", "F1", RAW, True, False, datetime(2026, 11, 2, tzinfo=UTC))


def test_message_xml_shapes() -> None:
    idonly = message_xml(VIEW, ItemShape(base="IdOnly"))
    assert [c.tag.rpartition("}")[2] for c in idonly] == ["ItemId"]
    item_id = idonly.find(f"{{{TNS}}}ItemId")
    assert item_id is not None and item_id.attrib == {"Id": "ID1", "ChangeKey": "CK1"}
    full = message_xml(VIEW, ItemShape(include_mime=True))
    assert full.findtext(f"{{{TNS}}}Subject") == "Invoice"
    assert full.findtext(f"{{{TNS}}}IsRead") == "true"
    assert full.findtext(f"{{{TNS}}}DateTimeReceived") == "2026-11-02T00:00:00Z"
    assert full.findtext(f"{{{TNS}}}From/{{{TNS}}}Mailbox/{{{TNS}}}EmailAddress") == "v@x.test"
    assert full.findtext(f"{{{TNS}}}Body") == "Body text\r\n"
    mime = full.findtext(f"{{{TNS}}}MimeContent")
    assert mime is not None and base64.b64decode(mime) == RAW
    listed = message_xml(VIEW, ItemShape(), with_body=False)
    assert listed.find(f"{{{TNS}}}Body") is None
    extra = message_xml(VIEW, ItemShape(base="IdOnly", fields=frozenset({"message:isread"})))
    assert extra.findtext(f"{{{TNS}}}IsRead") == "true"
    assert extra.find(f"{{{TNS}}}Subject") is None


def test_folder_xml() -> None:
    elem = folder_xml(FolderView("F1", "Inbox", "R", 2, 3, 9))
    assert elem.findtext(f"{{{TNS}}}DisplayName") == "Inbox"
    assert elem.findtext(f"{{{TNS}}}TotalCount") == "9"
    assert elem.findtext(f"{{{TNS}}}UnreadCount") == "3"
    assert elem.findtext(f"{{{TNS}}}ChildFolderCount") == "2"
    assert elem.findtext(f"{{{TNS}}}FolderClass") == "IPF.Note"
