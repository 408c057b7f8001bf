"""Unit tests of the IMAP server's pure pieces: lexer, modified UTF-7, sets, MIME, search."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailgate.sandbox.exchange.store import MailStore
from mailgate.sandbox.imap.codec import (
    Atom,
    ImapSyntaxError,
    decode_mutf7,
    encode_mutf7,
    format_internal_date,
    parse_command,
    parse_internal_date,
    parse_sequence_set,
    quote,
    sequence_set_text,
)
from mailgate.sandbox.imap.mime import body_section, bodystructure, envelope, scan
from mailgate.sandbox.imap.query import Candidate, FetchItem, compile_search, parse_fetch_items

MIXED = (
    b'From: "Vendor, Inc" <billing@vendor.example>\r\n'
    b"To: alice@contoso.example\r\n"
    b"Subject: Invoice\r\n"
    b"Date: Tue, 03 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <m1@vendor.example>\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello\r\nthere\r\n"
    b"--b1\r\n"
    b'Content-Type: application/pdf; name="a.pdf"\r\n'
    b'Content-Disposition: attachment; filename="a.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAAA\r\n"
    b"--b1--\r\n"
)


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ('say "hi"', 'say "hi"'),
        ("日本語", "&ZeVnLIqe-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Ärger 2026", "&AMQ-rger 2026"),
    ],
)
def test_modified_utf7_roundtrip(text: str, encoded: str) -> None:
    assert encode_mutf7(text) == encoded
    assert decode_mutf7(encoded) == text


@pytest.mark.parametrize("bad", ["&Jjo", "&Jjo!-", "caf\u00e9"])
def test_modified_utf7_rejects(bad: str) -> None:
    with pytest.raises(ImapSyntaxError):
        decode_mutf7(bad)


def test_parse_command_with_strings_lists_and_literals() -> None:
    command = parse_command(
        [b"a1 uid FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.5>)\r\n"]
    )
    assert (command.tag, command.verb) == ("a1", "UID")
    assert command.args == [
        Atom("FETCH"),
        Atom("1:*"),
        [Atom("FLAGS"), Atom("BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.5>")],
    ]
    payload = b"Subject: x\r\n\r\nbody"
    command = parse_command(
        [b"a2 APPEND INBOX (\\Seen) {%d+}\r\n" % len(payload), payload, b"\r\n"]
    )
    assert command.args[-1] is payload
    command = parse_command([b'a3 CREATE "a \\"q\\" \\\\ b"\r\n'])
    assert command.args == [b'a "q" \\ b']
    for bad in ([b"a4 SELECT (INBOX\r\n"], [b"a5\r\n"], [b'a6 X "open\r\n']):
        with pytest.raises(ImapSyntaxError):
            parse_command(bad)


def test_sequence_sets() -> None:
    assert parse_sequence_set("1:3,7,9:*", 12) == [(1, 3), (7, 7), (9, 12)]
    assert parse_sequence_set("5:*", 3) == [(3, 5)]  # * below the start still names the last
    assert parse_sequence_set("*", 4) == [(4, 4)]
    with pytest.raises(ImapSyntaxError):
        parse_sequence_set("1:x", 3)
    with pytest.raises(ImapSyntaxError):
        parse_sequence_set("0", 3)
    assert sequence_set_text([5, 1, 2, 3, 9]) == "1:3,5,9"


def test_quote_and_dates() -> None:
    assert quote('a "b" \\') == b'"a \\"b\\" \\\\"'
    assert quote(None) == b"NIL"
    assert quote("Grüße") == b"{7}\r\nGr\xc3\xbc\xc3\x9fe"
    moment = datetime(2026, 3, 3, 9, 5, 1, tzinfo=UTC)
    assert format_internal_date(moment) == "03-Mar-2026 09:05:01 +0000"
    assert parse_internal_date("03-Mar-2026 10:05:01 +0100") == moment
    with pytest.raises(ImapSyntaxError):
        parse_internal_date("yesterday")


def test_mime_scan_and_sections() -> None:
    root = scan(MIXED)
    assert [(p.maintype, p.subtype) for p in root.children] == [
        ("text", "plain"),
        ("application", "pdf"),
    ]
    assert body_section(MIXED, "", []) is MIXED
    assert body_section(MIXED, "1", []) == b"Hello\r\nthere"
    assert body_section(MIXED, "2", []) == b"AAAA"
    assert body_section(MIXED, "2.MIME", []).startswith(b"Content-Type: application/pdf")
    assert body_section(MIXED, "HEADER", []).endswith(b"\r\n\r\n")
    assert body_section(MIXED, "HEADER.FIELDS", ["subject", "TO"]) == (
        b"To: alice@contoso.example\r\nSubject: Invoice\r\n\r\n"
    )
    assert b"Subject" not in body_section(MIXED, "HEADER.FIELDS.NOT", ["SUBJECT"])
    with pytest.raises(ImapSyntaxError):
        body_section(MIXED, "3", [])
    single = b"Subject: s\r\n\r\nonly body\r\n"
    assert body_section(single, "1", []) == b"only body\r\n"
    assert body_section(single, "TEXT", []) == b"only body\r\n"


def test_bodystructure_and_envelope() -> None:
    root = scan(MIXED)
    structure = bodystructure(MIXED, root)
    assert structure.startswith(b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 12 1 ')
    assert b'("APPLICATION" "PDF" ("NAME" "a.pdf") NIL NIL "BASE64" 4 NIL ' in structure
    assert b'("ATTACHMENT" ("FILENAME" "a.pdf"))' in structure
    assert structure.endswith(b' "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)')
    assert b"NIL NIL NIL NIL" not in bodystructure(MIXED, root, extended=False)
    env = envelope(root)
    assert env.startswith(b'("Tue, 03 Mar 2026 10:00:00 +0000" "Invoice" (("Vendor, Inc" NIL')
    assert b'(("Vendor, Inc" NIL "billing" "vendor.example"))' in env
    assert env.endswith(b'NIL NIL "<m1@vendor.example>")')


def test_search_predicates() -> None:
    box = MailStore().add_mailbox("a@x.example")
    big = box.append("inbox", MIXED, ["\\Seen"], datetime(2026, 3, 3, tzinfo=UTC))
    small = box.append("inbox", b"From: bob@x.example\r\nSubject: Lunch\r\n\r\nhi\r\n")

    def hits(*tokens: object) -> list[int]:
        predicate = compile_search(list(tokens))
        return [
            m.uid for i, m in enumerate([big, small], 1) if predicate(Candidate(m, i, 2, small.uid))
        ]

    assert hits(Atom("ALL")) == [1, 2]
    assert hits(Atom("UNSEEN")) == [2]
    assert hits(Atom("FROM"), b"VENDOR") == [1]
    assert hits(Atom("SUBJECT"), b"lunch") == [2]
    assert hits(Atom("SINCE"), Atom("4-Mar-2026")) == [2]
    assert hits(Atom("BEFORE"), Atom("4-Mar-2026")) == [1]
    assert hits(Atom("ON"), Atom("3-Mar-2026")) == [1]
    assert hits(Atom("LARGER"), Atom("100")) == [1]
    assert hits(Atom("OR"), Atom("SEEN"), Atom("SUBJECT"), b"lunch") == [1, 2]
    assert hits(Atom("NOT"), [Atom("UID"), Atom("1")]) == [2]
    assert hits(Atom("2:*")) == [2]
    assert hits(Atom("BODY"), b"there") == [1]
    with pytest.raises(ImapSyntaxError):
        compile_search([Atom("BOGUS")])
    with pytest.raises(ImapSyntaxError):
        compile_search([Atom("SINCE"), Atom("someday")])


def test_fetch_items() -> None:
    assert [i.name for i in parse_fetch_items(Atom("FAST"))] == [
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
    ]
    (item,) = parse_fetch_items([Atom("BODY.PEEK[HEADER.FIELDS (Subject From)]<10.20>")])
    assert item == FetchItem("BODY", "HEADER.FIELDS", ("SUBJECT", "FROM"), (10, 20), True)
    assert item.response_name() == "BODY[HEADER.FIELDS (SUBJECT FROM)]<10>"
    (item,) = parse_fetch_items([Atom("BODY[2]")])
    assert not item.peek and item.response_name() == "BODY[2]"
    with pytest.raises(ImapSyntaxError):
        parse_fetch_items([Atom("NOPE")])
