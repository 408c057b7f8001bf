"""The setup plan: what an admin must configure in Entra ID and Exchange Online, as data.

Pure functions only: :func:`build_plan` turns a validated :class:`PlanRequest` (protocol, OAuth
flow, mailboxes, known ids, cloud) into a :class:`SetupPlan` that
:mod:`mailgate.admin.render` prints as text, Markdown or JSON. Nothing here talks to a network,
so every protocol x flow combination is unit-tested.

Facts come from ../shared/design/microsoft-facts.md sections 2, 3, 5 and 8. Permission GUIDs
are given only where that sheet marks them verified; the other permissions are shown by name, as
the portal lists them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mailgate.admin._powershell import PowerShellBlock, exchange_steps
from mailgate.errors import InvalidInputError
from mailgate.identity.clouds import CLOUDS, Cloud
from mailgate.identity.inputs import parse_guid, parse_tenant
from mailgate.mailboxes import parse_address
from mailgate.protocols.base import Protocol

__all__ = [
    "EXCHANGE_API",
    "GRAPH_API",
    "PLAN_CLOUDS",
    "SECRET_DAYS",
    "Api",
    "Flow",
    "Permission",
    "PlanRequest",
    "PowerShellBlock",
    "SetupPlan",
    "admin_consent_url",
    "build_plan",
    "credential_steps",
    "delegated_scopes",
    "mailbox_name",
    "mailgate_commands",
    "make_request",
    "permissions_for",
    "platform_settings",
]

PLAN_CLOUDS = ("global", "usgov", "usgov-dod", "china")
SECRET_DAYS = 180


class Flow(StrEnum):
    """How the application gets its tokens."""

    CLIENT_CREDENTIALS = "client-credentials"
    CERTIFICATE = "certificate"
    ROPC = "ropc"
    AUTH_CODE = "auth-code"
    DEVICE_CODE = "device-code"

    @property
    def app_only(self) -> bool:
        return self in (Flow.CLIENT_CREDENTIALS, Flow.CERTIFICATE)

    @property
    def permission_type(self) -> str:
        return "Application" if self.app_only else "Delegated"


@dataclass(frozen=True)
class Api:
    """A resource API as the portal's "Add a permission" page names it."""

    name: str
    app_id: str


EXCHANGE_API = Api("Office 365 Exchange Online", "00000002-0000-0ff1-ce00-000000000000")
GRAPH_API = Api("Microsoft Graph", "00000003-0000-0000-c000-000000000000")


@dataclass(frozen=True)
class Permission:
    """One API permission to add and consent to."""

    api: Api
    type: str
    name: str
    why: str
    guid: str | None = None


@dataclass(frozen=True)
class PlanRequest:
    """Validated input of a plan; placeholders stand in for what the admin did not give."""

    protocol: Protocol
    flow: Flow
    mailboxes: tuple[str, ...] = ()
    tenant: str | None = None
    client_id: str | None = None
    sp_object_id: str | None = None
    cloud: str = "global"


@dataclass(frozen=True)
class SetupPlan:
    """Everything to do, in order: permissions, consent, platform, credential, PowerShell, CLI."""

    request: PlanRequest
    permissions: tuple[Permission, ...]
    admin_consent_url: str
    platform_settings: tuple[str, ...]
    credential_steps: tuple[str, ...]
    powershell: tuple[PowerShellBlock, ...]
    notes: tuple[str, ...]
    mailgate_commands: tuple[str, ...]


def _choice(field_name: str, value: str, choices: Sequence[str]) -> str:
    text = value.strip().lower()
    if text not in choices:
        raise InvalidInputError(field_name, "one of " + ", ".join(choices), value)
    return text


def make_request(
    protocol: str,
    flow: str,
    mailboxes: Sequence[str] = (),
    *,
    tenant: str | None = None,
    client_id: str | None = None,
    sp_object_id: str | None = None,
    cloud: str = "global",
) -> PlanRequest:
    """Validate raw strings (as typed on the command line) into a :class:`PlanRequest`."""
    proto = Protocol(_choice("--protocol", protocol, [p.value for p in Protocol]))
    chosen = Flow(_choice("--flow", flow, [f.value for f in Flow]))
    addresses: list[str] = []
    for item in mailboxes:
        address = parse_address(item, "--mailbox")
        if address not in addresses:
            addresses.append(address)
    return PlanRequest(
        protocol=proto,
        flow=chosen,
        mailboxes=tuple(addresses),
        tenant=parse_tenant(tenant, "--tenant") if tenant is not None else None,
        client_id=parse_guid("--client-id", client_id) if client_id is not None else None,
        sp_object_id=(
            parse_guid("--sp-object-id", sp_object_id) if sp_object_id is not None else None
        ),
        cloud=_choice("--cloud", cloud, PLAN_CLOUDS),
    )


