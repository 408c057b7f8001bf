"""Fast message summaries from header bytes, against the email package's own reading."""

from __future__ import annotations

import email
from email import policy
from email.utils import getaddresses

import pytest

from mailgate.mail.headers import (
    header_block,
    header_fields,
    subject_and_date,
    summary_from_headers,
)
from mailgate.protocols.base import MessageRef

REF = MessageRef("INBOX", "1:7")

SAMPLES = [
    b"From: Alice <alice@contoso.com>\r\nTo: a@x.com, B <b@y.com>\r\nSubject: Hi\r\n"
    b"Date: Mon, 23 Nov 2026 04:05:06 +0000\r\nMessage-ID: <m1@x>\r\n\r\nbody",
    b'From: "Doe, John" <john@x.com>\r\nTo: (comment) c@x.com\r\nCc: "Q" <q@x.com>,\r\n'
    b" r@x.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= and\r\n more\r\n\r\n",
    b"From: plain@x.com\nSubject: no CR\nDate: not a date\n\nbody",
    b"Subject: \xff\xfe raw bytes\r\nFrom: =?iso-8859-1?q?J=F6rg?= <j@x.de>\r\n\r\n",
    b"",
]


@pytest.mark.parametrize("raw", SAMPLES)
def test_matches_the_email_package(raw: bytes) -> None:
    fast = summary_from_headers(REF, header_block(raw), size=len(raw))
    slow = email.message_from_bytes(raw, policy=policy.compat32)
    expected_to = tuple(a for _, a in getaddresses(slow.get_all("To", [])) if "@" in a)
    expected_cc = tuple(a for _, a in getaddresses(slow.get_all("Cc", [])) if "@" in a)
    assert fast.to == expected_to
    assert fast.cc == expected_cc
    senders = [a for _, a in getaddresses(slow.get_all("From", [])) if "@" in a]
    assert fast.from_address == (senders[0] if senders else "")
    assert fast.size == len(raw)


def test_decoding_and_dates() -> None:
    first = summary_from_headers(REF, header_block(SAMPLES[0]), flags=["\\Seen"])
    assert (first.subject, first.message_id, first.seen) == ("Hi", "<m1@x>", True)
    assert first.date is not None and first.date.hour == 4
    folded = summary_from_headers(REF, header_block(SAMPLES[1]))
    assert folded.subject == "Grüße and more"
    assert summary_from_headers(REF, header_block(SAMPLES[2])).date is None
    latin = summary_from_headers(REF, header_block(SAMPLES[3]))
    assert latin.from_address == "j@x.de" and "raw bytes" in latin.subject


def test_header_block_stops_at_the_body() -> None:
    assert header_block(b"A: 1\r\n\r\nB: 2") == b"A: 1\r\n\r\n"
    assert header_block(b"A: 1\n\nB: 2") == b"A: 1\n\n"
    assert header_block(b"A: 1") == b"A: 1"


def test_summary_without_addresses_keeps_the_rest() -> None:
    headers = (
        b'From: "Vendor, Inc." <billing@vendor.example>\r\nTo: a@x.example, b@x.example\r\n'
        b"Subject: =?utf-8?q?Rechnung_=C3=BC?=\r\nDate: Mon, 1 Jan 2024 10:05:00 +0100\r\n"
        b"Message-ID: <m1@vendor.example>\r\n\r\n"
    )
    ref = MessageRef("INBOX", "7:1")
    full = summary_from_headers(ref, headers, size=10)
    lean = summary_from_headers(ref, headers, size=10, addresses=False)
    assert full.from_address == "billing@vendor.example" and len(full.to) == 2
    assert (lean.from_address, lean.to, lean.cc) == ("", (), ())
    assert (lean.subject, lean.date, lean.message_id, lean.size) == (
        full.subject,
        full.date,
        full.message_id,
        10,
    )
    assert lean.subject == "Rechnung ü"


@pytest.mark.parametrize("raw", SAMPLES)
def test_naming_fields_are_the_summarys(raw: bytes) -> None:
    """A bulk save names files from subject_and_date; a later summary must agree with it."""
    summary = summary_from_headers(REF, header_block(raw))
    assert subject_and_date(header_fields(header_block(raw))) == (summary.subject, summary.date)
