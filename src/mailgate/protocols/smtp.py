"""SMTP adapter: :class:`SmtpMailbox` sends MIME with AUTH XOAUTH2 (Exchange: port 587 STARTTLS).

Library choice: stdlib :mod:`smtplib` in a worker thread rather than aiosmtplib. Sending is a
handful of request/reply round trips per message, so a thread costs nothing measurable; smtplib
needs no extra dependency, does STARTTLS and ``docmd`` for the raw ``AUTH XOAUTH2`` exchange,
and its replies (code, text) feed :func:`smtp_failure`, the one pure place where Exchange's
replies become typed errors: 535 5.7.3 (token refused), 535 5.7.139 (SMTP AUTH disabled),
550 5.7.30 (basic auth), 554 5.2.252 (SendAsDenied), 4xx (throttled), 552 (too large).

Envelope addresses: a non-ASCII domain is sent IDNA-encoded (``bücher.de`` →
``xn--bcher-kva.de``); a non-ASCII local part needs the server's SMTPUTF8 extension
(:func:`prepare_envelope`), else the address is refused before anything is sent.

SASL: ``AUTH XOAUTH2`` → ``334`` → base64 response (as Microsoft documents it); a second 334
is a failure challenge (Dovecot/Gmail style), answered with an empty line.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import smtplib
import ssl
from collections.abc import Sequence
from typing import ClassVar

import idna

from mailgate.errors import (
    ConfigurationError,
    InvalidInputError,
    MailgateError,
    ProtocolError,
    TransportError,
)
from mailgate.protocols._mailstream import transport_error
from mailgate.protocols._socket_mailbox import SocketMailbox
from mailgate.protocols.base import (
    MailAuthenticationError,
    MailboxAccessError,
    Operation,
    Protocol,
    Security,
    SubmissionUnknownError,
    ThrottledError,
)
from mailgate.protocols.sasl import oauthbearer_initial_response, xoauth2_initial_response

__all__ = [
    "SmtpMailbox",
    "data_payload",
    "envelope_address",
    "prepare_envelope",
    "retry_after_seconds",
    "smtp_failure",
]

_RETRY = re.compile(r"(?:retry|try again)[^0-9]{0,20}(\d+)\s*(second|sec|s\b|minute|min)", re.I)


def retry_after_seconds(text: str, default: float = 60.0) -> float:
    """A wait time named in a 4xx reply ("try again in 30 seconds"), else ``default``."""
    match = _RETRY.search(text)
    if not match:
        return default
    value = float(match.group(1))
    return value * 60 if match.group(2).lower().startswith("m") else value


def envelope_address(address: str, field: str, smtputf8: bool) -> tuple[str, bool]:
    """``address`` as it goes into MAIL FROM / RCPT TO, and whether it needs SMTPUTF8.

    The domain is IDNA-encoded (IDNA 2008 with UTS #46 mapping, so ``straße.de`` stays distinct
    from ``strasse.de``); a non-ASCII local part has no ASCII form and is sent as UTF-8, which
    only a server offering SMTPUTF8 accepts. ``field`` names the address in errors.
    """
    if address.isascii():
        return address, False
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if domain and not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidInputError(
                field, "an e-mail address with a valid (IDNA) domain name", address
            ) from exc
    if local.isascii():
        return f"{local}{at}{domain}", False
    if not smtputf8:
        raise InvalidInputError(
            field,
            "an address with an ASCII part before the @: the server does not accept "
            "non-ASCII addresses (SMTPUTF8)",
            address,
        )
    return f"{local}{at}{domain}", True


def prepare_envelope(
    sender: str, recipients: Sequence[str], smtputf8: bool
) -> tuple[str, list[str], list[str]]:
    """The envelope sender and recipients as sent, plus the MAIL FROM options they need.

    ``smtputf8`` says whether the server offered the extension (EHLO). Raises
    :class:`InvalidInputError` for an address the server cannot take, before anything is sent.
    """
    wire_sender, utf8 = envelope_address(sender, "sender", smtputf8)
    wire_recipients = []
    for recipient in recipients:
        wire, needs = envelope_address(recipient, "recipient", smtputf8)
        wire_recipients.append(wire)
        utf8 = utf8 or needs
    return wire_sender, wire_recipients, ["SMTPUTF8"] if utf8 else []


def smtp_failure(code: int, text: str, phase: str, size_limit: int | None = None) -> MailgateError:
    """Map one SMTP reply to the error the caller sees. ``phase``: auth, mail, rcpt, data."""
    reply = f"{code} {text}".strip()
    if code == 535 and "5.7.139" in text:
        return MailAuthenticationError(
            f"SMTP AUTH is disabled for this mailbox or tenant: {reply}",
            "enable authenticated SMTP for the mailbox (Set-CASMailbox <mailbox> "
            "-SmtpClientAuthenticationDisabled $false) or send with Graph instead.",
            reply=reply,
        )
    if code == 550 and "5.7.30" in text:
        return MailAuthenticationError(
            f"The server refused basic authentication: {reply}",
            "the server did not accept XOAUTH2; check that the token is an OAuth token for "
            "https://outlook.office365.com.",
            reply=reply,
        )
    if code in (530, 535) or (phase == "auth" and code >= 500):
        return MailAuthenticationError(
            f"The SMTP server refused the token: {reply}",
            "check that the token is for https://outlook.office365.com with SMTP.Send "
            "(delegated) or SMTP.SendAsApp (app-only, with New-ServicePrincipal and FullAccess "
            "on the mailbox); run `mailgate test` for a diagnosis.",
            reply=reply,
        )
    if "5.2.252" in text or "sendasdenied" in text.lower():
        return MailboxAccessError(
            f"The mailbox may not send as this address: {reply}",
            "grant SendAs on the sender address (Add-RecipientPermission <address> -Trustee "
            "<user or app> -AccessRights SendAs), or send from the mailbox's own address.",
            reply=reply,
        )
    if 400 <= code < 500:
        return ThrottledError(
            f"The SMTP server deferred the message: {reply}",
            "wait and retry; Exchange Online allows 30 messages per minute per mailbox.",
            retry_after=retry_after_seconds(text),
        )
    if code == 552:
        limit = f" (the limit is {size_limit} bytes)" if size_limit else ""
        return ProtocolError(
            f"The message is too large for the server{limit}: {reply}",
            "send smaller attachments or share a link instead.",
        )
    return ProtocolError(f"SMTP {phase} failed: {reply}", "check the sender and recipients.")


class SmtpMailbox(SocketMailbox):
    """Sends as one mailbox over SMTP; ``address`` is the SASL user."""

    protocol: ClassVar[Protocol] = Protocol.SMTP
    operations: ClassVar[frozenset[Operation]] = frozenset({Operation.SEND})
    default_security: ClassVar[Security] = Security.STARTTLS

    def _init_state(self) -> None:
        self._smtp: smtplib.SMTP | None = None

    async def connect(self) -> None:
        token = await self._token_source()
        self._smtp = await asyncio.to_thread(self._open, token)

    def _open(self, token: str) -> smtplib.SMTP:
        context = self.ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP | None = None
        try:
            if self.security is Security.TLS:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            smtp.ehlo()
            if self.security is Security.STARTTLS:
                if not smtp.has_extn("starttls"):
                    raise ConfigurationError(
                        f"The SMTP server {self.host}:{self.port} does not offer STARTTLS.",
                        "use security 'tls' on port 465, or the right port (587).",
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            self._authenticate(smtp, token)
            return smtp
        except MailgateError:
            _quit(smtp)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            _quit(smtp)
            raise _transport(self, "Connecting", exc) from exc

    def _authenticate(self, smtp: smtplib.SMTP, token: str) -> None:
        if self.mechanism == "OAUTHBEARER":
            initial = oauthbearer_initial_response(self.address, token)
        else:
            initial = xoauth2_initial_response(self.address, token)
        code, text = smtp.docmd("AUTH", self.mechanism)
        if code == 334:
            code, text = smtp.docmd(base64.b64encode(initial).decode("ascii"))
        if code == 334:  # failure challenge: an empty response gets the final reply
            code, text = smtp.docmd("")
        if code != 235:
            raise smtp_failure(code, text.decode("utf-8", "replace"), "auth")

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            await asyncio.to_thread(_quit, smtp)

    async def send(self, mime: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        if not recipients:
            raise ConfigurationError("No recipients given.", "name at least one recipient.")
        if self._smtp is None:
            await self.connect()
        assert self._smtp is not None
        await asyncio.to_thread(self._send, self._smtp, mime, sender, list(recipients))

    def _send(self, smtp: smtplib.SMTP, mime: bytes, sender: str, recipients: list[str]) -> None:
        sender, recipients, utf8 = prepare_envelope(sender, recipients, smtp.has_extn("smtputf8"))
        limit = int(smtp.esmtp_features.get("size", "0") or 0) or None
        if limit and len(mime) > limit:
            raise smtp_failure(552, f"message size {len(mime)} exceeds {limit}", "mail", limit)
        try:
            options = [f"SIZE={len(mime)}"] if smtp.has_extn("size") else []
            options += utf8
            code, text = smtp.mail(sender, options)
            if code != 250:
                raise smtp_failure(code, text.decode("utf-8", "replace"), "mail", limit)
            for recipient in recipients:
                code, text = smtp.rcpt(recipient)
                if code not in (250, 251):
                    raise smtp_failure(code, text.decode("utf-8", "replace"), "rcpt", limit)
            code, text = smtp.docmd("DATA")
            if code != 354:
                raise smtp_failure(code, text.decode("utf-8", "replace"), "data", limit)
            # If this fails, the end marker never reached the server: nothing was accepted.
            smtp.send(data_payload(mime))
            try:
                code, text = smtp.getreply()
            except (smtplib.SMTPException, OSError) as exc:
                self._smtp = None
                smtp.close()
                raise SubmissionUnknownError(
                    f"The connection to the SMTP server {self.host}:{self.port} broke after the "
                    f"message was sent, before the server answered ({exc}): it may have been "
                    "accepted.",
                    "look for it in the mailbox's Sent Items before sending it again.",
                ) from exc
            if code != 250:
                raise smtp_failure(code, text.decode("utf-8", "replace"), "data", limit)
        except smtplib.SMTPResponseException as exc:
            _reset(smtp)
            error = exc.smtp_error
            reply = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
            raise smtp_failure(exc.smtp_code, reply, "data", limit) from exc
        except MailgateError:
            _reset(smtp)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            self._smtp = None
            raise _transport(self, "Sending", exc) from exc


_LEADING_DOT = re.compile(rb"(?m)^\.")


def data_payload(mime: bytes) -> bytes:
    """What follows ``DATA``: ``mime`` with each line's leading dot doubled (RFC 5321 4.5.2),
    ended by CRLF . CRLF, as :meth:`smtplib.SMTP.data` sends bytes."""
    quoted = _LEADING_DOT.sub(b"..", mime)
    if not quoted.endswith(b"\r\n"):
        quoted += b"\r\n"
    return quoted + b".\r\n"


def _transport(box: SmtpMailbox, what: str, exc: BaseException) -> TransportError:
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransportError(
            f"The SMTP server {box.host}:{box.port} closed the connection ({exc}).",
            "retry; check the port (587 STARTTLS) and the server's limits.",
        )
    return transport_error(what, box.host, box.port, exc)


def _reset(smtp: smtplib.SMTP) -> None:
    # If the session is gone the next send reconnects.
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.rset()


def _quit(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
