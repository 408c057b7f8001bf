"""The sandbox's directory: tenants, app registrations and users, read from a TOML file.

Format (all GUIDs lower-case; permissions are ``<resource>:<name>`` with resource ``exchange``
or ``graph``; certificate paths are relative to the TOML file)::

    [settings]
    access_token_lifetime = 3599        # seconds
    device_code_lifetime = 900
    device_code_interval = 1            # small so tests are fast
    authorization_code_lifetime = 600
    [[tenants]]
    id = "<guid>"
    name = "Contoso (sandbox)"
    domains = ["contoso.onmicrosoft.com"]
    [[tenants.apps]]
    name = "mailgate-daemon"
    client_id = "<guid>"
    object_id = "<guid>"                # app registration object id
    service_principal_id = "<guid>"     # enterprise application object id; omitted = none yet
    public_client_flows = false
    redirect_uris = ["http://localhost"]
    web_redirect_uris = []              # the "Web" platform's (authorize accepts both lists)
    application_permissions = ["exchange:IMAP.AccessAsApp", "graph:Mail.Send"]
    delegated_permissions = ["exchange:IMAP.AccessAsUser.All", "graph:User.Read"]
    admin_consent = true                # tenant-wide consent to all the above
    consented_users = []                # UPNs that consented to the delegated ones themselves
    app_role_assignments = []           # granted one by one through Graph (appRoleAssignments)
    delegated_grants = []               # idem (oauth2PermissionGrants, AllPrincipals)
    required_resource_access = []       # what the app asks for, as Graph's JSON (not a grant)
    [[tenants.apps.secrets]]
    key_id = "<guid>"
    value = "..."
    expires = 2027-05-22T00:00:00Z
    [[tenants.apps.certificates]]
    cert_file = "certs/daemon.pem"      # public certificate; thumbprints are computed
    key_file = "certs/daemon-key.pem"   # optional, only echoed into sandbox.json
    pfx_file = "certs/daemon.pfx"       # optional, idem
    pfx_password = "..."                # optional, idem
    [[tenants.users]]
    upn = "alice@contoso.onmicrosoft.com"
    password = "..."
    display_name = "Alice Demo"
    object_id = "<guid>"
    mfa_required = false                # AADSTS50076 in non-interactive flows
    mfa_registration_required = false   # 50079
    external_challenge = false          # 50158
    blocked_by_conditional_access = false  # 53003
    locked = false                      # 50053
    disabled = false                    # 50057
    password_expired = false            # 50055
    directory_roles = []                # e.g. ["Global Administrator"]: may use Graph's
                                        # application/servicePrincipal/consent endpoints
    [tenants]                           # (in each tenant)
    users_can_register_apps = true      # members may create apps through Graph and own them
    [tenants.exchange]                  # Exchange Online settings, see mailconfig.py
    [[tenants.mailboxes]]               # mailboxes and their seeded messages, idem

:func:`write_demo_tenant` writes the built-in demo tenant with random secrets on first start.
"""

from __future__ import annotations

import os
import secrets
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mailgate.sandbox.directory.exchange_settings import ExchangeSettings, MailboxConfig, demo_mail
from mailgate.sandbox.directory.resources import RESOURCES

__all__ = [
    "ADMIN_ROLES",
    "ADMIN_TOOL_CLIENT_ID",
    "ADMIN_TOOL_PERMISSIONS",
    "USER_STATES",
    "App",
    "AppCertificate",
    "AppSecret",
    "Settings",
    "Tenant",
    "TenantFile",
    "User",
    "load_tenant_file",
    "write_demo_tenant",
]


def _guid(value: str) -> str:
    return str(uuid.UUID(value))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Settings(_Model):
    """Lifetimes, in seconds, of what the sandbox issues."""

    access_token_lifetime: Annotated[int, Field(gt=0)] = 3599
    device_code_lifetime: Annotated[int, Field(gt=0)] = 900
    device_code_interval: Annotated[int, Field(ge=0)] = 1
    authorization_code_lifetime: Annotated[int, Field(gt=0)] = 600


class AppSecret(_Model):
    """A client secret: the ID the portal shows and the value only shown once."""

    key_id: str
    value: str
    expires: datetime
    display_name: str = ""
    start: datetime | None = None

    _check_id = field_validator("key_id")(_guid)

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def expired(self, now: datetime) -> bool:
        """True once the secret's end date has passed."""
        return self.expires <= now


class AppCertificate(_Model):
    """A certificate credential; only ``cert_file`` matters to the server."""

    cert_file: str
    key_file: str | None = None
    pfx_file: str | None = None
    pfx_password: str | None = None
    key_id: str | None = None  # set for certificates uploaded through Graph
    display_name: str = ""


