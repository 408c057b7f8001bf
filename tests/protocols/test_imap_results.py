"""Meaning of IMAP replies: LIST/STATUS, COPYUID, BODYSTRUCTURE attachments, summaries, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailgate.errors import ProtocolError, TransportError
from mailgate.protocols.base import (
    MailAuthenticationError,
    MailboxAccessError,
    MessageRef,
    ThrottledError,
)
from mailgate.protocols.imap.parser import (
    ParseError,
    RawResponse,
    StatusResponse,
    fetch_items,
    parse_response,
    tokenize,
)
from mailgate.protocols.imap.results import (
    attachment_parts,
    authentication_failure,
    command_failure,
    copyuid_map,
    folder_from_list,
    parse_internaldate,
    parse_list,
    parse_status,
    summary_from_fetch,
)


def values(data: bytes) -> list:  # type: ignore[type-arg]
    return tokenize(RawResponse.from_bytes(data))


def test_list_entries_become_folders() -> None:
    entry = parse_list(values(b'(\\HasNoChildren \\Trash) "/" "Deleted Items"'))
    assert folder_from_list(entry, {"Deleted Items": (3, 1)}).special_use == "\\Trash"
    assert folder_from_list(entry, {"Deleted Items": (3, 1)}).total == 3
    dotted = parse_list(values(b'(\\HasNoChildren) "." "Kunden.Entw&APw-rfe"'))
    folder = folder_from_list(dotted, {})
    assert (folder.name, folder.id, folder.special_use) == (
        "Kunden/Entwürfe",
        "Kunden.Entw&APw-rfe",
        None,
    )
    inbox = folder_from_list(parse_list(values(b'() "/" inbox')), {})
    assert (inbox.name, inbox.special_use) == ("INBOX", "\\Inbox")
    literal = parse_list(values(b'() "/" {6}\r\nA &- B'))
    assert (literal.wire_name, literal.name) == ("A &- B", "A & B")
    with pytest.raises(ParseError):
        parse_list(values(b'"/" x'))


def test_status() -> None:
    assert parse_status(values(b'"Sent Items" (MESSAGES 4 UNSEEN 0)')) == (
        "Sent Items",
        {"MESSAGES": 4, "UNSEEN": 0},
    )
    with pytest.raises(ParseError):
        parse_status(values(b"x"))


def test_copyuid() -> None:
    assert copyuid_map("COPYUID 9 3:4,7 11:13") == {3: 11, 4: 12, 7: 13}
    assert copyuid_map("COPYUID 9 5 20") == {5: 20}
    assert copyuid_map("APPENDUID 9 5") == {}
    assert copyuid_map("COPYUID 9 1:3 5") == {}  # lengths differ: say nothing
    assert copyuid_map(None) == {}


MIXED = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 12 1 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "quoted-printable" 40 2 NIL NIL NIL NIL)'
    b' "alternative" ("boundary" "b2") NIL NIL NIL)'
    b'("application" "pdf" ("name" "invoice 4711.pdf") NIL NIL "base64" 14872 NIL'
    b' ("attachment" ("filename" "invoice 4711.pdf")) NIL NIL)'
    b'("image" "png" ("name" "=?utf-8?q?Gr=C3=BC=C3=9Fe.png?=") "<logo>" NIL "base64" 400 NIL'
    b' ("inline" NIL) NIL NIL)'
    b'("text" "plain" NIL NIL NIL "8bit" 5 1 NIL'
    b' ("attachment" ("filename*" "utf-8\'\'notes%20%C3%A4.txt")) NIL NIL)'
    b' "mixed" ("boundary" "b1") NIL NIL NIL)'
)


def test_attachment_parts_with_sections_and_names() -> None:
    (structure,) = values(MIXED)
    parts = attachment_parts(structure)
    assert [(p.section, p.content_type, p.filename, p.encoding, p.size) for p in parts] == [
        ("2", "application/pdf", "invoice 4711.pdf", "base64", 14872),
        ("3", "image/png", "Grüße.png", "base64", 400),
        ("4", "text/plain", "notes ä.txt", "8bit", 5),
    ]


def test_single_part_and_attached_message() -> None:
    (plain,) = values(b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 1 NIL NIL NIL)')
    assert attachment_parts(plain) == []
    (pdf,) = values(b'("application" "pdf" ("name" "a.pdf") NIL NIL "base64" 10 NIL NIL NIL)')
    assert [p.section for p in attachment_parts(pdf)] == ["1"]
    (forwarded,) = values(
        b'(("text" "plain" NIL NIL NIL "7bit" 1 1 NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7bit" 300 NIL ("text" "plain" NIL NIL NIL "7bit" 3 1)'
        b' 9 NIL ("attachment" ("filename" "fwd.eml")) NIL NIL) "mixed" NIL NIL NIL NIL)'
    )
    (part,) = attachment_parts(forwarded)
    assert (part.section, part.content_type, part.filename) == ("2", "message/rfc822", "fwd.eml")
    assert attachment_parts(None) == [] and attachment_parts([]) == []


def test_internaldate() -> None:
    assert parse_internaldate(b"17-Jul-1996 02:44:25 -0700") == datetime(
        1996, 7, 17, 2, 44, 25, tzinfo=timezone(timedelta(hours=-7))
    )
    assert parse_internaldate(b" 7-Jul-1996 02:44:25 +0000") == datetime(
        1996, 7, 7, 2, 44, 25, tzinfo=UTC
    )
    with pytest.raises(ParseError):
        parse_internaldate(b"yesterday")


def test_summary_from_fetch() -> None:
    header = (
        b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.com>\r\nTo: a@x.com, b@x.com\r\n"
        b"Subject: =?utf-8?b?UmVjaG51bmcgZsO8cg==?=\r\nDate: Tue, 02 Jan 2024 08:00:00 +0100\r\n"
        b"Message-ID: <m1@x>\r\n\r\n"
    )
    data = (
        b"* 1 FETCH (UID 5 FLAGS (\\Seen \\Flagged) RFC822.SIZE 1234 BODYSTRUCTURE "
        + MIXED
        + b" BODY[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID)] {%d}\r\n" % len(header)
        + header
        + b")\r\n"
    )
    items = fetch_items(parse_response(RawResponse.from_bytes(data)).values)  # type: ignore[union-attr]
    ref = MessageRef("INBOX", "1:5")
    s = summary_from_fetch(ref, items)
    assert (s.subject, s.from_address, s.to, s.cc) == (
        "Rechnung für",
        "j@example.com",
        ("a@x.com", "b@x.com"),
        (),
    )
    assert s.date == datetime(2024, 1, 2, 7, tzinfo=UTC)
    assert (s.message_id, s.size, s.seen, s.flagged, s.has_attachments) == (
        "<m1@x>",
        1234,
        True,
        True,
        True,
    )
    bare = summary_from_fetch(ref, {"UID": "5", "FLAGS": []})
    assert (bare.subject, bare.from_address, bare.date, bare.has_attachments) == (
        "",
        "",
        None,
        None,
    )


def status(text: bytes) -> StatusResponse:
    response = parse_response(RawResponse.from_bytes(text))
    assert isinstance(response, StatusResponse)
    return response


def test_command_failures() -> None:
    error = command_failure("LIST", status(b"A2 BAD User is authenticated but not connected.\r\n"))
    assert isinstance(error, MailboxAccessError)
    assert error.reply == "BAD User is authenticated but not connected."
    assert "FullAccess" in error.remedy
    assert isinstance(
        command_failure("X", status(b"A1 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")),
        MailAuthenticationError,
    )
    busy = command_failure("FETCH", status(b"A1 NO [UNAVAILABLE] Try later\r\n"))
    assert isinstance(busy, ThrottledError) and busy.retry_after == 60
    assert isinstance(command_failure("X", status(b"* BYE Autologout\r\n")), TransportError)
    missing = command_failure("SELECT", status(b"A1 NO [NONEXISTENT] Mailbox doesn't exist\r\n"))
    assert isinstance(missing, ProtocolError) and "folder" in missing.message
    other = command_failure("STORE", status(b"A1 BAD Error in IMAP command\r\n"))
    assert type(other) is ProtocolError and "STORE" in other.message


def test_authentication_failure_keeps_reply() -> None:
    error = authentication_failure("NO AUTHENTICATE failed.")
    assert error.reply == "NO AUTHENTICATE failed."
    assert "New-ServicePrincipal" in error.remedy
