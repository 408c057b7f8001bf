"""What a failed connection step means, and the admin's exact fix: pure functions.

Inputs are what the connection test observed (the token's claims, the server's reply); outputs
are a :class:`Finding` with the cause and the remedy, including the Exchange Online PowerShell
lines filled in with the app's ids. App-only tokens carry the enterprise application's
(service principal's) object id in ``oid``: the id ``New-ServicePrincipal -ObjectId`` and
``Add-MailboxPermission -User`` need (using the app registration's object id instead is the
documented trap, microsoft-facts.md section 3).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailgate.protocols.base import Protocol

__all__ = [
    "EXCHANGE_AUDIENCES",
    "GRAPH_AUDIENCES",
    "Finding",
    "explain_access_failure",
    "explain_auth_failure",
    "missing_permission",
    "required_permissions",
]

EXCHANGE_AUDIENCES = frozenset(
    {
        "https://outlook.office365.com",
        "https://outlook.office.com",
        "00000002-0000-0ff1-ce00-000000000000",
    }
)
GRAPH_AUDIENCES = frozenset({"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"})

_APP_ROLE = {
    Protocol.IMAP: ("IMAP.AccessAsApp",),
    Protocol.POP3: ("POP.AccessAsApp",),
    Protocol.SMTP: ("SMTP.SendAsApp",),
    Protocol.EWS: ("full_access_as_app",),
    Protocol.GRAPH: ("Mail.ReadWrite", "Mail.Read"),
}
_DELEGATED = {
    Protocol.IMAP: ("IMAP.AccessAsUser.All",),
    Protocol.POP3: ("POP.AccessAsUser.All",),
    Protocol.SMTP: ("SMTP.Send",),
    Protocol.EWS: ("EWS.AccessAsUser.All",),
    Protocol.GRAPH: ("Mail.ReadWrite", "Mail.Read"),
}


@dataclass(frozen=True)
class Finding:
    """A cause, the remedy in words, and commands to run (may be empty)."""

    cause: str
    remedy: str
    commands: tuple[str, ...] = field(default=())


def required_permissions(protocol: Protocol, app_only: bool) -> tuple[str, ...]:
    """Any one of these grants what ``protocol`` needs."""
    return (_APP_ROLE if app_only else _DELEGATED)[protocol]


def _api(protocol: Protocol) -> str:
    return "Microsoft Graph" if protocol is Protocol.GRAPH else "Office 365 Exchange Online"


def missing_permission(
    protocol: Protocol, claims: Mapping[str, Any], app_only: bool
) -> Finding | None:
    """A finding if the token's audience or roles/scp do not fit ``protocol``; else None."""
    audience = str(claims.get("aud", "")).rstrip("/")
    wanted = GRAPH_AUDIENCES if protocol is Protocol.GRAPH else EXCHANGE_AUDIENCES
    if audience not in wanted:
        return Finding(
            f"the token is for {audience or 'no audience'}, but {protocol.value.upper()} needs a "
            f"token for {_api(protocol)}.",
            "request the scope of that API (mailgate does this per protocol; check the "
            "credential's --scope).",
        )
    granted = (
        set(claims.get("roles") or ()) if app_only else set(str(claims.get("scp", "")).split())
    )
    needed = required_permissions(protocol, app_only)
    if granted.intersection(needed):
        return None
    kind = "Application" if app_only else "Delegated"
    shown = ", ".join(sorted(granted)) or "none"
    return Finding(
        f"the token grants {shown}, not {needed[0]}, which {protocol.value.upper()} needs.",
        f"in Entra admin center > App registrations > your app > API permissions, add the "
        f"{kind} permission {needed[0]} of '{_api(protocol)}', then click "
        "'Grant admin consent'.",
    )


def _app_ids(claims: Mapping[str, Any]) -> tuple[str, str]:
    return str(claims.get("appid") or claims.get("azp") or "<application id>"), str(
        claims.get("oid") or "<enterprise application object id>"
    )


