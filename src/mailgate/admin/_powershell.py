"""Exchange Online PowerShell for a setup plan: the steps Entra consent alone does not cover.

App-only IMAP/POP/SMTP need the app registered as an Exchange service principal plus mailbox
permissions; app-only EWS/Graph reach every mailbox unless an ApplicationAccessPolicy (or the
newer RBAC for Applications) narrows them; SMTP AUTH and IMAP/POP can be off per mailbox.
Facts: ../shared/design/microsoft-facts.md sections 3, 4 and 5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailgate.protocols.base import Protocol

__all__ = ["GROUP_NAME", "SCOPE_NAME", "PowerShellBlock", "exchange_steps"]

GROUP_NAME = "mailgate-app-mailboxes"
SCOPE_NAME = "mailgate-app-mailboxes"


@dataclass(frozen=True)
class PowerShellBlock:
    """A titled group of PowerShell lines with a sentence on why they are needed."""

    title: str
    explanation: str
    lines: tuple[str, ...]
    optional: bool = False


_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"  # PowerShell treats all four as single quotes


def _q(value: str) -> str:
    """A single-quoted PowerShell string (placeholders stay readable).

    Every character PowerShell reads as a single quote is doubled, so an address cannot end the
    string early in a script an admin copies; single quotes also stop ``$`` and backtick from
    being expanded.
    """
    return "'" + "".join(c + c if c in _SINGLE_QUOTES else c for c in value) + "'"


def _connect() -> PowerShellBlock:
    return PowerShellBlock(
        "Connect",
        "Run in PowerShell as an Exchange administrator (module ExchangeOnlineManagement).",
        ("Install-Module ExchangeOnlineManagement -Scope CurrentUser", "Connect-ExchangeOnline"),
    )


def _service_principal(client_id: str, sp_id: str) -> PowerShellBlock:
    return PowerShellBlock(
        "Register the app in Exchange",
        "-ObjectId is the Object ID on the Enterprise applications page of this app, not the "
        "Object ID on App registrations; the wrong one gives a service principal that fails "
        "to sign in.",
        (f"New-ServicePrincipal -AppId {client_id} -ObjectId {sp_id} -DisplayName 'mailgate'",),
    )


def _protocol_switches(protocol: Protocol, mailboxes: Sequence[str]) -> PowerShellBlock | None:
    switch = {
        Protocol.IMAP: "-ImapEnabled $true",
        Protocol.POP3: "-PopEnabled $true",
        Protocol.SMTP: "-SmtpClientAuthenticationDisabled $false",
    }.get(protocol)
    if switch is None:
        return None
    why = (
        "SMTP AUTH is off in tenants created since 2020 and can be off per mailbox; without it "
        "the server answers 535 5.7.139."
        if protocol is Protocol.SMTP
        else f"{protocol.name.rstrip('3')} can be turned off per mailbox (POP often is)."
    )
    return PowerShellBlock(
        f"Allow {protocol.name.rstrip('3')} on the mailboxes",
        why,
        tuple(f"Set-CASMailbox -Identity {_q(m)} {switch}" for m in mailboxes),
    )


def _app_protocol_blocks(
    protocol: Protocol, mailboxes: Sequence[str], client_id: str, sp_id: str
) -> list[PowerShellBlock]:
    blocks = [_service_principal(client_id, sp_id)]
    blocks.append(
        PowerShellBlock(
            "Give the app access to each mailbox",
            "The app role lets the app sign in; FullAccess says which mailboxes it may open "
            "(without it IMAP answers 'User is authenticated but not connected').",
            tuple(
                f"Add-MailboxPermission -Identity {_q(m)} -User {sp_id} -AccessRights FullAccess"
                for m in mailboxes
            ),
        )
    )
    if protocol is Protocol.SMTP:
        blocks.append(
            PowerShellBlock(
                "Let the app send as each mailbox",
                "Without SendAs the server refuses the sender with 554 5.2.252 SendAsDenied.",
                tuple(
                    f"Add-RecipientPermission -Identity {_q(m)} -Trustee {sp_id} "
                    "-AccessRights SendAs -Confirm:$false"
                    for m in mailboxes
                ),
            )
        )
    return blocks


def _restriction_blocks(
    protocol: Protocol, mailboxes: Sequence[str], client_id: str, sp_id: str
) -> list[PowerShellBlock]:
    domain = mailboxes[0].split("@", 1)[1] if "@" in mailboxes[0] else "<domain>"
    group = f"{GROUP_NAME}@{domain}"
    policy = PowerShellBlock(
        "Restrict the app to these mailboxes (ApplicationAccessPolicy)",
        "The application permission covers every mailbox in the tenant; this policy limits "
        "Graph and EWS to the members of a mail-enabled security group (not IMAP/POP/SMTP). "
        "It can take up to an hour to apply.",
        (
            f"New-DistributionGroup -Name {_q(GROUP_NAME)} -Type Security "
            f"-PrimarySmtpAddress {_q(group)}",
            *(
                f"Add-DistributionGroupMember -Identity {_q(group)} -Member {_q(m)}"
                for m in mailboxes
            ),
            f"New-ApplicationAccessPolicy -AppId {client_id} -PolicyScopeGroupId {_q(group)} "
            "-AccessRight RestrictAccess -Description 'mailgate: only these mailboxes'",
            *(
                f"Test-ApplicationAccessPolicy -Identity {_q(m)} -AppId {client_id}"
                for m in mailboxes
            ),
        ),
    )
    roles = (
        ("Application EWS.AccessAsApp",)
        if protocol is Protocol.EWS
        else ("Application Mail.ReadWrite", "Application Mail.Send")
    )
    restriction = " -or ".join(f"PrimarySmtpAddress -eq {_q(m)}" for m in mailboxes)
    rbac = PowerShellBlock(
        "Or, the newer way: RBAC for Applications",
        "Instead of the policy above: grant the role only over a management scope, and remove "
        "the tenant-wide application permission from the app registration (Entra grants add "
        "to RBAC grants, they do not narrow them).",
        (
            f"New-ServicePrincipal -AppId {client_id} -ObjectId {sp_id} -DisplayName 'mailgate'",
            # Single-quoted outer string: a double-quoted one would expand "$" in an address.
            f"New-ManagementScope -Name {_q(SCOPE_NAME)} "
            f"-RecipientRestrictionFilter {_q(restriction)}",
            *(
                f"New-ManagementRoleAssignment -App {sp_id} -Role {_q(role)} "
                f"-CustomResourceScope {_q(SCOPE_NAME)}"
                for role in roles
            ),
            *(
                f"Test-ServicePrincipalAuthorization -Identity {sp_id} -Resource {_q(m)}"
                for m in mailboxes
            ),
        ),
        optional=True,
    )
    return [policy, rbac]


def exchange_steps(
    protocol: Protocol,
    *,
    app_only: bool,
    mailboxes: Sequence[str],
    client_id: str | None,
    sp_object_id: str | None,
) -> tuple[PowerShellBlock, ...]:
    """The PowerShell blocks for one plan, with placeholders for ids not given."""
    app = client_id or "<client-id>"
    sp_id = sp_object_id or "<enterprise-app-object-id>"
    targets = list(mailboxes) or ["<mailbox>"]
    blocks: list[PowerShellBlock] = []
    if app_only and protocol in (Protocol.IMAP, Protocol.POP3, Protocol.SMTP):
        blocks += _app_protocol_blocks(protocol, targets, app, sp_id)
    elif app_only and mailboxes:
        blocks += _restriction_blocks(protocol, targets, app, sp_id)
    switches = _protocol_switches(protocol, targets)
    if switches is not None:
        blocks.append(switches)
    if protocol is Protocol.EWS:
        blocks.append(
            PowerShellBlock(
                "Check that EWS is still allowed",
                "EWS is off by default since 1 Oct 2026; it needs EWSEnabled True for the "
                "organisation and mailbox and this app in the EWSAllowedAppIDs allow-list.",
                (
                    "Get-OrganizationConfig | Format-List EWSEnabled,EWSAllowedAppIDs",
                    *(
                        f"Get-CASMailbox -Identity {_q(m)} | Format-List EWSEnabled"
                        for m in targets
                    ),
                ),
            )
        )
    if not blocks:
        return ()
    return (_connect(), *blocks)
