"""Parsing of the fields users copy from the seeds' setup pages, into one normal form.

Pure functions, no I/O. Users arrive with a directory (tenant) ID or domain, an application
(client) ID, an "access token URI" (``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``),
an "authorize endpoint", and a "scope" string that may carry WorkflowGen's trailing
``&grant_type=client_credentials`` or ESM's comma-separated delegated scopes. Each parser either
returns the normal form (plus warnings for what it corrected) or raises
:class:`~mailgate.errors.InvalidInputError` naming the field and the expected form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mailgate.errors import InvalidInputError
from mailgate.identity.clouds import cloud_for_authority_host

__all__ = [
    "EXCHANGE_DELEGATED",
    "RESERVED_SCOPES",
    "AuthorityEndpoint",
    "ScopeSet",
    "parse_authority_endpoint",
    "parse_guid",
    "parse_redirect_uri",
    "parse_scopes",
    "parse_tenant",
]

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(
    r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)
_GUID_FORM = "a GUID like 0a1b2c3d-0000-4000-8000-00000000abcd"
_TENANT_FORM = (
    "the directory (tenant) ID as a GUID, or a verified domain such as contoso.onmicrosoft.com"
)
RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})

# Permission names that belong to Exchange Online. Asked for without a resource prefix, Entra
# resolves them against Microsoft Graph and the token's audience is then Graph, which IMAP, POP
# and SMTP refuse: a trap users fall into, so such names are prefixed with the Exchange resource.
EXCHANGE_DELEGATED = frozenset(
    {"imap.accessasuser.all", "pop.accessasuser.all", "smtp.send", "ews.accessasuser.all"}
)


def parse_guid(field_name: str, value: str) -> str:
    """A GUID in lower case, or an error naming ``field_name``."""
    text = value.strip().strip("{}")
    if not _GUID.match(text):
        raise InvalidInputError(field_name, _GUID_FORM, value)
    return text.lower()


def parse_tenant(value: str, field_name: str = "tenant") -> str:
    """A tenant GUID (lower case), a domain (lower case), or ``organizations``/``common``."""
    text = value.strip()
    if _GUID.match(text.strip("{}")):
        return text.strip("{}").lower()
    lowered = text.lower()
    if lowered in ("organizations", "common", "consumers"):
        return lowered
    if "{" in text or "}" in text or "<" in text:
        raise InvalidInputError(
            field_name, _TENANT_FORM + " (replace the placeholder with your value)", value
        )
    if _DOMAIN.match(lowered):
        return lowered
    raise InvalidInputError(field_name, _TENANT_FORM, value)


@dataclass(frozen=True)
class AuthorityEndpoint:
    """What a token URI or authorize endpoint says: cloud, login host, tenant."""

    cloud: str
    authority_host: str
    tenant: str
    warnings: tuple[str, ...] = ()


def parse_authority_endpoint(value: str, kind: str = "token") -> AuthorityEndpoint:
    """Parse an access token URI (``kind='token'``) or authorize endpoint (``'authorize'``)."""
    field_name = "access token URI" if kind == "token" else "authorize endpoint"
    form = f"https://login.microsoftonline.com/<tenant>/oauth2/v2.0/{kind}"
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.netloc:
        raise InvalidInputError(field_name, form, value)
    segments = [s for s in parts.path.split("/") if s]
    warnings: list[str] = []
    if len(segments) == 3 and segments[1:] == ["oauth2", kind]:
        warnings.append(
            f"the {field_name} is the v1.0 endpoint; mailgate uses v2.0 for the same tenant."
        )
    elif len(segments) != 4 or segments[1:] != ["oauth2", "v2.0", kind]:
        raise InvalidInputError(field_name, form, value)
    if parts.query:
        warnings.append(f"ignored the query string of the {field_name}.")
    tenant = parse_tenant(segments[0], f"tenant in the {field_name}")
    cloud = cloud_for_authority_host(parts.netloc)
    return AuthorityEndpoint(cloud, parts.netloc.lower(), tenant, tuple(warnings))


@dataclass(frozen=True)
class ScopeSet:
    """Normalised scopes. ``scopes`` excludes the OIDC scopes MSAL adds by itself."""

    scopes: tuple[str, ...]
    app_only: bool
    warnings: tuple[str, ...] = field(default=())

    @property
    def resource(self) -> str:
        """The resource URI the scopes are for (``https://outlook.office365.com``)."""
        first = self.scopes[0]
        return first.rsplit("/", 1)[0]

    def as_text(self) -> str:
        return " ".join(self.scopes)


def _split_scope_text(text: str, warnings: list[str]) -> list[str]:
    if "&" in text:
        head, _, tail = text.partition("&")
        warnings.append(
            f"removed '&{tail}' from the scope: it is a form parameter, not part of the scope "
            "(mailgate sends grant_type itself)."
        )
        text = head
    return [s for s in re.split(r"[\s,;]+", text.strip()) if s]


def _check_scope(item: str, value: str) -> None:
    if item.startswith(("https://", "api://")):
        parts = urlsplit(item)
        if not parts.netloc or " " in item:
            raise InvalidInputError(
                "scope",
                "resource URI + permission, e.g. https://outlook.office365.com/.default",
                value,
            )
        return
    if "://" in item or not re.match(r"^[A-Za-z][A-Za-z0-9._-]*$", item):
        raise InvalidInputError(
            "scope",
            "space- or comma-separated scopes such as "
            "https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
            value,
        )


def parse_scopes(value: str, *, app_only: bool, default_resource: str) -> ScopeSet:
    """Normalise a scope string.

    App-only flows need exactly one ``<resource>/.default``; a bare resource URI gets
    ``/.default`` appended. Delegated flows take permission scopes; bare Exchange permission names
    are prefixed with ``default_resource`` (see :data:`EXCHANGE_DELEGATED`).
    """
    warnings: list[str] = []
    items = _split_scope_text(value, warnings)
    if not items:
        raise InvalidInputError("scope", "at least one scope", value)
    for item in items:
        _check_scope(item, value)
    if app_only:
        resource_items = [i for i in items if i.lower() not in RESERVED_SCOPES]
        if len(resource_items) != 1:
            raise InvalidInputError(
                "scope",
                "exactly one <resource>/.default for an app-only credential, "
                "e.g. https://outlook.office365.com/.default",
                value,
            )
        scope = resource_items[0]
        if not scope.endswith("/.default"):
            if scope.startswith("https://") and urlsplit(scope).path.strip("/") == "":
                scope = scope.rstrip("/") + "/.default"
                warnings.append(f"app-only scopes end in /.default: using {scope}.")
            else:
                raise InvalidInputError(
                    "scope",
                    "<resource>/.default for an app-only credential (application permissions are "
                    "granted in the portal, not asked for by name), e.g. "
                    "https://outlook.office365.com/.default",
                    value,
                )
        return ScopeSet((scope,), True, tuple(warnings))
    scopes: list[str] = []
    for item in items:
        if item.lower() in RESERVED_SCOPES:
            continue
        if item.startswith(("https://", "api://")) and not urlsplit(item).path.strip("/"):
            raise InvalidInputError(
                "scope",
                "resource URI + permission, e.g. https://outlook.office.com/IMAP.AccessAsUser.All",
                value,
            )
        if not item.startswith(("https://", "api://")):
            if item.lower() in EXCHANGE_DELEGATED:
                prefixed = f"{default_resource}/{item}"
                warnings.append(
                    f"'{item}' has no resource; using {prefixed} (without it the token would be "
                    "for Microsoft Graph and Exchange would refuse it)."
                )
                item = prefixed
            else:
                item = f"https://graph.microsoft.com/{item}"
        if item.endswith("/.default") and len(items) > 1:
            others = [i for i in items if i != item and i.lower() not in RESERVED_SCOPES]
            if others:
                raise InvalidInputError(
                    "scope",
                    "either <resource>/.default alone or named permissions, not both",
                    value,
                )
        scopes.append(item)
    if not scopes:
        raise InvalidInputError(
            "scope",
            "at least one resource scope besides openid/profile/offline_access, e.g. "
            "https://outlook.office.com/IMAP.AccessAsUser.All",
            value,
        )
    resources = {s.rsplit("/", 1)[0].lower() for s in scopes}
    if len(resources) > 1:
        raise InvalidInputError(
            "scope",
            "scopes of one resource per token (got " + ", ".join(sorted(resources)) + ")",
            value,
        )
    return ScopeSet(tuple(dict.fromkeys(scopes)), False, tuple(warnings))


def parse_redirect_uri(value: str) -> str:
    """A redirect URI for the authorization-code flow: http://localhost[:port][/path] or https."""
    parts = urlsplit(value.strip())
    local = parts.scheme == "http" and parts.hostname in ("localhost", "127.0.0.1")
    try:
        port_ok = parts.port is None or 1 <= parts.port <= 65535
    except ValueError:  # urlsplit raises it for a port outside 0-65535 or not a number
        port_ok = False
    if not port_ok or not (local or (parts.scheme == "https" and parts.netloc)):
        raise InvalidInputError(
            "redirect URI",
            "http://localhost[:port] or an https:// URL registered on the app",
            value,
        )
    return value.strip()