def _check_permissions(values: list[str]) -> list[str]:
    for value in values:
        resource, sep, name = value.partition(":")
        if not sep or resource not in RESOURCES or not name:
            raise ValueError(f"permission {value!r} must look like 'exchange:Name' or 'graph:Name'")
    return values


class App(_Model):
    """An app registration plus its service principal in the same tenant.

    Apps from the TOML use the shorthand ``admin_consent`` over their permission lists; apps
    created through the sandbox's Graph endpoints start with nothing and collect grants one
    by one in ``app_role_assignments`` and ``delegated_grants``, as in Entra. Both count.
    """

    name: str
    client_id: str
    object_id: str
    service_principal_id: str | None = None
    public_client_flows: bool = False
    redirect_uris: list[str] = []
    web_redirect_uris: list[str] = []
    application_permissions: list[str] = []
    delegated_permissions: list[str] = []
    admin_consent: bool = False
    consented_users: list[str] = []
    app_role_assignments: list[str] = []
    delegated_grants: list[str] = []
    required_resource_access: list[dict[str, Any]] = []
    owners: list[str] = []  # UPNs; the user who created the app through Graph owns it
    created: datetime | None = None
    secrets: list[AppSecret] = []
    certificates: list[AppCertificate] = []

    _check_ids = field_validator("client_id", "object_id")(_guid)
    _check_perms = field_validator(
        "application_permissions",
        "delegated_permissions",
        "app_role_assignments",
        "delegated_grants",
    )(_check_permissions)

    @field_validator("service_principal_id")
    @classmethod
    def _check_sp(cls, value: str | None) -> str | None:
        return _guid(value) if value is not None else None

    @property
    def all_redirect_uris(self) -> list[str]:
        """Redirect URIs of every platform (mobile/desktop and web)."""
        return [*self.redirect_uris, *self.web_redirect_uris]

    @property
    def has_credentials(self) -> bool:
        """True for a confidential client: it owns a secret or a certificate."""
        return bool(self.secrets or self.certificates)


# Roles that may create app registrations and grant consent in the sandbox. Simplified: in Entra
# granting application permissions of Microsoft Graph needs Global or Privileged Role
# Administrator, while (Cloud) Application Administrators manage everything else.
ADMIN_ROLES = frozenset(
    {
        "global administrator",
        "privileged role administrator",
        "application administrator",
        "cloud application administrator",
    }
)

USER_STATES = (
    "locked",
    "disabled",
    "password_expired",
    "blocked_by_conditional_access",
    "mfa_registration_required",
    "mfa_required",
    "external_challenge",
)


class User(_Model):
    """A member user; the boolean flags put the account in a failing state."""

    upn: str
    password: str
    display_name: str
    object_id: str
    mfa_required: bool = False
    mfa_registration_required: bool = False
    external_challenge: bool = False
    blocked_by_conditional_access: bool = False
    locked: bool = False
    disabled: bool = False
    password_expired: bool = False
    directory_roles: list[str] = []

    _check_id = field_validator("object_id")(_guid)

    @property
    def is_directory_admin(self) -> bool:
        """True if one of the user's roles may manage app registrations and consent."""
        return bool(ADMIN_ROLES & {r.lower() for r in self.directory_roles})

    @property
    def state(self) -> str:
        """``ok`` or the name of the first flag set, in the order sign-in checks them."""
        return next((s for s in USER_STATES if getattr(self, s)), "ok")


class Tenant(_Model):
    """A directory with its verified domains."""

    id: str
    name: str
    domains: list[str]
    apps: list[App] = []
    users: list[User] = []
    exchange: ExchangeSettings = ExchangeSettings()
    mailboxes: list[MailboxConfig] = []
    # Entra's default "Users can register applications = Yes": members may create apps (and
    # manage the ones they own) without an admin role; consent still needs an admin.
    users_can_register_apps: bool = True

    _check_id = field_validator("id")(_guid)

    @model_validator(mode="after")
    def _unique(self) -> Tenant:
        for what, keys in (
            ("client_id", [a.client_id for a in self.apps]),
            ("upn", [u.upn.lower() for u in self.users]),
            ("mailbox", [m.address.lower() for m in self.mailboxes]),
        ):
            if len(set(keys)) != len(keys):
                raise ValueError(f"tenant {self.name!r}: duplicate {what}")
        return self

    def app(self, client_id: str) -> App | None:
        """The app registered under ``client_id`` (case-insensitive), if any."""
        wanted = client_id.strip().lower()
        return next((a for a in self.apps if a.client_id == wanted), None)

    def user(self, upn: str) -> User | None:
        """The user whose UPN is ``upn`` (case-insensitive), if any."""
        wanted = upn.strip().lower()
        return next((u for u in self.users if u.upn.lower() == wanted), None)

    def mailbox(self, address: str) -> MailboxConfig | None:
        """The mailbox with this address (case-insensitive), if any."""
        wanted = address.strip().lower()
        return next((m for m in self.mailboxes if m.address.lower() == wanted), None)


