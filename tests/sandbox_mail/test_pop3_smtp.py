"""The sandbox POP3 and SMTP servers driven by stdlib poplib and smtplib."""

from __future__ import annotations

import poplib
import smtplib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from mailgate.protocols.sasl import xoauth2_initial_response
from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.testing import SandboxController
from tests.sandbox_mail.conftest import address, b64

pytestmark = pytest.mark.sandbox


def pop_connect(sandbox: SandboxController) -> poplib.POP3_SSL:
    port = sandbox.description["mail"]["pop3"]["port"]
    return poplib.POP3_SSL("127.0.0.1", port, context=sandbox.ssl_context(), timeout=10)


def pop_auth(client: poplib.POP3_SSL, user: str, token: str) -> bytes:
    return client._shortcmd("AUTH XOAUTH2 " + b64(xoauth2_initial_response(user, token)))  # type: ignore[attr-defined]


@pytest.fixture
def smtp(sandbox: SandboxController) -> Iterator[smtplib.SMTP]:
    port = sandbox.description["mail"]["smtp"]["port"]
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=sandbox.ssl_context())
        client.ehlo()
        yield client


def xoauth2(user: str, token: str) -> Callable[..., str]:
    return lambda challenge=None: xoauth2_initial_response(user, token).decode()


def message(sender: str, to: str, subject: str, size: int = 0) -> EmailMessage:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, to, subject
    mail.set_content("hello\n" + "x" * size)
    return mail


def test_pop3_capa_and_refusals(sandbox: SandboxController, app_token: Callable[..., str]) -> None:
    client = pop_connect(sandbox)
    assert client.getwelcome().startswith(b"+OK The Microsoft Exchange POP3 service is ready.")
    capa = client.capa()
    assert capa["SASL"] == ["XOAUTH2", "OAUTHBEARER"] and "UIDL" in capa and "USER" not in capa
    with pytest.raises(poplib.error_proto):
        client.user(address("alice"))
    with pytest.raises(poplib.error_proto, match="Authentication failure"):
        pop_auth(client, address("alice"), app_token("mailgate-nosp"))
    with pytest.raises(poplib.error_proto, match="Authentication failure"):
        pop_auth(client, address("bob"), app_token())  # no FullAccess on bob's mailbox
    client.quit()


def test_pop3_read_and_delete(
    sandbox: SandboxController, mail: SandboxMail, app_token: Callable[..., str]
) -> None:
    inbox = mail.store.mailbox(address("noreply"))
    for i in range(3):
        inbox.append("inbox", f"Subject: pop {i}\r\n\r\n.leading dot\r\nline\r\n".encode())
    client = pop_connect(sandbox)
    # AUTH with the "+" continuation, as clients without SASL-IR do.
    assert client._shortcmd("AUTH XOAUTH2").startswith(b"+")  # type: ignore[attr-defined]
    answer = client._shortcmd(b64(xoauth2_initial_response(address("noreply"), app_token())))  # type: ignore[attr-defined]
    assert answer == b"+OK User successfully authenticated."
    count, size = client.stat()
    assert count == len(inbox.messages("inbox")) >= 3 and size > 0
    _, listing, _ = client.uidl()
    ids = [line.split()[1].decode() for line in listing]
    assert ids == [m.item_id for m in inbox.messages("inbox")]
    _, lines, _ = client.retr(count)
    assert lines[0] == b"Subject: pop 2" and b".leading dot" in lines
    _, top, _ = client.top(count, 0)
    assert top == [b"Subject: pop 2", b""]
    client.dele(count)
    assert client.stat()[0] == count - 1
    client.rset()
    client.dele(count)
    assert len(inbox.messages("inbox")) == count  # nothing removed before QUIT
    client.quit()
    assert [m.item_id for m in inbox.messages("inbox")] == ids[:-1]


def test_pop3_delegated(sandbox: SandboxController, user_token: Callable[..., str]) -> None:
    token = user_token("alice", ["https://outlook.office.com/POP.AccessAsUser.All"])
    client = pop_connect(sandbox)
    assert pop_auth(client, address("alice"), token).startswith(b"+OK")
    assert client.stat()[0] >= 1
    client.quit()


