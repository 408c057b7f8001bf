"""The sandbox's SMTP submission server (aiosmtpd), answering like Exchange Online.

STARTTLS is required before anything else and before AUTH; only XOAUTH2 and OAUTHBEARER
succeed, validated by :func:`~mailgate.sandbox.exchange.rules.check_access` for ``smtp``.
Policy lives in :class:`SubmissionHandler`'s aiosmtpd hooks: SendAs on MAIL FROM, the size
limit and the per-mailbox message rate on DATA (a 4xx there stores nothing), then delivery to
the sandbox's own recipients plus a copy in the sender's Sent Items. Recipients the sandbox
does not host are accepted and dropped ("external").
"""

from __future__ import annotations

import base64
import collections
import logging
import ssl
import uuid
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from mailgate.protocols.sasl import parse_initial_response
from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.rules import (
    MailAccess,
    MailAccessDenied,
    check_access,
    check_send_as,
)

__all__ = [
    "AUTH_DISABLED",
    "AUTH_FAILED",
    "AUTH_OK",
    "BASIC_AUTH_DISABLED",
    "HOSTNAME",
    "NOT_AUTHENTICATED",
    "TOO_BIG",
    "ExchangeSMTP",
    "SubmissionHandler",
    "create_smtp",
]

log = logging.getLogger(__name__)


def _hide_login_data_notice(record: logging.LogRecord) -> bool:
    # aiosmtpd sets its own deprecated Session.login_data on every AUTH and logs a warning
    # about it; we use auth_data, so the notice only clutters the demo and test output.
    return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_hide_login_data_notice)

HOSTNAME = "sandbox.mailgate.invalid"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.3 Authentication unsuccessful [sandbox]"
AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Mailbox."
)
BASIC_AUTH_DISABLED = "535 5.7.139 Authentication unsuccessful, basic authentication is disabled."
NOT_AUTHENTICATED = "530 5.7.57 Client not authenticated to send mail."
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
# aiosmtpd's own limit only guards memory; the tenant's limit gives Exchange's reply.
_READ_LIMIT = 200 * 1024 * 1024
_LINE_LIMIT = 16384


class SubmissionHandler:
    """aiosmtpd handler: ``auth_<MECH>`` mechanisms and ``handle_<VERB>`` policy hooks."""

    def __init__(self, mail: SandboxMail) -> None:
        self.mail = mail

    async def _oauth(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        if len(args) > 1:
            try:
                response: bytes | None = base64.b64decode(args[1], validate=True)
            except ValueError:
                return AuthResult(success=False, handled=False, message=AUTH_FAILED)
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            response = answer
        try:
            credentials = parse_initial_response(mechanism, response or b"")
            access = check_access(self.mail, credentials.token, "smtp", credentials.user)
        except ValueError:
            return AuthResult(success=False, handled=False, message=AUTH_FAILED)
        except MailAccessDenied as denied:
            log.info("SMTP authentication refused: %s", denied.reason)
            message = AUTH_DISABLED if denied.reason == "smtp_auth_disabled" else AUTH_FAILED
            return AuthResult(success=False, handled=False, message=message)
        return AuthResult(success=True, auth_data=access, message=AUTH_OK)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2 (``AUTH XOAUTH2 [initial-response]``)."""
        return await self._oauth(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL OAUTHBEARER (RFC 7628)."""
        return await self._oauth(server, args, "OAUTHBEARER")

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """Basic authentication is disabled: refuse without reading a password."""
        return AuthResult(success=False, handled=False, message=BASIC_AUTH_DISABLED)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """Basic authentication is disabled: refuse without reading a password."""
        return AuthResult(success=False, handled=False, message=BASIC_AUTH_DISABLED)

    @staticmethod
    def _access(session: Session) -> MailAccess | None:
        data = session.auth_data
        return data if session.authenticated and isinstance(data, MailAccess) else None

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        """Refuse unauthenticated senders and sending as others without SendAs."""
        access = self._access(session)
        if access is None:
            return NOT_AUTHENTICATED
        try:
            check_send_as(self.mail, access, address)
        except MailAccessDenied:
            who = access.user or access.mailbox
            return f"554 5.2.252 SendAsDenied; {who} not allowed to send as {address}"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept every recipient; external ones are dropped on delivery."""
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Size limit, rate limit, then delivery and the Sent Items copy."""
        access = self._access(session)
        if access is None:
            return NOT_AUTHENTICATED
        content = envelope.original_content or b""
        settings = self.mail.exchange(access.mailbox)
        if len(content) > settings.max_message_size:
            return TOO_BIG
        if not self.mail.allow_smtp_message(access.mailbox):
            limit = settings.smtp_messages_per_minute
            return (
                f"452 4.3.2 Message rate limit exceeded ({limit} messages per minute);"
                " try again later"
            )
        self.mail.store.deliver(content, envelope.rcpt_tos)
        self.mail.store.mailbox(access.mailbox).append("sentitems", content, ["\\Seen"])
        if self.mail.answer_lost("smtp") and server.transport is not None:
            server.transport.close()  # taken, but the client never hears the 250
        return f"250 2.6.0 <{uuid.uuid4()}@{HOSTNAME}> Queued mail for delivery"


class ExchangeSMTP(SMTP):
    """aiosmtpd's SMTP with room for bearer tokens: an XOAUTH2 line is 2-3 KB."""

    line_length_limit = _LINE_LIMIT
    command_size_limit = _LINE_LIMIT
    command_size_limits: dict[str, int] = collections.defaultdict(lambda: _LINE_LIMIT)  # noqa: RUF012 - aiosmtpd reads it per class


def create_smtp(mail: SandboxMail, tls: ssl.SSLContext, loop: Any = None) -> SMTP:
    """A protocol instance for one connection (``loop.create_server(lambda: ...)``)."""
    return ExchangeSMTP(
        SubmissionHandler(mail),
        data_size_limit=_READ_LIMIT,
        hostname=HOSTNAME,
        ident="Microsoft ESMTP MAIL Service ready",
        tls_context=tls,
        require_starttls=True,
        auth_require_tls=True,
        loop=loop,
    )
