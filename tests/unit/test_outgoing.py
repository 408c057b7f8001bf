"""Preparing messages for the outbox: stable Message-ID, envelope, checks on raw MIME."""

from __future__ import annotations

from email import message_from_bytes

import pytest

from mailgate.errors import InvalidInputError
from mailgate.mail.compose import OutgoingMessage
from mailgate.mail.outgoing import prepare_outgoing

BIG = 10_000_000


def test_outgoing_message_gets_a_message_id_on_the_senders_domain() -> None:
    message = OutgoingMessage(
        sender="Approvals <approvals@contoso.com>",
        to=("a@example.com",),
        cc=("B <b@example.com>",),
        bcc=("hidden@example.com",),
        subject="PO 4711",
        text="Please approve.",
    )
    prepared = prepare_outgoing(message, max_size=BIG)
    assert prepared.message_id.startswith("<") and prepared.message_id.endswith("@contoso.com>")
    assert prepared.envelope_from == "approvals@contoso.com"
    assert prepared.recipients == ("a@example.com", "b@example.com", "hidden@example.com")
    parsed = message_from_bytes(prepared.mime)
    assert parsed["Message-ID"] == prepared.message_id
    assert parsed["Bcc"] is None and b"hidden" not in prepared.mime


def test_given_message_id_is_kept() -> None:
    message = OutgoingMessage(
        sender="a@contoso.com", to=("b@example.com",), message_id="<fixed.1@contoso.com>"
    )
    assert prepare_outgoing(message, max_size=BIG).message_id == "<fixed.1@contoso.com>"


RAW = (
    b"From: Desk <desk@contoso.com>\r\n"
    b"To: a@example.com, b@example.com\r\n"
    b"Bcc: secret@example.com\r\n"
    b"Subject: raw\r\n"
    b"\r\n"
    b"body line\r\n"
)


def test_raw_mime_bcc_moves_to_the_envelope_and_a_message_id_is_added() -> None:
    prepared = prepare_outgoing(RAW, max_size=BIG)
    assert prepared.recipients == ("a@example.com", "b@example.com", "secret@example.com")
    assert b"secret@example.com" not in prepared.mime
    assert prepared.mime.startswith(b"Message-ID: " + prepared.message_id.encode() + b"\r\n")
    assert prepared.mime.endswith(b"\r\n\r\nbody line\r\n")
    assert prepared.message_id.endswith("@contoso.com>")
    # prepared bytes are stable: preparing them again changes nothing
    again = prepare_outgoing(prepared.mime, max_size=BIG, recipients=prepared.recipients)
    assert again.mime == prepared.mime and again.message_id == prepared.message_id


def test_raw_mime_with_message_id_is_stored_byte_for_byte() -> None:
    raw = b"Message-ID: <x@y.z>\nFrom: a@contoso.com\nTo: b@example.com\n\nhi\n"
    prepared = prepare_outgoing(raw, max_size=BIG)
    assert prepared.mime == raw and prepared.message_id == "<x@y.z>"


def test_headers_only_message_is_accepted() -> None:
    prepared = prepare_outgoing(b"From: a@contoso.com\r\nTo: b@example.com\r\n", max_size=BIG)
    assert prepared.recipients == ("b@example.com",)


def test_explicit_envelope_wins() -> None:
    prepared = prepare_outgoing(
        RAW, max_size=BIG, envelope_from="bounce@contoso.com", recipients=["only@example.com"]
    )
    assert prepared.envelope_from == "bounce@contoso.com"
    assert prepared.recipients == ("only@example.com",)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"\r\n\r\nbody only", "no header section"),
        (b"this is not a message\nat all\n\nreally", "is not a header"),
        (b"From: a@contoso.com\x00\nTo: b@example.com\n\nx", "NUL"),
        (b"To: b@example.com\n\nno sender", "From"),
        (b"From: a@contoso.com, c@contoso.com\nTo: b@example.com\n\nx", "From"),
        (b"From: a@contoso.com\nSubject: nobody\n\nx", "recipient"),
    ],
)
def test_damaged_mime_is_refused_with_the_reason(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        prepare_outgoing(raw, max_size=BIG)
    assert words in str(caught.value)


def test_oversize_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidInputError) as caught:
        prepare_outgoing(RAW + b"x" * 100, max_size=100)
    assert "outbox.max_message_size" in str(caught.value)
    assert prepare_outgoing(RAW, max_size=len(RAW) + 100).recipients