class TenantFile(_Model):
    """The whole TOML file; ``base_dir`` resolves relative certificate paths."""

    settings: Settings = Settings()
    tenants: list[Tenant]
    base_dir: Path = Path()

    def path(self, relative: str) -> Path:
        """Resolve a path written in the file relative to the file's directory."""
        return self.base_dir / relative


def load_tenant_file(path: Path) -> TenantFile:
    """Read and validate a tenant TOML file; raises ValueError with the reason."""
    with path.open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    data["base_dir"] = path.parent
    return TenantFile.model_validate(data)


_EXCHANGE_APP = [
    "exchange:full_access_as_app",
    "exchange:IMAP.AccessAsApp",
    "exchange:POP.AccessAsApp",
    "exchange:SMTP.SendAsApp",
    "graph:Mail.ReadWrite",
    "graph:Mail.Send",
]
_DELEGATED = [
    "exchange:IMAP.AccessAsUser.All",
    "exchange:POP.AccessAsUser.All",
    "exchange:SMTP.Send",
    "exchange:EWS.AccessAsUser.All",
    "graph:Mail.ReadWrite",
    "graph:Mail.Send",
    "graph:User.Read",
]
# The first-party public client "Microsoft Graph Command Line Tools" (what Connect-MgGraph
# signs in with): `mailgate setup apply` uses it for the admin's device-code sign-in. Its
# well-known client id is not on the fact sheet [U]; the sandbox uses the same value so the
# command's default works unchanged against it.
ADMIN_TOOL_CLIENT_ID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
ADMIN_TOOL_PERMISSIONS = [
    "graph:Application.ReadWrite.All",
    "graph:AppRoleAssignment.ReadWrite.All",
    "graph:DelegatedPermissionGrant.ReadWrite.All",
    "graph:User.Read",
]
_DEMO_USERS: dict[str, dict[str, Any]] = {
    "admin": {"directory_roles": ["Global Administrator"]},
    "alice": {},
    "bob": {"mfa_required": True},
    "carol": {"locked": True},
    "dave": {"disabled": True},
    "erin": {"password_expired": True},
    "frank": {"mfa_registration_required": True},
    "grace": {"blocked_by_conditional_access": True},
    "heidi": {"external_challenge": True},
}


def _ids() -> dict[str, str]:
    return {
        "client_id": str(uuid.uuid4()),
        "object_id": str(uuid.uuid4()),
        "service_principal_id": str(uuid.uuid4()),
    }


def _user(name: str, domain: str, **flags: Any) -> dict[str, Any]:
    return {
        "upn": f"{name}@{domain}",
        "password": secrets.token_urlsafe(12),
        "display_name": f"{name.capitalize()} Demo",
        "object_id": str(uuid.uuid4()),
        **flags,
    }


def _public_app(name: str, consent: bool) -> dict[str, Any]:
    return {
        "name": name,
        **_ids(),
        "public_client_flows": True,
        "redirect_uris": ["http://localhost"],
        "delegated_permissions": _DELEGATED,
        "admin_consent": consent,
    }


def _admin_tool() -> dict[str, Any]:
    # Tenant-wide consent was given once (as Connect-MgGraph asks for): every user gets a token
    # with these scopes, and Graph checks the user's directory role per request.
    return {
        "name": "Microsoft Graph Command Line Tools",
        **_ids(),
        "client_id": ADMIN_TOOL_CLIENT_ID,
        "public_client_flows": True,
        "redirect_uris": ["http://localhost"],
        "delegated_permissions": ADMIN_TOOL_PERMISSIONS,
        "admin_consent": True,
    }


