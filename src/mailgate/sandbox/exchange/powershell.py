"""The Exchange Online PowerShell steps Graph cannot do, emulated over a sandbox tenant.

``mailgate setup plan`` and ``setup apply`` print these lines for the admin; tests and the demo
hand the very same lines to the sandbox (``POST /_sandbox/exchange/powershell``), so the
printed script is what makes the connection test pass. Pure: a script goes in, the tenant's
Exchange settings and mailbox permissions change, one result per line comes out.

Emulated cmdlets (parameters as the plan prints them; others are refused)::

    New-ServicePrincipal -AppId <client id> -ObjectId <SP object id> [-DisplayName ...]
    Add-MailboxPermission -Identity <mailbox> -User <UPN or SP object id> -AccessRights FullAccess
    Add-RecipientPermission -Identity <mailbox> -Trustee <...> -AccessRights SendAs
    Set-CASMailbox -Identity <mailbox> [-SmtpClientAuthenticationDisabled $true|$false]
                   [-ImapEnabled ...] [-PopEnabled ...]   (IMAP/POP switches are not modelled)
    New-DistributionGroup -Name <n> -Type Security -PrimarySmtpAddress <address>
    Add-DistributionGroupMember -Identity <group> -Member <mailbox>
    New-ApplicationAccessPolicy -AppId <id> -PolicyScopeGroupId <group> -AccessRight
                   RestrictAccess|DenyAccess   (members are taken when the policy is made)
    Install-Module, Import-Module, Connect-ExchangeOnline, Get-*, Test-*: accepted, no change

As in Exchange, ``New-ServicePrincipal`` does not check that ``-ObjectId`` is the enterprise
application's id: the wrong id is accepted and sign-ins fail later, which is the trap the
plan warns about. RBAC for Applications (``New-ManagementScope`` & co.) is not emulated.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mailgate.sandbox.directory.exchange_settings import (
    ApplicationAccessPolicy,
    DistributionGroup,
    MailboxConfig,
    ServicePrincipalRegistration,
)
from mailgate.sandbox.directory.tenant import Tenant

__all__ = ["ShellError", "ShellResult", "parse_line", "run_script"]

_QUOTES = "'\u2018\u2019\u201a\u201b"
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class ShellError(Exception):
    """A line the sandbox cannot run; ``line`` is its 1-based number in the script."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True)
class ShellResult:
    """What one line did."""

    line: int
    command: str
    output: str
    changed: bool


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """A single-quoted PowerShell string from ``text[start]``; doubled quotes are one quote."""
    out: list[str] = []
    index = start + 1
    while index < len(text):
        char = text[index]
        if char in _QUOTES:
            if index + 1 < len(text) and text[index + 1] in _QUOTES:
                out.append(char)
                index += 2
                continue
            return "".join(out), index + 1
        out.append(char)
        index += 1
    raise ValueError("unterminated quoted string")


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char in _QUOTES:
            value, index = _read_quoted(text, index)
            tokens.append("\0" + value)  # marks a quoted token: never a parameter name
        elif char == '"':
            raise ValueError("double-quoted strings are not emulated; use single quotes")
        else:
            end = index
            while end < len(text) and not text[end].isspace():
                end += 1
            tokens.append(text[index:end])
            index = end
    return tokens


def parse_line(text: str) -> tuple[str, dict[str, str]]:
    """``Cmdlet -Name value -Switch:$false`` into the cmdlet and its parameters (lower-case)."""
    tokens = _tokens(text)
    if not tokens or tokens[0].startswith("\0"):
        raise ValueError("a line starts with a cmdlet name")
    cmdlet, rest = tokens[0], tokens[1:]
    params: dict[str, str] = {}
    index = 0
    while index < len(rest):
        token = rest[index]
        if not token.startswith("-"):
            raise ValueError(f"unexpected value {token.lstrip(chr(0))!r}")
        name, colon, inline = token[1:].partition(":")
        if colon:
            params[name.lower()] = inline
            index += 1
        elif index + 1 < len(rest) and not rest[index + 1].startswith("-"):
            params[name.lower()] = rest[index + 1].lstrip("\0")
            index += 2
        else:
            params[name.lower()] = "$true"
            index += 1
    return cmdlet, params