_APP_ROLES: dict[Protocol, tuple[tuple[str, str, str | None], ...]] = {
    Protocol.IMAP: (("IMAP.AccessAsApp", "read mailboxes over IMAP as the app", None),),
    Protocol.POP3: (("POP.AccessAsApp", "read mailboxes over POP as the app", None),),
    Protocol.SMTP: (("SMTP.SendAsApp", "send over SMTP AUTH as the app", None),),
    Protocol.EWS: (
        (
            "full_access_as_app",
            "EWS with impersonation of any mailbox (restrict it below)",
            "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
        ),
    ),
    Protocol.GRAPH: (
        ("Mail.ReadWrite", "read, move and delete mail in mailboxes as the app", None),
        ("Mail.Send", "send mail as any mailbox (restrict it below)", None),
    ),
}

_DELEGATED: dict[Protocol, tuple[tuple[str, str, str | None], ...]] = {
    Protocol.IMAP: (("IMAP.AccessAsUser.All", "read the signed-in user's mail over IMAP", None),),
    Protocol.POP3: (("POP.AccessAsUser.All", "read the signed-in user's mail over POP", None),),
    Protocol.SMTP: (("SMTP.Send", "send as the signed-in user over SMTP AUTH", None),),
    Protocol.EWS: (
        (
            "EWS.AccessAsUser.All",
            "EWS as the signed-in user (and mailboxes shared with them)",
            "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5",
        ),
    ),
    Protocol.GRAPH: (
        ("Mail.ReadWrite", "read, move and delete the signed-in user's mail", None),
        ("Mail.Send", "send mail as the signed-in user", None),
    ),
}


def permissions_for(protocol: Protocol, flow: Flow) -> tuple[Permission, ...]:
    """The API permissions for ``protocol`` under ``flow``; delegated adds offline_access."""
    api = GRAPH_API if protocol is Protocol.GRAPH else EXCHANGE_API
    table = _APP_ROLES if flow.app_only else _DELEGATED
    found = [
        Permission(api, flow.permission_type, name, why, guid)
        for name, why, guid in table[protocol]
    ]
    if not flow.app_only:
        found.append(
            Permission(
                GRAPH_API,
                "Delegated",
                "offline_access",
                "a refresh token, so mailgate keeps working without new sign-ins",
            )
        )
    return tuple(found)


def admin_consent_url(cloud: Cloud, tenant: str | None, client_id: str | None) -> str:
    """The link an admin opens to consent for the whole tenant."""
    return (
        f"https://{cloud.authority_host}/{tenant or '<tenant>'}/adminconsent"
        f"?client_id={client_id or '<client-id>'}"
    )


def platform_settings(flow: Flow) -> tuple[str, ...]:
    """Authentication-page settings the flow needs; app-only needs none."""
    if flow in (Flow.ROPC, Flow.DEVICE_CODE):
        return (
            'Authentication > Advanced settings > "Allow public client flows" = Yes '
            "(without it the token request fails with AADSTS7000218).",
        )
    if flow is Flow.AUTH_CODE:
        return (
            "Authentication > Add a platform > Mobile and desktop applications > "
            "redirect URI http://localhost (mailgate listens on a free local port).",
        )
    return ()


def credential_steps(flow: Flow) -> tuple[str, ...]:
    """How to create the secret or certificate (delegated public clients need none)."""
    if flow is Flow.CLIENT_CREDENTIALS:
        return (
            f"Certificates & secrets > New client secret; expiry {SECRET_DAYS} days "
            "(the suggested default; mailgate warns 14 days before it expires).",
            "Copy the secret's Value right away, not its Secret ID: the Value is shown once, "
            "and sending the ID fails with AADSTS7000215.",
        )
    if flow is Flow.CERTIFICATE:
        return (
            "Create a key and certificate, e.g. `openssl req -x509 -newkey rsa:2048 -nodes "
            '-days 365 -subj "/CN=mailgate" -keyout key.pem -out cert.pem` '
            "then `cat key.pem cert.pem > mailgate.pem`.",
            "Certificates & secrets > Certificates > Upload certificate: cert.pem (public part "
            "only); note the thumbprint the portal shows.",
            "Store the key with `mailgate creds add --kind certificate --cert mailgate.pem`; "
            "`mailgate creds show` prints the same thumbprint.",
        )
    return ("None: a public client signs in users and holds no secret or certificate.",)


def delegated_scopes(plan_perms: Sequence[Permission], cloud: Cloud) -> str:
    items = []
    for perm in plan_perms:
        if perm.name == "offline_access":
            items.append("offline_access")
        elif perm.api is GRAPH_API:
            items.append(f"{cloud.graph_resource}/{perm.name}")
        else:
            items.append(f"{cloud.exchange_resource}/{perm.name}")
    return " ".join(items)


def mailbox_name(address: str) -> str:
    local = address.split("@", 1)[0]
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in local) or "mailbox"


