"""Outgoing MIME: header injection refused, Bcc kept off the headers, attachments named safely."""

from __future__ import annotations

import email
from email import policy

import pytest

from mailgate.errors import InvalidInputError
from mailgate.mail.compose import Attachment, OutgoingMessage, build_message


def _message(**fields: object) -> OutgoingMessage:
    base: dict[str, object] = {
        "sender": "desk@contoso.com",
        "to": ("a@example.com",),
        "subject": "Hello",
        "text": "Body",
    }
    base.update(fields)
    return OutgoingMessage(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"subject": "Hi\r\nBcc: victim@example.com"},
        {"subject": "a\nb"},
        {"to": ("a@example.com\r\nX-Evil: 1",)},
        {"reply_to": ("x@example.com\n",)},
        {"sender": "desk@contoso.com\x00"},
    ],
)
def test_crlf_and_nul_in_headers_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError) as info:
        build_message(_message(**fields))
    assert info.value.exit_code == 2


def test_bcc_is_envelope_only_and_recipients_deduplicated() -> None:
    message = _message(
        to=("A <a@example.com>", "b@example.com"),
        cc=("a@example.com",),
        bcc=("hidden@example.com",),
    )
    mime = build_message(message)
    assert "Bcc" not in mime and "hidden" not in mime.as_string()
    assert message.recipients == ["a@example.com", "b@example.com", "hidden@example.com"]


def test_html_alternative_and_hostile_attachment_name() -> None:
    mime = build_message(
        _message(
            html="<p>Body</p>",
            attachments=(Attachment("../../etc/passwd", b"\x00\x01data", "application/pdf"),),
            reply_to=("help@contoso.com",),
        )
    )
    parsed = email.message_from_bytes(mime.as_bytes(), policy=policy.default)
    names = [part.get_filename() for part in parsed.iter_attachments()]
    assert names == ["passwd"]
    assert parsed["Reply-To"] == "help@contoso.com"
    assert parsed.get_body(("html",)) is not None and parsed.get_body(("plain",)) is not None
    assert parsed["Message-ID"].endswith("@contoso.com>")


def test_no_recipient_and_bad_address() -> None:
    with pytest.raises(InvalidInputError, match="at least one recipient"):
        build_message(_message(to=()))
    with pytest.raises(InvalidInputError, match="e-mail addresses"):
        build_message(_message(to=("not-an-address",)))