def _demo_data(state_dir: Path) -> dict[str, Any]:
    # Imported here so that reading a tenant file never needs the PKI code.
    from mailgate.sandbox.pki import create_client_certificate

    now = datetime.now(UTC).replace(microsecond=0)
    cert = create_client_certificate(
        state_dir / "certs", "daemon", "mailgate-daemon", secrets.token_urlsafe(12)
    )
    daemon = {
        "name": "mailgate-daemon",
        **_ids(),
        "public_client_flows": False,
        "redirect_uris": ["http://localhost"],
        "application_permissions": _EXCHANGE_APP,
        "delegated_permissions": _DELEGATED,
        "admin_consent": True,
        "secrets": [
            {
                "key_id": str(uuid.uuid4()),
                "value": secrets.token_urlsafe(30),
                "expires": now + timedelta(days=180),
            },
            {
                "key_id": str(uuid.uuid4()),
                "value": secrets.token_urlsafe(30),
                "expires": now - timedelta(days=30),
            },
        ],
        "certificates": [
            {
                "cert_file": cert.cert_file.relative_to(state_dir).as_posix(),
                "key_file": cert.key_file.relative_to(state_dir).as_posix(),
                "pfx_file": cert.pfx_file.relative_to(state_dir).as_posix(),
                "pfx_password": cert.pfx_password,
            }
        ],
    }
    contoso = "contoso.onmicrosoft.com"
    fabrikam = "fabrikam.onmicrosoft.com"
    fabrikam_daemon = {
        "name": "fabrikam-daemon",
        **_ids(),
        "application_permissions": _EXCHANGE_APP,
        "admin_consent": True,
        "secrets": [
            {
                "key_id": str(uuid.uuid4()),
                "value": secrets.token_urlsafe(30),
                "expires": now + timedelta(days=180),
            }
        ],
    }
    # Two apps that hold the Exchange roles but fail in Exchange: one never registered with
    # New-ServicePrincipal, one registered with the app registration's object id (the trap).
    nosp, wrongsp = (
        {
            "name": name,
            **_ids(),
            "application_permissions": _EXCHANGE_APP,
            "admin_consent": True,
            "secrets": [
                {
                    "key_id": str(uuid.uuid4()),
                    "value": secrets.token_urlsafe(30),
                    "expires": now + timedelta(days=180),
                }
            ],
        }
        for name in ("mailgate-nosp", "mailgate-wrongsp")
    )
    # Holds only IMAP.AccessAsApp: the connection test's "token lacks the role" case.
    imaponly = {
        "name": "mailgate-imaponly",
        **_ids(),
        "application_permissions": ["exchange:IMAP.AccessAsApp"],
        "admin_consent": True,
        "secrets": [
            {
                "key_id": str(uuid.uuid4()),
                "value": secrets.token_urlsafe(30),
                "expires": now + timedelta(days=180),
            }
        ],
    }
    exchange = {
        **ExchangeSettings().model_dump(
            exclude={"service_principals", "application_access_policies"}
        ),
        "service_principals": [
            {"app_id": daemon["client_id"], "object_id": daemon["service_principal_id"]},
            {"app_id": wrongsp["client_id"], "object_id": wrongsp["object_id"]},
        ],
        "application_access_policies": [
            {
                "app_id": daemon["client_id"],
                "access_right": "RestrictAccess",
                "mailboxes": [f"{n}@{contoso}" for n in ("approvals", "servicedesk", "noreply")],
            }
        ],
    }
    return {
        "settings": Settings().model_dump(),
        "tenants": [
            {
                "id": str(uuid.uuid4()),
                "name": "Contoso (sandbox)",
                "domains": [contoso],
                "apps": [
                    daemon,
                    _public_app("mailgate-public", True),
                    _public_app("mailgate-noconsent", False),
                    nosp,
                    wrongsp,
                    imaponly,
                    _admin_tool(),
                ],
                "users": [_user(n, contoso, **f) for n, f in _DEMO_USERS.items()],
                "exchange": exchange,
                "mailboxes": demo_mail(contoso, str(daemon["service_principal_id"])),
            },
            {
                "id": str(uuid.uuid4()),
                "name": "Fabrikam (sandbox)",
                "domains": [fabrikam],
                "apps": [fabrikam_daemon, _public_app("fabrikam-public", True), _admin_tool()],
                "users": [_user("ivan", fabrikam)],
                "mailboxes": [
                    {
                        "address": f"ivan@{fabrikam}",
                        "display_name": "Ivan Demo",
                        "owner": f"ivan@{fabrikam}",
                        "messages": [{"from": "hello@fabrikam.example", "subject": "Hello"}],
                    }
                ],
            },
        ],
    }


def write_demo_tenant(state_dir: Path) -> Path:
    """Create ``state_dir/tenant.toml`` with fresh random secrets, or reuse the existing one."""
    path = state_dir / "tenant.toml"
    if path.exists():
        return path
    state_dir.mkdir(parents=True, exist_ok=True)
    text = tomli_w.dumps(_demo_data(state_dir))
    # The file holds passwords and secrets: never let it be readable by other users.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path
