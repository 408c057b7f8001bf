"""The connection test: endpoint/TLS → token → token claims → protocol authentication →
mailbox access → (test mail). Each step passes or fails with a cause and the admin's remedy;
the first failure ends the test, because later steps cannot say anything true after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from mailgate.connect import Endpoint, MailboxConnector
from mailgate.diagnose.remedies import (
    Finding,
    explain_access_failure,
    explain_auth_failure,
    missing_permission,
)
from mailgate.errors import MailgateError, TransportError
from mailgate.mail.compose import OutgoingMessage, build_message
from mailgate.mailboxes import MailboxProfile
from mailgate.protocols.base import (
    MailAuthenticationError,
    Mailbox,
    MailboxAccessError,
    Operation,
    Protocol,
    SearchCriteria,
    Security,
)

__all__ = ["SUCCESS", "ConnectionReport", "Step", "StepStatus", "run_connection_test"]

SUCCESS = "Connection successful"


class StepStatus(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclass
class Step:
    """One step of the test: what was checked, the outcome, and on failure the finding."""

    name: str
    status: StepStatus
    detail: str
    finding: Finding | None = None


@dataclass
class ConnectionReport:
    """All steps and the verdict."""

    mailbox: str
    protocol: str
    address: str
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status is not StepStatus.FAIL for s in self.steps)

    @property
    def verdict(self) -> str:
        if self.ok:
            return SUCCESS
        failed = next(s for s in self.steps if s.status is StepStatus.FAIL)
        return f"Connection failed at step '{failed.name}'"

    def as_dict(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "protocol": self.protocol,
            "address": self.address,
            "ok": self.ok,
            "verdict": self.verdict,
            "steps": [asdict(s) for s in self.steps],
        }


def _finding(exc: MailgateError) -> Finding:
    return Finding(exc.message, exc.remedy)


async def _check_endpoint(endpoint: Endpoint, context: ssl.SSLContext) -> str:
    use_tls = endpoint.security is Security.TLS
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=context if use_tls else None,
                server_hostname=endpoint.host if use_tls else None,
            ),
            timeout=15,
        )
    except ssl.SSLCertVerificationError as exc:
        raise TransportError(
            f"the TLS certificate of {endpoint.host} is not trusted ({exc.verify_message}).",
            "check the server name; for a private server pass its CA with --ca-file.",
        ) from exc
    except (OSError, TimeoutError) as exc:
        raise TransportError(
            f"cannot reach {endpoint.host}:{endpoint.port} ({exc.__class__.__name__}: {exc}).",
            "check the server name and port, DNS, firewalls and proxies.",
        ) from exc
    tls = ""
    if use_tls:
        ssl_object = writer.get_extra_info("ssl_object")
        tls = f", {ssl_object.version()}" if ssl_object else ""
    writer.close()
    with contextlib.suppress(OSError, ssl.SSLError):
        await writer.wait_closed()
    return f"{endpoint.describe()} reachable{tls}"


async def _mailbox_access(mailbox: Mailbox, profile: MailboxProfile) -> str:
    if Operation.SEARCH not in mailbox.operations:
        return f"{profile.protocol.value.upper()} has no folders to open; authentication suffices"
    folder = "INBOX" if profile.protocol is Protocol.POP3 else profile.default_folder
    refs = await mailbox.search(folder, SearchCriteria(), limit=1)
    return f"opened {folder} ({'has mail' if refs else 'empty'})"


async def run_connection_test(
    connector: MailboxConnector, profile: MailboxProfile, send_test_mail_to: str | None = None
) -> ConnectionReport:
    """Run every step in order and return the report (never raises a MailgateError)."""
    report = ConnectionReport(profile.name, profile.protocol.value, profile.address)
    steps = report.steps
    try:
        endpoint = connector.endpoint(profile)
        steps.append(
            Step(
                "endpoint",
                StepStatus.PASS,
                await _check_endpoint(endpoint, connector.ssl_context(profile)),
            )
        )
    except MailgateError as exc:
        steps.append(Step("endpoint", StepStatus.FAIL, exc.message, _finding(exc)))
        return report
    credential = connector.provider.vault.get(profile.credential)
    try:
        token = await connector.token(profile)
    except MailgateError as exc:
        steps.append(Step("token", StepStatus.FAIL, exc.message, _finding(exc)))
        return report
    source = "cache" if token.from_cache else "identity platform"
    steps.append(Step("token", StepStatus.PASS, f"acquired from the {source}"))
    claims = token.claims
    problem = missing_permission(profile.protocol, claims, credential.app_only)
    if problem:
        steps.append(Step("token claims", StepStatus.FAIL, problem.cause, problem))
        return report
    grants = " ".join(claims.get("roles") or ()) or str(claims.get("scp", ""))
    steps.append(
        Step("token claims", StepStatus.PASS, f"audience {claims.get('aud')}, grants {grants}")
    )
    app_only = credential.app_only
    adapter = connector.adapter(profile)

    def failed(name: str, exc: MailgateError) -> Step:
        return Step(name, StepStatus.FAIL, exc.message, _explain(exc, profile, claims, app_only))

    try:
        try:
            await adapter.connect()
        except MailboxAccessError as exc:
            # By definition the token was accepted: the mailbox is what cannot be used.
            steps.append(Step("authentication", StepStatus.PASS, "token accepted"))
            steps.append(failed("mailbox access", exc))
            return report
        except MailgateError as exc:
            steps.append(failed("authentication", exc))
            return report
        steps.append(Step("authentication", StepStatus.PASS, f"signed in as {profile.address}"))
        try:
            detail = await _mailbox_access(adapter, profile)
        except MailgateError as exc:
            steps.append(failed("mailbox access", exc))
            return report
        steps.append(Step("mailbox access", StepStatus.PASS, detail))
        if send_test_mail_to:
            try:
                await _send_test_mail(adapter, profile, send_test_mail_to)
            except MailgateError as exc:
                steps.append(failed("test mail", exc))
            else:
                steps.append(Step("test mail", StepStatus.PASS, f"sent to {send_test_mail_to}"))
    finally:
        await adapter.close()
    return report


def _explain(
    exc: MailgateError, profile: MailboxProfile, claims: dict[str, Any], app_only: bool
) -> Finding:
    """The finding for an adapter's error: server replies are mapped, others kept as said."""
    if isinstance(exc, MailAuthenticationError):
        return explain_auth_failure(
            profile.protocol, exc.reply or exc.message, claims, app_only, profile.address
        )
    if isinstance(exc, MailboxAccessError):
        return explain_access_failure(
            profile.protocol, exc.reply or exc.message, claims, app_only, profile.address
        )
    return _finding(exc)


async def _send_test_mail(adapter: Mailbox, profile: MailboxProfile, to: str) -> None:
    if Operation.SEND not in adapter.operations:
        raise MailgateError(
            f"{profile.protocol.value.upper()} cannot send mail.",
            "add an SMTP, EWS or Graph mailbox profile for the same mailbox and test that one.",
        )
    message = OutgoingMessage(
        sender=profile.address,
        to=(to,),
        subject="mailgate connection test",
        text=f"This test message was sent by mailgate for mailbox profile '{profile.name}'.",
    )
    await adapter.send(
        build_message(message).as_bytes(), sender=profile.address, recipients=message.recipients
    )