def explain_auth_failure(
    protocol: Protocol, reply: str, claims: Mapping[str, Any], app_only: bool, mailbox: str
) -> Finding:
    """Why the server refused a token whose claims looked right."""
    text = reply.lower()
    if "5.7.139" in text or "smtpclientauthentication is disabled" in text:
        return Finding(
            "SMTP AUTH is disabled for this mailbox (or the whole tenant).",
            "enable authenticated SMTP for the mailbox in Exchange Online PowerShell.",
            (f"Set-CASMailbox -Identity {mailbox} -SmtpClientAuthenticationDisabled $false",),
        )
    if "5.7.30" in text or "basic authentication" in text:
        return Finding(
            "the server refused basic authentication, which Microsoft has turned off.",
            "use OAuth (an XOAUTH2 credential); mailgate never sends passwords to mail servers.",
        )
    app_id, sp_id = _app_ids(claims)
    if app_only and protocol in (Protocol.IMAP, Protocol.POP3, Protocol.SMTP):
        right = "SendAs" if protocol is Protocol.SMTP else "FullAccess"
        commands = [
            f"New-ServicePrincipal -AppId {app_id} -ObjectId {sp_id}",
            f"Add-MailboxPermission -Identity {mailbox} -User {sp_id} -AccessRights FullAccess",
        ]
        if right == "SendAs":
            commands.append(
                f"Add-RecipientPermission -Identity {mailbox} -Trustee {sp_id} -AccessRights SendAs"
            )
        return Finding(
            "Exchange rejected the app-only token: the app is not registered as a service "
            "principal in Exchange Online, or it was registered with the app registration's "
            "object id instead of the enterprise application's, or it has no permission on "
            "this mailbox.",
            "run in Exchange Online PowerShell (Connect-ExchangeOnline first); the -ObjectId is "
            "the Object ID on the Enterprise applications page, not on App registrations.",
            tuple(commands),
        )
    if not app_only:
        return Finding(
            f"{protocol.value.upper()} refused the user's token.",
            f"check that {protocol.value.upper()} is enabled for the mailbox "
            f"(Get-CASMailbox {mailbox}) and that the user may open it.",
        )
    return Finding(
        f"{protocol.value.upper()} refused the token ({reply.strip() or 'no reason given'}).",
        "check the app's permissions and consent, and the mailbox address.",
    )


def explain_access_failure(
    protocol: Protocol, reply: str, claims: Mapping[str, Any], app_only: bool, mailbox: str
) -> Finding:
    """Why an authenticated session cannot use the mailbox."""
    text = reply.lower()
    app_id, sp_id = _app_ids(claims)
    if "not connected" in text:
        who = sp_id if app_only else str(claims.get("upn", "<user>"))
        return Finding(
            "the server accepted the token but cannot open the mailbox: the mailbox address "
            "(user=) is wrong, or the app/user has no permission on it.",
            f"check the mailbox address {mailbox}; grant access in Exchange Online PowerShell.",
            (f"Add-MailboxPermission -Identity {mailbox} -User {who} -AccessRights FullAccess",),
        )
    if "sendas" in text or "5.2.252" in text:
        who = sp_id if app_only else str(claims.get("upn", "<user>"))
        return Finding(
            "the sender address may not be used by this app or user (SendAs missing).",
            "send from the mailbox itself, or grant SendAs in Exchange Online PowerShell.",
            (f"Add-RecipientPermission -Identity {mailbox} -Trustee {who} -AccessRights SendAs",),
        )
    if "ews" in text and ("disabled" in text or "403" in text):
        return Finding(
            "EWS is turned off for this tenant or app (default since October 2026).",
            "use Microsoft Graph (--protocol graph); EWS in Exchange Online ends in April 2027.",
            (f"Set-OrganizationConfig -EWSEnabled $true  # and add {app_id} to EWSAllowedAppIDs",),
        )
    if "accessdenied" in text or "access is denied" in text or "403" in text:
        return Finding(
            "the token is valid, but an application access policy (or an RBAC for Applications "
            "scope) keeps this app away from this mailbox.",
            "test the policy, then add the mailbox to the policy's group or scope.",
            (f"Test-ApplicationAccessPolicy -Identity {mailbox} -AppId {app_id}",),
        )
    if "nonexistentmailbox" in text or "invaliduser" in text or "not found" in text:
        return Finding(
            f"no mailbox {mailbox} exists (or it has no Exchange Online licence).",
            "check the mailbox address.",
        )
    return Finding(
        f"the mailbox cannot be used ({reply.strip() or 'no reason given'}).",
        "check the mailbox address and the permissions granted on it.",
    )
