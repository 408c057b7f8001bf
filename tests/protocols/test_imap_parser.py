"""IMAP response lexer and classifier on byte literals from RFC 3501, Dovecot and Exchange."""

from __future__ import annotations

import pytest

from mailgate.protocols.imap.parser import (
    Continuation,
    DataResponse,
    ParseError,
    RawResponse,
    StatusResponse,
    Streamed,
    as_int,
    as_text,
    fetch_items,
    literal_marker,
    parse_response,
    response_code,
    tokenize,
)


def parse(data: bytes) -> object:
    return parse_response(RawResponse.from_bytes(data))


def test_tagged_ok_with_code() -> None:
    r = parse(b"A3 OK [APPENDUID 38505 3955] APPEND completed\r\n")
    assert r == StatusResponse("A3", "OK", "APPENDUID 38505 3955", "APPEND completed")
    assert response_code(r.code) == ("APPENDUID", ["38505", "3955"])  # type: ignore[union-attr]


def test_exchange_texts_are_kept_verbatim() -> None:
    r = parse(b"A2 BAD User is authenticated but not connected.\r\n")
    assert isinstance(r, StatusResponse)
    assert (r.status, r.code, r.text) == ("BAD", None, "User is authenticated but not connected.")
    assert parse(b"A1 NO AUTHENTICATE failed.\r\n") == StatusResponse(
        "A1", "NO", None, "AUTHENTICATE failed."
    )
    # unbalanced quotes and brackets in free text must not break the parser
    r = parse(b'* OK The Microsoft Exchange IMAP4 service is ready. [TQBOADIA"(]\r\n')
    assert isinstance(r, StatusResponse) and r.text.endswith('[TQBOADIA"(]')


def test_dovecot_greeting_capabilities() -> None:
    r = parse(b"* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] Dovecot ready.\r\n")
    assert isinstance(r, StatusResponse)
    assert response_code(r.code) == ("CAPABILITY", ["IMAP4rev1", "SASL-IR", "AUTH=XOAUTH2"])
    assert response_code(None) == ("", [])


def test_continuations() -> None:
    assert parse(b"+ eyJzdGF0dXMiOiI0MDEifQ==\r\n") == Continuation("eyJzdGF0dXMiOiI0MDEifQ==")
    assert parse(b"+\r\n") == Continuation("")
    assert parse(b"+ idling\r\n") == Continuation("idling")


def test_numbered_data() -> None:
    assert parse(b"* 23 EXISTS\r\n") == DataResponse("EXISTS", 23, [])
    assert parse(b"* SEARCH 2 84 882\r\n") == DataResponse("SEARCH", None, ["2", "84", "882"])
    assert parse(b"* SEARCH\r\n") == DataResponse("SEARCH", None, [])


def test_list_with_quoted_name_and_escapes() -> None:
    r = parse(b'* LIST (\\HasNoChildren \\Trash) "/" "Kunden \\"M&APw-ller\\" \\\\ x"\r\n')
    assert r == DataResponse(
        "LIST", None, [["\\HasNoChildren", "\\Trash"], b"/", b'Kunden "M&APw-ller" \\ x']
    )
    assert parse(b'* LIST (\\Noselect) NIL ""\r\n') == DataResponse(
        "LIST", None, [["\\Noselect"], None, b""]
    )


def test_fetch_with_literal_and_section_atoms() -> None:
    data = (
        b"* 12 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE 44 "
        b"BODY[HEADER.FIELDS (FROM SUBJECT)] {20}\r\nSubject: (x) {3}\r\n\r\n)\r\n"
    )
    raw = RawResponse.from_bytes(data)
    assert len(raw.chunks) == 2 and raw.literals == [b"Subject: (x) {3}\r\n\r\n"]
    r = parse_response(raw)
    assert isinstance(r, DataResponse) and (r.keyword, r.number) == ("FETCH", 12)
    items = fetch_items(r.values)
    assert items["UID"] == "7" and items["FLAGS"] == ["\\Seen"] and items["RFC822.SIZE"] == "44"
    assert items["BODY[HEADER.FIELDS (FROM SUBJECT)]"] == b"Subject: (x) {3}\r\n\r\n"


def test_streamed_literal_placeholder() -> None:
    raw = RawResponse([b"* 1 FETCH (UID 9 BODY[] {5000000}\r\n", b")\r\n"], [Streamed(5000000)])
    r = parse_response(raw)
    assert fetch_items(r.values)["BODY[]"] == Streamed(5000000)  # type: ignore[union-attr]


def test_two_literals_and_nil() -> None:
    raw = RawResponse.from_bytes(b"* 1 FETCH (UID 1 BODY[1] {2}\r\nab BODY[2] {0}\r\n X NIL)\r\n")
    items = fetch_items(parse_response(raw).values)  # type: ignore[union-attr]
    assert items == {"UID": "1", "BODY[1]": b"ab", "BODY[2]": b"", "X": None}


def test_nested_lists() -> None:
    values = tokenize(RawResponse.from_bytes(b'(("text" "plain" NIL) ("a" ("b" NIL)))\r\n'))
    assert values == [[[b"text", b"plain", None], [b"a", [b"b", None]]]]


@pytest.mark.parametrize(
    "bad",
    [
        b'* LIST (\\Noselect "/" x\r\n',
        b'* LIST () "/" "unterminated\r\n',
        b"A1 FETCH x\r\n",
        b"\r\n",
        b"* 1 FETCH (BODY[] {5}\r\n",
    ],
)
def test_malformed(bad: bytes) -> None:
    with pytest.raises(ParseError):
        raw = RawResponse.from_bytes(bad)
        if bad.endswith(b"{5}\r\n"):
            raw = RawResponse([bad, b")\r\n"], [b"abc"])  # announced 5, got 3
        parse_response(raw)


def test_helpers() -> None:
    assert literal_marker(b"X {12}\r\n") == 12 and literal_marker(b"X {12+}\r\n") == 12
    assert literal_marker(b"X {12} y\r\n") is None
    assert as_int("42") == 42
    with pytest.raises(ParseError):
        as_int(b"42")
    assert as_text(b"\xc3\xa4") == "ä" and as_text(None) == "" and as_text("A") == "A"
    with pytest.raises(ParseError):
        fetch_items(["UID", "1"])
    with pytest.raises(ParseError):
        fetch_items([["UID"]])
