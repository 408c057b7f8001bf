"""Unit tests for EWS reply parsing, error mapping and the streaming MIME decoder."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from mailgate.errors import ProtocolError
from mailgate.protocols.base import (
    MailAuthenticationError,
    MailboxAccessError,
    MessageRef,
    ThrottledError,
)
from mailgate.protocols.ews import replies as reply

from . import ews_samples as samples

KW = {"mailbox": "approvals@contoso.example", "app_only": True}


def test_find_folder_page() -> None:
    folders, next_offset = reply.parse_folders(reply.response_messages(samples.FIND_FOLDER, **KW))
    assert next_offset is None
    assert [(f.id, f.parent_id, f.display_name) for f in folders] == [
        ("F-INBOX", "F-ROOT", "Inbox"),
        ("F-INV", "F-INBOX", "Invoices"),
        ("F-CAL", "F-ROOT", "Calendar"),
        ("F-DEL", "F-ROOT", "Deleted Items"),
    ]
    assert (folders[0].total, folders[0].unread, folders[0].folder_class) == (3, 1, "IPF.Note")
    assert folders[3].folder_class is None


def test_find_item_pages() -> None:
    page = reply.parse_found_items(
        reply.response_messages(samples.find_item(["A", "B"], 2, False), **KW)
    )
    assert [i[0] for i in page.items] == ["A", "B"] and page.next_offset == 2
    assert page.items[0][1] == "CK-A"
    assert page.items[1][2] == datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
    last = reply.parse_found_items(reply.response_messages(samples.find_item(["C"], 3, True), **KW))
    assert last.next_offset is None


def test_get_item_summaries() -> None:
    (summary,) = reply.parse_summaries(reply.response_messages(samples.GET_ITEM, **KW), "Inbox")
    assert summary.ref == MessageRef("Inbox", "AAMk1=", "CQ1")
    assert summary.subject == "Invoice 4711"
    assert summary.from_address == "billing@vendor.example"
    assert summary.to == ("alice@contoso.example", "bob@contoso.example")
    assert summary.message_id == "<4711@vendor.example>"
    assert (summary.size, summary.seen, summary.flagged, summary.has_attachments) == (
        11234,
        False,
        True,
        True,
    )


def test_ids_and_sync() -> None:
    assert reply.parse_item_ids(reply.response_messages(samples.MOVE_ITEM, **KW)) == [
        ("NEW1=", "CQN")
    ]
    assert reply.parse_folder_ids(reply.response_messages(samples.GET_FOLDER, **KW)) == [
        "F-INBOX",
        "F-DEL",
    ]
    changes = reply.parse_sync(
        reply.response_messages(samples.sync("S2", False, ["N1", "N2"], ["D1"]), **KW)
    )
    assert (changes.sync_state, changes.last) == ("S2", False)
    assert [c[0] for c in changes.created] == ["N1", "N2"] and changes.deleted == ["D1"]


def test_server_busy_fault_carries_back_off() -> None:
    with pytest.raises(ThrottledError) as info:
        reply.response_messages(samples.SERVER_BUSY_FAULT, **KW)
    assert info.value.retry_after == pytest.approx(297.749)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("ErrorAccessDenied", "Test-ApplicationAccessPolicy"),
        ("ErrorImpersonateUserDenied", "full_access_as_app"),
        ("ErrorNonExistentMailbox", "primary SMTP address"),
        ("ErrorInvalidExchangeImpersonationHeaderData", "PrimarySmtpAddress"),
    ],
)
def test_mailbox_errors(code: str, words: str) -> None:
    with pytest.raises(MailboxAccessError) as info:
        reply.response_messages(samples.error("FindItem", code, "Access is denied."), **KW)
    assert words in info.value.remedy
    assert info.value.reply == code


def test_access_denied_delegated_names_full_access() -> None:
    error = reply.error_for_code(
        "ErrorAccessDenied", "", mailbox="approvals@contoso.example", app_only=False
    )
    assert isinstance(error, MailboxAccessError) and "FullAccess" in error.remedy


def test_other_error_codes() -> None:
    with pytest.raises(reply.EwsError) as info:
        reply.response_messages(samples.error("GetItem", "ErrorItemNotFound", "gone"), **KW)
    assert info.value.code == "ErrorItemNotFound"
    busy = samples.error(
        "FindItem",
        "ErrorServerBusy",
        "busy",
        '<m:MessageXml><t:Value Name="BackOffMilliseconds">1500</t:Value></m:MessageXml>',
    )
    with pytest.raises(ThrottledError) as throttled:
        reply.response_messages(busy, **KW)
    assert throttled.value.retry_after == 1.5
    with pytest.raises(MailboxAccessError):
        reply.response_messages(samples.IMPERSONATION_FAULT, **KW)


def test_http_errors() -> None:
    e401 = reply.error_from_http(
        401, {"x-ms-diagnostics": '2000008;reason="The token has expired."'}, b"", **KW
    )
    assert isinstance(e401, MailAuthenticationError) and "expired" in e401.reply
    e403 = reply.error_from_http(403, {}, b"", **KW)
    assert isinstance(e403, MailboxAccessError)
    assert "EWSEnabled" in e403.remedy and "ApplicationAccessPolicy" in e403.remedy
    busy = reply.error_from_http(500, {}, samples.SERVER_BUSY_FAULT, **KW)
    assert isinstance(busy, ThrottledError)
    other = reply.error_from_http(502, {}, b"<html>bad gateway</html>", **KW)
    assert isinstance(other, reply.EwsError) and other.code == "HTTP 502"


def test_malformed_replies() -> None:
    for body in (b"not xml", b"<a/>", b'<!DOCTYPE x [<!ENTITY e "boom">]><a>&e;</a>'):
        with pytest.raises(ProtocolError):
            reply.response_messages(body, **KW)


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1000, 1 << 20])
def test_mime_decoder_any_chunking(chunk: int) -> None:
    body = samples.get_item_mime()
    dest = io.BytesIO()
    decoder = reply.MimeStreamDecoder(dest, **KW)  # type: ignore[arg-type]
    for start in range(0, len(body), chunk):
        decoder.feed(body[start : start + chunk])
    assert decoder.close() == len(samples.MIME)
    assert dest.getvalue() == samples.MIME


def test_mime_decoder_unwrapped_base64() -> None:
    dest = io.BytesIO()
    decoder = reply.MimeStreamDecoder(dest, **KW)  # type: ignore[arg-type]
    decoder.feed(samples.get_item_mime(wrap=10**9))
    assert decoder.close() == len(samples.MIME) and dest.getvalue() == samples.MIME


def test_mime_decoder_maps_errors_and_refuses_bad_input() -> None:
    decoder = reply.MimeStreamDecoder(io.BytesIO(), **KW)  # type: ignore[arg-type]
    decoder.feed(samples.error("GetItem", "ErrorAccessDenied", "Access is denied."))
    with pytest.raises(MailboxAccessError):
        decoder.close()
    decoder = reply.MimeStreamDecoder(io.BytesIO(), **KW)  # type: ignore[arg-type]
    decoder.feed(samples.response("GetItem", "<m:Items/>"))
    with pytest.raises(ProtocolError, match="no MimeContent"):
        decoder.close()
    decoder = reply.MimeStreamDecoder(io.BytesIO(), **KW)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="base64"):
        decoder.feed(samples.get_item_mime().replace(b"RnJvbT", b"R!!vbT"))
    decoder = reply.MimeStreamDecoder(io.BytesIO(), **KW)  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        decoder.feed(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><a/>')
