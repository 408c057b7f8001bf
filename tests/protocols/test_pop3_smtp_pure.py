"""POP3 and SMTP pure parts: dot-stuffing, UIDL, reply mapping (Exchange's replies)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailgate.errors import ProtocolError
from mailgate.protocols.base import (
    MailAuthenticationError,
    MailboxAccessError,
    MessageRef,
    ThrottledError,
)
from mailgate.protocols.pop3 import parse_uidl, pop3_failure, summary_from_headers, unstuff
from mailgate.protocols.smtp import retry_after_seconds, smtp_failure


def test_unstuff() -> None:
    assert unstuff(b"..leading\r\n") == b".leading\r\n"
    assert unstuff(b".\r\n") == b".\r\n"  # the terminator is handled by the reader
    assert unstuff(b"plain\r\n") == b"plain\r\n"


def test_uidl() -> None:
    assert parse_uidl([b"1 000001a2", b"2 AAMkAD=="]) == {1: "000001a2", 2: "AAMkAD=="}
    with pytest.raises(ProtocolError):
        parse_uidl([b"x y"])


def test_pop3_failures() -> None:
    auth = pop3_failure("-ERR Authentication failure: unknown user name or bad password.", "auth")
    assert isinstance(auth, MailAuthenticationError) and auth.reply.startswith("-ERR")
    access = pop3_failure("-ERR User is authenticated but not connected.", "STAT")
    assert isinstance(access, MailboxAccessError)
    assert type(pop3_failure("-ERR no such message", "RETR")) is ProtocolError


def test_pop3_summary() -> None:
    headers = (
        b"From: A <a@example.com>\r\nSubject: Hi\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n"
    )
    s = summary_from_headers(MessageRef("INBOX", "u1"), headers, 99)
    assert (s.subject, s.from_address, s.size, s.has_attachments) == (
        "Hi",
        "a@example.com",
        99,
        True,
    )
    assert s.date == datetime(2024, 1, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (
            535,
            "5.7.3 Authentication unsuccessful [SN4PR0601CA0005.outlook.office365.com]",
            MailAuthenticationError,
        ),
        (
            535,
            "5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
            "Tenant.",
            MailAuthenticationError,
        ),
        (
            550,
            "5.7.30 Basic authentication is not supported for Client Submission.",
            MailAuthenticationError,
        ),
        (530, "5.7.57 Client not authenticated to send mail.", MailAuthenticationError),
        (
            554,
            "5.2.252 SendAsDenied; alice@contoso.com not allowed to send as ceo@contoso.com",
            MailboxAccessError,
        ),
        (452, "4.3.2 Too many messages, try again in 30 seconds", ThrottledError),
        (552, "5.3.4 Message size exceeds fixed maximum message size", ProtocolError),
        (550, "5.1.10 RESOLVER.ADR.RecipientNotFound", ProtocolError),
    ],
)
def test_smtp_replies(code: int, text: str, kind: type) -> None:
    error = smtp_failure(code, text, "data", size_limit=36700160)
    assert type(error) is kind
    if isinstance(error, MailAuthenticationError | MailboxAccessError):
        assert error.reply == f"{code} {text}"
    if code == 535 and "5.7.139" in text:
        assert "SmtpClientAuthenticationDisabled" in error.remedy
    if code == 552:
        assert "36700160" in error.message
    if isinstance(error, ThrottledError):
        assert error.retry_after == 30


def test_retry_after() -> None:
    assert retry_after_seconds("4.3.2 rate limit, retry after 2 minutes") == 120
    assert retry_after_seconds("4.7.0 Temporary server error") == 60
    assert retry_after_seconds("try again in 45 s") == 45
