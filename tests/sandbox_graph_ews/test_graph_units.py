"""Unit tests of the pure Graph parts: $filter/$select/paging, JSON mapping, throttle, delta."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailgate.sandbox.exchange.store import Change
from mailgate.sandbox.exchange.throttle import Limits, Throttle
from mailgate.sandbox.graph.delta import DeltaState, DeltaTokens, page_size
from mailgate.sandbox.graph.query import (
    Condition,
    MessageFacts,
    QueryError,
    decode_skiptoken,
    encode_skiptoken,
    matches,
    page_link,
    parse_filter,
    parse_options,
    parse_select,
)
from mailgate.sandbox.graph.resources import (
    MessageView,
    error_body,
    graph_datetime,
    message_json,
    mime_from_json,
    parse_mail,
    preview,
    project,
)

NOV1 = datetime(2026, 11, 1, tzinfo=UTC)

FACTS = MessageFacts(
    is_read=False,
    has_attachments=True,
    received=datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
    from_address="Vendor@Example.com",
    subject="Invoice 4711 overdue",
)


# -- $filter ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("isRead eq false", (Condition("isRead", "eq", False),)),
        ("hasAttachments eq true", (Condition("hasAttachments", "eq", True),)),
        (
            "from/emailAddress/address eq 'a@b.c'",
            (Condition("from", "eq", "a@b.c"),),
        ),
        ("contains(subject,'it''s')", (Condition("subject", "contains", "it's"),)),
        (
            "receivedDateTime ge 2026-11-01T00:00:00Z",
            (Condition("receivedDateTime", "ge", NOV1),),
        ),
        (
            "isRead eq false and receivedDateTime lt 2026-11-01T00:00:00Z",
            (Condition("isRead", "eq", False), Condition("receivedDateTime", "lt", NOV1)),
        ),
        ("IsRead EQ TRUE", (Condition("isRead", "eq", True),)),
    ],
)
def test_parse_filter_subset(text: str, expected: tuple[Condition, ...]) -> None:
    assert parse_filter(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("isRead eq false or isRead eq true", "ErrorInvalidUrlQueryFilter"),
        ("not isRead eq true", "ErrorInvalidUrlQueryFilter"),
        ("(isRead eq true)", "ErrorInvalidUrlQueryFilter"),
        ("isRead gt true", "ErrorInvalidUrlQueryFilter"),
        ("startswith(subject,'x')", "BadRequest"),
        ("importance eq 'high'", "BadRequest"),
        ("isRead eq 'yes'", "BadRequest"),
        ("receivedDateTime ge 'x'", "BadRequest"),
        ("isRead eq", "BadRequest"),
        ("isRead eq true and", "BadRequest"),
        ("isRead eq true isRead", "BadRequest"),
        ("subject eq 'unterminated", "BadRequest"),
        ("", "BadRequest"),
    ],
)
def test_parse_filter_refuses_the_rest(text: str, code: str) -> None:
    with pytest.raises(QueryError) as info:
        parse_filter(text)
    assert info.value.code == code


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("isRead eq false", True),
        ("isRead eq true", False),
        ("hasAttachments eq true", True),
        ("from/emailAddress/address eq 'vendor@example.com'", True),
        ("from/emailAddress/address eq 'other@example.com'", False),
        ("contains(subject,'INVOICE')", True),
        ("contains(subject,'receipt')", False),
        ("receivedDateTime ge 2026-11-02T08:00:00Z", True),
        ("receivedDateTime gt 2026-11-02T08:00:00Z", False),
        ("receivedDateTime le 2026-11-02T08:00:00Z", True),
        ("receivedDateTime lt 2026-11-02T08:00:00+01:00", False),
        ("isRead eq false and hasAttachments eq false", False),
    ],
)
def test_matches(text: str, hit: bool) -> None:
    assert matches(parse_filter(text), FACTS) is hit


# -- $select, paging, options -----------------------------------------------------------------


def test_select_canonicalises_and_refuses_unknown() -> None:
    assert parse_select("Subject, isread,subject") == ("subject", "isRead")
    with pytest.raises(QueryError):
        parse_select("subject,nonsense")


def test_skiptoken_round_trip_and_garbage() -> None:
    assert decode_skiptoken(encode_skiptoken(30)) == 30
    for bad in ("", "!!!", encode_skiptoken(-1), "eyJ4IjoxfQ"):
        with pytest.raises(QueryError):
            decode_skiptoken(bad)


def test_options_defaults_and_limits() -> None:
    options = parse_options([])
    assert (options.top, options.skip, options.descending, options.filter) == (10, 0, True, ())
    assert parse_options([("$top", "1000")]).top == 1000
    assert parse_options([("$orderby", "receivedDateTime asc")]).descending is False
    assert parse_options([("$orderby", "receivedDateTime desc")]).descending is True
    assert parse_options([("$skiptoken", encode_skiptoken(7))]).skip == 7
    assert parse_options([("$skip", "3")]).skip == 3
    for bad in (
        [("$top", "0")],
        [("$top", "1001")],
        [("$top", "x")],
        [("$skip", "-1")],
        [("$orderby", "subject")],
        [("$expand", "attachments")],
    ):
        with pytest.raises(QueryError):
            parse_options(bad)


def test_page_link_keeps_the_query_and_replaces_the_position() -> None:
    link = page_link(
        "https://h/v1.0/users/a/messages",
        [("$select", "subject,isRead"), ("$skip", "5"), ("$top", "2")],
        12,
    )
    assert link.startswith("https://h/v1.0/users/a/messages?$select=subject,isRead&$top=2&")
    assert "$skip=" not in link
    token = link.rpartition("$skiptoken=")[2]
    assert decode_skiptoken(token) == 12


# -- JSON mapping -----------------------------------------------------------------------------

RAW = (
    b"From: Vendor Ltd <vendor@example.com>\r\n"
    b"To: Alice <alice@contoso.test>, bob@contoso.test\r\n"
    b"Cc: carol@contoso.test\r\n"
    b"Subject: Invoice 4711\r\n"
    b"Date: Mon, 02 Nov 2026 09:00:00 +0100\r\n"
    b"Message-ID: <abc@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nPlease   find\r\n the invoice.\r\n"
    b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment;"
    b' filename="i.pdf"\r\n\r\n%PDF\r\n--b--\r\n'
)
VIEW = MessageView(
    item_id="AAMk1",
    change_key="CK1",
    folder_id="F1",
    raw=RAW,
    is_read=False,
    flagged=True,
    received=datetime(2026, 11, 2, 8, 1, 2, 500, tzinfo=UTC),
)


def test_parse_mail_reads_addresses_dates_body_and_attachments() -> None:
    mail = parse_mail(RAW)
    assert mail.from_ is not None and mail.from_.address == "vendor@example.com"
    assert mail.from_.name == "Vendor Ltd"
    assert [a.address for a in mail.to] == ["alice@contoso.test", "bob@contoso.test"]
    assert mail.sent == datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    assert mail.has_attachments is True
    assert mail.body_type == "text" and "Please" in mail.body


def test_message_json_shape() -> None:
    data = message_json(VIEW)
    assert data["id"] == "AAMk1" and data["changeKey"] == "CK1"
    assert data["receivedDateTime"] == "2026-11-02T08:01:02Z"
    assert data["sentDateTime"] == "2026-11-02T08:00:00Z"
    assert data["from"] == {"emailAddress": {"name": "Vendor Ltd", "address": "vendor@example.com"}}
    assert data["sender"] == data["from"]
    assert data["toRecipients"][1] == {
        "emailAddress": {"name": "bob@contoso.test", "address": "bob@contoso.test"}
    }
    assert data["ccRecipients"][0]["emailAddress"]["address"] == "carol@contoso.test"
    assert data["bodyPreview"] == "Please find the invoice."
    assert data["flag"] == {"flagStatus": "flagged"}
    assert data["isRead"] is False and data["hasAttachments"] is True
    assert data["internetMessageId"] == "<abc@example.com>"
    assert data["parentFolderId"] == "F1"
    assert data["body"]["contentType"] == "text"


def test_html_body_and_preview() -> None:
    raw = (
        b"From: a@b.c\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n"
        b"<html><head><style>p{}</style></head><body><p>Hello <b>you</b></p></body></html>"
    )
    mail = parse_mail(raw)
    assert mail.body_type == "html" and "<b>you</b>" in mail.body
    assert preview(mail.text) == "Hello you"
    assert len(preview("x " * 400)) == 255


def test_project_keeps_id_and_selected() -> None:
    data = message_json(VIEW)
    assert set(project(data, ("subject",))) == {"@odata.etag", "id", "subject"}
    assert project(data, None) is data


def test_error_body_shape() -> None:
    body = error_body("ErrorItemNotFound", "gone", "rid", "", datetime(2026, 1, 2, 3, 4, 5))
    assert body == {
        "error": {
            "code": "ErrorItemNotFound",
            "message": "gone",
            "innerError": {
                "date": body["error"]["innerError"]["date"],
                "request-id": "rid",
                "client-request-id": "rid",
            },
        }
    }
    assert graph_datetime(datetime(2026, 1, 2, 3, 4, 5, 999, tzinfo=UTC)) == "2026-01-02T03:04:05Z"


def test_mime_from_json() -> None:
    message = {
        "subject": "Hi",
        "body": {"contentType": "HTML", "content": "<p>x</p>"},
        "toRecipients": [{"emailAddress": {"address": "to@x.test", "name": "To"}}],
        "bccRecipients": [{"emailAddress": {"address": "hidden@x.test"}}],
    }
    msg = mime_from_json(message, "me@x.test", NOV1)
    assert msg["From"] == "me@x.test" and msg["To"] == "To <to@x.test>"
    assert msg["Bcc"] == "hidden@x.test" and msg.get_content_type() == "text/html"
    with pytest.raises(ValueError, match="recipient"):
        mime_from_json({"subject": "x"}, "me@x.test", NOV1)
    with pytest.raises(ValueError, match="toRecipients"):
        mime_from_json({"toRecipients": [{"emailAddress": {}}]}, "me@x.test", NOV1)
    draft = mime_from_json({"subject": "d"}, "me@x.test", NOV1, require_recipients=False)
    assert draft["To"] is None


# -- throttle ---------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_window_and_retry_after() -> None:
    clock = Clock()
    throttle = Throttle(clock)
    key = Throttle.key("App", "Box@X")
    limits = Limits(per_window=3, concurrent=None)
    for _ in range(3):
        assert throttle.enter(key, limits) is None
        throttle.leave(key)
        clock.now += 100
    assert throttle.enter(key, limits) == 300  # the first admission leaves the window then
    clock.now += 300
    assert throttle.enter(key, limits) is None
    assert throttle.enter(Throttle.key("other", "box@x"), limits) is None


def test_throttle_concurrency_and_leave() -> None:
    throttle = Throttle(Clock())
    key = Throttle.key("a", "b")
    limits = Limits(per_window=None, concurrent=2)
    assert throttle.enter(key, limits) is None
    assert throttle.enter(key, limits) is None
    assert throttle.in_flight(key) == 2
    assert throttle.enter(key, limits) == 1
    throttle.leave(key)
    assert throttle.enter(key, limits) is None


def test_throttle_forced_refusals_and_reset() -> None:
    throttle = Throttle(Clock())
    key = Throttle.key("a", "box")
    unlimited = Limits(None, None)
    throttle.force(2, 7, mailbox="BOX")
    assert throttle.enter(Throttle.key("a", "other"), unlimited) is None
    assert throttle.enter(key, unlimited) == 7
    assert throttle.enter(key, unlimited) == 7
    assert throttle.enter(key, unlimited) is None
    throttle.force(5, 3)
    throttle.reset()
    assert throttle.enter(key, unlimited) is None


# -- delta bookkeeping ------------------------------------------------------------------------


def test_delta_tokens() -> None:
    tokens = DeltaTokens(limit=2)
    skip = tokens.issue(DeltaState("box", "F", 5, (Change("created", "i1"),)))
    delta = tokens.issue(DeltaState("box", "F", 5))
    assert tokens.redeem(skip, "other", "F") is None
    assert tokens.redeem(skip, "BOX", "F") is not None
    assert tokens.redeem(skip, "box", "F") is None  # skip tokens are single-use
    assert tokens.redeem(delta, "box", "F") == tokens.redeem(delta, "box", "F")
    tokens.issue(DeltaState("box", "F", 6))
    tokens.issue(DeltaState("box", "F", 7))
    assert tokens.redeem(delta, "box", "F") is None  # evicted past the bound
    assert tokens.expire_all() == 2


@pytest.mark.parametrize(
    ("prefer", "size"),
    [
        (None, 10),
        ("odata.maxpagesize=3", 3),
        ('odata.track-changes, odata.maxpagesize="25"', 25),
        ("odata.maxpagesize=0", 1),
        ("odata.maxpagesize=x", 10),
        ("odata.maxpagesize=5000", 1000),
    ],
)
def test_page_size(prefer: str | None, size: int) -> None:
    assert page_size(prefer) == size