def _bool(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered not in ("$true", "$false"):
        raise ValueError(f"-{name} takes $true or $false")
    return lowered == "$true"


class _Session:
    """Runs cmdlets against one tenant."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.exchange = tenant.exchange

    def _need(self, params: dict[str, str], *names: str) -> list[str]:
        missing = [n for n in names if not params.get(n.lower())]
        if missing:
            raise ValueError("missing parameter " + ", ".join(f"-{n}" for n in missing))
        return [params[n.lower()] for n in names]

    def _mailbox(self, identity: str) -> MailboxConfig:
        found = self.tenant.mailbox(identity)
        if found is None:
            raise ValueError(f"The operation couldn't be performed because object '{identity}'")
        return found

    def _principal(self, value: str) -> str:
        if _GUID.match(value):
            wanted = value.lower()
            if any(s.object_id == wanted for s in self.exchange.service_principals):
                return wanted
            raise ValueError(
                f"no service principal with id {value} is registered in Exchange "
                "(run New-ServicePrincipal first)"
            )
        if self.tenant.user(value) is None:
            raise ValueError(f"the user '{value}' couldn't be found")
        return value.lower()

    def new_serviceprincipal(self, params: dict[str, str]) -> str:
        app_id, object_id = self._need(params, "AppId", "ObjectId")
        if self.exchange.service_principal(app_id) is not None:
            raise ValueError(f"a service principal for app {app_id} already exists")
        registration = ServicePrincipalRegistration(app_id=app_id, object_id=object_id)
        self.exchange.service_principals.append(registration)
        return f"service principal {registration.object_id} for app {registration.app_id}"

    def add_mailboxpermission(self, params: dict[str, str]) -> str:
        identity, user, rights = self._need(params, "Identity", "User", "AccessRights")
        if rights.lower() != "fullaccess":
            raise ValueError("only -AccessRights FullAccess is emulated")
        mailbox, principal = self._mailbox(identity), self._principal(user)
        if not mailbox.has_full_access(principal):
            mailbox.full_access.append(principal)
        return f"FullAccess on {mailbox.address} for {principal}"

    def add_recipientpermission(self, params: dict[str, str]) -> str:
        identity, trustee, rights = self._need(params, "Identity", "Trustee", "AccessRights")
        if rights.lower() != "sendas":
            raise ValueError("only -AccessRights SendAs is emulated")
        mailbox, principal = self._mailbox(identity), self._principal(trustee)
        if not mailbox.has_send_as(principal):
            mailbox.send_as.append(principal)
        return f"SendAs on {mailbox.address} for {principal}"

    def set_casmailbox(self, params: dict[str, str]) -> str:
        (identity,) = self._need(params, "Identity")
        mailbox = self._mailbox(identity)
        if "smtpclientauthenticationdisabled" in params:
            disabled = _bool(params["smtpclientauthenticationdisabled"], "SmtpClientAuth…")
            mailbox.smtp_auth_enabled = not disabled
        for name in ("imapenabled", "popenabled"):
            if name in params:
                _bool(params[name], name)  # accepted; the sandbox never turns IMAP/POP off
        return f"{mailbox.address}: SMTP AUTH {'on' if mailbox.smtp_auth_enabled else 'off'}"

    def new_distributiongroup(self, params: dict[str, str]) -> str:
        name, address = self._need(params, "Name", "PrimarySmtpAddress")
        if self.exchange.group(address) is not None:
            raise ValueError(f"the group {address} already exists")
        self.exchange.distribution_groups.append(DistributionGroup(name=name, address=address))
        return f"group {address}"

    def add_distributiongroupmember(self, params: dict[str, str]) -> str:
        identity, member = self._need(params, "Identity", "Member")
        group = self.exchange.group(identity)
        if group is None:
            raise ValueError(f"the group {identity} couldn't be found")
        address = self._mailbox(member).address
        if address not in group.members:
            group.members.append(address)
        return f"{address} in {group.address}"

    def new_applicationaccesspolicy(self, params: dict[str, str]) -> str:
        app_id, group_id, right = self._need(params, "AppId", "PolicyScopeGroupId", "AccessRight")
        group = self.exchange.group(group_id)
        if group is None:
            raise ValueError(f"the group {group_id} couldn't be found")
        if right == "RestrictAccess":
            access: Literal["RestrictAccess", "DenyAccess"] = "RestrictAccess"
        elif right == "DenyAccess":
            access = "DenyAccess"
        else:
            raise ValueError("-AccessRight is RestrictAccess or DenyAccess")
        policy = ApplicationAccessPolicy(
            app_id=app_id, access_right=access, mailboxes=list(group.members)
        )
        self.exchange.application_access_policies.append(policy)
        return f"{right} for app {policy.app_id} over {len(group.members)} mailboxes"


_NO_CHANGE = ("install-module", "import-module", "connect-exchangeonline")
_EMULATED = frozenset(
    {
        "new-serviceprincipal",
        "add-mailboxpermission",
        "add-recipientpermission",
        "set-casmailbox",
        "new-distributiongroup",
        "add-distributiongroupmember",
        "new-applicationaccesspolicy",
    }
)


def run_script(tenant: Tenant, script: str) -> list[ShellResult]:
    """Run every line of ``script``; stop at the first failing one with :class:`ShellError`.

    Lines that already ran stay applied, as in a real PowerShell session.
    """
    session = _Session(tenant)
    results: list[ShellResult] = []
    for number, raw in enumerate(script.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        head = line.split("|", 1)[0].strip()
        cmdlet = head.split(None, 1)[0]
        key = cmdlet.lower()
        if key in _NO_CHANGE or key.startswith(("get-", "test-")):
            # Read-only or session cmdlets: nothing to emulate, whatever their arguments.
            results.append(ShellResult(number, cmdlet, "accepted (no change)", False))
            continue
        try:
            cmdlet, params = parse_line(head)
        except ValueError as exc:
            raise ShellError(number, str(exc)) from exc
        handler: Callable[[dict[str, str]], str] | None = (
            getattr(session, key.replace("-", "_")) if key in _EMULATED else None
        )
        if handler is None:
            raise ShellError(number, f"{cmdlet} is not emulated by the sandbox")
        try:
            output = handler(params)
        except ValueError as exc:
            raise ShellError(number, f"{cmdlet}: {exc}") from exc
        results.append(ShellResult(number, cmdlet, output, True))
    return results