def test_smtp_send_delivers_and_keeps_sent_copy(
    smtp: smtplib.SMTP, mail: SandboxMail, app_token: Callable[..., str]
) -> None:
    code, text = smtp.auth("XOAUTH2", xoauth2(address("servicedesk"), app_token()))
    assert (code, text) == (235, b"2.7.0 Authentication successful")
    sender = address("servicedesk")
    before = len(mail.store.mailbox(address("bob")).messages("inbox"))
    refused = smtp.send_message(
        message(sender, address("bob"), "Ticket 7 solved"),
        to_addrs=[address("bob"), "someone@external.example"],
    )
    assert refused == {}
    bob = mail.store.mailbox(address("bob")).messages("inbox")
    assert len(bob) == before + 1 and bob[-1].subject == "Ticket 7 solved"
    sent = mail.store.mailbox(sender).messages("sentitems")
    assert sent[-1].subject == "Ticket 7 solved" and sent[-1].is_read


def test_smtp_send_as_denied(smtp: smtplib.SMTP, app_token: Callable[..., str]) -> None:
    smtp.auth("XOAUTH2", xoauth2(address("servicedesk"), app_token()))
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        smtp.send_message(message(address("alice"), address("bob"), "spoof"))
    assert info.value.smtp_code == 554
    assert info.value.smtp_error.startswith(b"5.2.252 SendAsDenied;")


def test_smtp_auth_refusals(sandbox: SandboxController, app_token: Callable[..., str]) -> None:
    port = sandbox.description["mail"]["smtp"]["port"]
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as plain:
        plain.ehlo()
        with pytest.raises(smtplib.SMTPException):
            plain.auth("XOAUTH2", xoauth2(address("alice"), app_token()))
    cases = [
        (address("noreply"), app_token(), 535, b"5.7.139 Authentication unsuccessful, Smtp"),
        (address("alice"), app_token("mailgate-wrongsp"), 535, b"5.7.3 Authentication"),
        (address("bob"), app_token(), 535, b"5.7.3 Authentication unsuccessful [sandbox]"),
    ]
    for user, token, code, text in cases:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.starttls(context=sandbox.ssl_context())
            client.ehlo()
            with pytest.raises(smtplib.SMTPAuthenticationError) as info:
                client.auth("XOAUTH2", xoauth2(user, token))
            assert info.value.smtp_code == code and info.value.smtp_error.startswith(text)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.starttls(context=sandbox.ssl_context())
        client.ehlo()
        for mechanism in ("PLAIN", "LOGIN"):
            code, text = client.docmd("AUTH", mechanism)
            assert code == 535 and b"basic authentication is disabled" in text


def test_smtp_size_limit(
    smtp: smtplib.SMTP,
    mail: SandboxMail,
    app_token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mail.directory.tenants[0].exchange, "max_message_size", 2000)
    smtp.auth("XOAUTH2", xoauth2(address("approvals"), app_token()))
    sender = address("approvals")
    with pytest.raises(smtplib.SMTPDataError) as info:
        smtp.send_message(message(sender, address("bob"), "too big", size=3000))
    assert info.value.smtp_code == 552
    assert info.value.smtp_error == b"5.3.4 Message size exceeds fixed maximum message size"


def test_smtp_rate_limit_with_injected_clock(
    smtp: smtplib.SMTP,
    mail: SandboxMail,
    app_token: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [datetime(2030, 1, 1, tzinfo=UTC)]
    monkeypatch.setattr(mail, "clock", lambda: now[0])
    monkeypatch.setattr(mail.directory.tenants[0].exchange, "smtp_messages_per_minute", 3)
    sender = address("alice")
    smtp.auth("XOAUTH2", xoauth2(sender, app_token()))
    sent_before = len(mail.store.mailbox(sender).messages("sentitems"))
    for i in range(3):
        smtp.send_message(message(sender, address("bob"), f"rate {i}"))
        now[0] += timedelta(seconds=10)
    with pytest.raises(smtplib.SMTPDataError) as info:
        smtp.send_message(message(sender, address("bob"), "rate 3"))
    assert info.value.smtp_code == 452
    assert info.value.smtp_error.startswith(b"4.3.2 Message rate limit exceeded (3 messages")
    assert len(mail.store.mailbox(sender).messages("sentitems")) == sent_before + 3
    now[0] += timedelta(seconds=31)  # the first message leaves the 60 s window
    smtp.send_message(message(sender, address("bob"), "rate 4"))
    assert mail.store.mailbox(sender).messages("sentitems")[-1].subject == "rate 4"
