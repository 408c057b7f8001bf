"""Unit tests for Graph request building and JSON/error parsing (shapes from Graph's docs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailgate.protocols.base import (
    MailAuthenticationError,
    MailboxAccessError,
    MessageRef,
    SearchCriteria,
    ThrottledError,
)
from mailgate.protocols.graph.shapes import (
    GraphError,
    error_from_response,
    odata_datetime,
    odata_string,
    parse_folder,
    parse_page,
    parse_summary,
    search_params,
    well_known_name,
)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("O'Brien", "'O''Brien'"),
        ("''", "''''''"),
        ("Rechnung Müller ü€", "'Rechnung Müller ü€'"),
        ("a and b eq 'c'", "'a and b eq ''c'''"),
    ],
)
def test_odata_string_doubles_quotes(value: str, literal: str) -> None:
    assert odata_string(value) == literal


def test_odata_datetime_is_utc_and_needs_a_zone() -> None:
    cest = timezone(timedelta(hours=2))
    assert odata_datetime(datetime(2024, 5, 1, 10, 0, tzinfo=cest)) == "2024-05-01T08:00:00Z"
    with pytest.raises(ValueError):
        odata_datetime(datetime(2024, 5, 1))


def test_no_criteria_orders_without_filter() -> None:
    params = search_params(SearchCriteria(), 50)
    assert "$filter" not in params
    assert params["$orderby"] == "receivedDateTime asc"
    assert params["$top"] == "50"
    assert search_params(SearchCriteria(), 5000)["$top"] == "1000"


def test_filter_starts_with_the_orderby_property() -> None:
    criteria = SearchCriteria(
        unread=True,
        from_address="o'neil@example.com",
        subject_contains="Invoice 'Q2'",
        has_attachments=True,
    )
    params = search_params(criteria, 10)
    assert params["$filter"] == (
        "receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false and "
        "from/emailAddress/address eq 'o''neil@example.com' and "
        "contains(subject,'Invoice ''Q2''') and hasAttachments eq true"
    )
    assert params["$orderby"] == "receivedDateTime asc"


def test_date_range_filter() -> None:
    since = datetime(2024, 1, 1, tzinfo=UTC)
    before = datetime(2024, 2, 1, tzinfo=UTC)
    params = search_params(SearchCriteria(since=since, before=before, unread=False), 10)
    assert params["$filter"] == (
        "receivedDateTime ge 2024-01-01T00:00:00Z and receivedDateTime lt "
        "2024-02-01T00:00:00Z and isRead eq true"
    )
    params = search_params(SearchCriteria(has_attachments=False), 10)
    assert params["$filter"].endswith("hasAttachments eq false")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("INBOX", "inbox"),
        ("Deleted Items", "deleteditems"),
        ("sentitems", "sentitems"),
        ("Inbox/Invoices", None),
        ("Archive", "archive"),
        ("Rechnungen", None),
    ],
)
def test_well_known_names(name: str, expected: str | None) -> None:
    assert well_known_name(name) == expected


MESSAGE = {
    "@odata.etag": 'W/"CQAAABYAAAAiIsqMbYjsT5e/T7KzowPTAAAAAAPL"',
    "id": "AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAA=",
    "changeKey": "CQAAABYAAAAiIsqMbYjsT5e/T7KzowPTAAAAAAPL",
    "receivedDateTime": "2024-05-01T08:00:00Z",
    "subject": "Invoice 4711",
    "isRead": False,
    "hasAttachments": True,
    "internetMessageId": "<4711@vendor.example>",
    "from": {"emailAddress": {"name": "Vendor", "address": "billing@vendor.example"}},
    "toRecipients": [
        {"emailAddress": {"name": "Alice", "address": "alice@contoso.example"}},
        {"emailAddress": {"name": "No address"}},
    ],
    "ccRecipients": [],
    "flag": {"flagStatus": "flagged"},
}


def test_parse_summary() -> None:
    summary = parse_summary(MESSAGE, "Inbox")
    assert summary.ref == MessageRef("Inbox", MESSAGE["id"], MESSAGE["changeKey"])  # type: ignore[arg-type]
    assert summary.subject == "Invoice 4711"
    assert summary.from_address == "billing@vendor.example"
    assert summary.to == ("alice@contoso.example",)
    assert summary.cc == ()
    assert summary.date == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert summary.message_id == "<4711@vendor.example>"
    assert (summary.seen, summary.flagged, summary.has_attachments) == (False, True, True)
    bare = parse_summary({"id": "x"}, "Inbox")
    assert (bare.subject, bare.from_address, bare.date, bare.has_attachments) == (
        "",
        "",
        None,
        None,
    )


def test_parse_page_and_folder() -> None:
    page = parse_page(
        {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('a')/messages",
            "value": [MESSAGE, "junk"],
            "@odata.nextLink": "https://graph.microsoft.com/v1.0/users/a/messages?%24skip=10",
        }
    )
    assert len(page.values) == 1 and page.delta_link is None
    assert page.next_link and page.next_link.endswith("%24skip=10")
    folder = parse_folder(
        {
            "id": "AAMkAGI2TGuLAAA=",
            "displayName": "Inbox",
            "parentFolderId": "AAMkAGI2AAEKAAA=",
            "childFolderCount": 2,
            "unreadItemCount": 59,
            "totalItemCount": 60,
            "isHidden": False,
        }
    )
    assert (folder.display_name, folder.child_count, folder.total, folder.unread) == (
        "Inbox",
        2,
        60,
        59,
    )
    assert folder.well_known is None
    assert parse_folder({"id": "x", "wellKnownName": "Inbox"}).well_known == "inbox"


def _error(code: str, message: str = "msg") -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "innerError": {"request-id": "r"}}}
    ).encode()


def test_error_mapping_table() -> None:
    def err(status: int, body: bytes, **headers: str) -> Exception:
        return error_from_response(status, headers, body, mailbox="m@x", action="search")

    e401 = err(
        401,
        _error("InvalidAuthenticationToken", "Access token has expired."),
        **{"x-ms-diagnostics": '2000001;reason="expired"'},
    )
    assert isinstance(e401, MailAuthenticationError) and "expired" in e401.reply
    e403 = err(403, _error("ErrorAccessDenied", "Access to OData is disabled."))
    assert isinstance(e403, MailboxAccessError)
    assert (
        "ApplicationAccessPolicy" in e403.remedy and "Test-ApplicationAccessPolicy" in e403.remedy
    )
    for code in ("ErrorInvalidUser", "MailboxNotEnabledForRESTAPI"):
        assert isinstance(err(404, _error(code)), MailboxAccessError)
    missing = err(404, _error("ErrorItemNotFound"))
    assert isinstance(missing, GraphError) and missing.code == "ErrorItemNotFound"
    t429 = err(429, _error("ApplicationThrottled"), **{"retry-after": "17"})
    assert isinstance(t429, ThrottledError) and t429.retry_after == 17
    t503 = err(503, b"<html>busy</html>")
    assert isinstance(t503, ThrottledError) and t503.retry_after == 0
    gone = err(410, _error("SyncStateNotFound"))
    assert isinstance(gone, GraphError) and gone.status == 410
    bad = err(400, _error("InefficientFilter", "The restriction or sort order is too complex"))
    assert isinstance(bad, GraphError) and "InefficientFilter" in bad.message