def mailgate_commands(request: PlanRequest, perms: Sequence[Permission]) -> tuple[str, ...]:
    """The mailgate commands that store the credential, the mailboxes, and test them."""
    cloud = CLOUDS[request.cloud]
    flow = request.flow
    credential = f"{request.protocol.value}-{'app' if flow.app_only else 'user'}"
    parts = [
        f"mailgate creds add {credential}",
        f"--client-id {request.client_id or '<client-id>'}",
        f"--tenant {request.tenant or '<tenant>'}",
    ]
    if flow is Flow.CLIENT_CREDENTIALS:
        parts[1:1] = ["--kind client-secret"]
        parts += ["--secret-stdin", f"--secret-expires {SECRET_DAYS}d"]
    elif flow is Flow.CERTIFICATE:
        parts[1:1] = ["--kind certificate"]
        parts += ["--cert mailgate.pem"]
    elif flow is Flow.ROPC:
        parts[1:1] = ["--kind password"]
        parts += ["--username <user@domain>", "--secret-stdin"]
    else:
        parts[1:1] = ["--kind delegated", f"--flow {flow.value}"]
        if flow is Flow.AUTH_CODE:
            parts += ["--redirect-uri http://localhost"]
    if request.protocol is Protocol.GRAPH and flow.app_only:
        parts += [f"--scope {cloud.graph_resource}/.default"]
    elif not flow.app_only:
        parts += [f'--scope "{delegated_scopes(perms, cloud)}"']
    if request.cloud != "global":
        parts += [f"--cloud {request.cloud}"]
    commands = [" ".join(parts)]
    if flow in (Flow.AUTH_CODE, Flow.DEVICE_CODE):
        commands.append(f"mailgate creds login {credential}")
    addresses = request.mailboxes or ("<mailbox>",)
    for address in addresses:
        name = mailbox_name(address) if request.mailboxes else "<name>"
        commands.append(
            f"mailgate mailbox add {name} --credential {credential} "
            f"--protocol {request.protocol.value} --address {address}"
        )
        test = f"mailgate test {name}"
        if request.protocol in (Protocol.SMTP, Protocol.GRAPH, Protocol.EWS):
            test += " --send-test-mail <your address>"
        commands.append(test)
    return tuple(commands)


def _notes(request: PlanRequest) -> tuple[str, ...]:
    notes: list[str] = []
    if request.protocol is Protocol.EWS:
        notes.append(
            "EWS is being retired: since 1 Oct 2026 Exchange Online turns it off by default "
            "(only tenants that kept EWSEnabled=True with an EWSAllowedAppIDs allow-list that "
            "names this app can use it), and it ends for good on 1 Apr 2027. Prefer "
            "--protocol graph for anything new."
        )
    if request.flow is Flow.ROPC:
        notes.append(
            "ROPC sends the user's password and fails when MFA or Conditional Access asks for "
            "more (AADSTS50076); use device-code or auth-code where MFA applies."
        )
    if not request.flow.app_only and request.protocol is Protocol.GRAPH:
        notes.append(
            "To reach a shared mailbox through Graph as a user, add the delegated "
            "Mail.ReadWrite.Shared and Mail.Send.Shared permissions too."
        )
    restrictable = request.protocol in (Protocol.EWS, Protocol.GRAPH)
    if request.flow.app_only and restrictable and not request.mailboxes:
        notes.append(
            "Without --mailbox the app can reach every mailbox in the tenant; pass "
            "--mailbox to get the commands that restrict it."
        )
    return tuple(notes)


_PLACEHOLDERS = {
    "<tenant>": "--tenant",
    "<client-id>": "--client-id",
    "<enterprise-app-object-id>": "--sp-object-id",
    "'<mailbox>'": "--mailbox",
}


def _placeholder_note(texts: Sequence[str]) -> tuple[str, ...]:
    joined = "\n".join(texts)
    missing = [option for mark, option in _PLACEHOLDERS.items() if mark in joined]
    if not missing:
        return ()
    return (
        "Placeholders in <angle brackets>: pass " + ", ".join(missing) + " to have them filled in.",
    )


def build_plan(request: PlanRequest) -> SetupPlan:
    """The whole setup for one protocol and flow, filled in with the ids the request knows."""
    cloud = CLOUDS[request.cloud]
    perms = permissions_for(request.protocol, request.flow)
    consent = admin_consent_url(cloud, request.tenant, request.client_id)
    powershell = exchange_steps(
        request.protocol,
        app_only=request.flow.app_only,
        mailboxes=request.mailboxes,
        client_id=request.client_id,
        sp_object_id=request.sp_object_id,
    )
    commands = mailgate_commands(request, perms)
    shown = [consent, *commands, *(line for block in powershell for line in block.lines)]
    return SetupPlan(
        request=request,
        permissions=perms,
        admin_consent_url=consent,
        platform_settings=platform_settings(request.flow),
        credential_steps=credential_steps(request.flow),
        powershell=powershell,
        notes=_notes(request) + _placeholder_note(shown),
        mailgate_commands=commands,
    )
