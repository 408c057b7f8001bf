"""Building a credential profile from what the user typed, in any of the seeds' forms.

The tenant may come as a GUID or domain, inside an access token URI or an authorize endpoint;
the cloud follows from the URI's host unless given; scopes are normalised for the kind. Every
correction is returned as a warning, every impossible input raises ``InvalidInputError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailgate.errors import ConfigurationError, InvalidInputError
from mailgate.identity.clouds import CLOUDS, normalize_cloud_name
from mailgate.identity.inputs import (
    parse_authority_endpoint,
    parse_guid,
    parse_redirect_uri,
    parse_scopes,
    parse_tenant,
)
from mailgate.vault import CertificateInfo, CredentialKind, CredentialProfile, DelegatedFlow

__all__ = ["CredentialRequest", "build_profile", "parse_expiry"]

_DAYS = re.compile(r"(\d{1,4})\s*d(ays?)?", re.I)


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """``2027-05-22``, an ISO timestamp, or ``180d`` (days from now), as an aware UTC datetime."""
    value = text.strip()
    match = _DAYS.fullmatch(value)
    if match:
        return (now or datetime.now(UTC)) + timedelta(days=int(match.group(1)))
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInputError(
            "secret expiry", "a date YYYY-MM-DD or a number of days such as 180d", text
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class CredentialRequest:
    """What a user gives to add a credential (all strings as typed)."""

    name: str
    kind: CredentialKind
    client_id: str
    tenant: str | None = None
    token_uri: str | None = None
    authorize_endpoint: str | None = None
    cloud: str | None = None
    scope: str | None = None
    username: str | None = None
    flow: DelegatedFlow | None = None
    redirect_uri: str | None = None
    secret_expires: str | None = None
    display_name: str = ""


def _resolve_tenant(request: CredentialRequest) -> tuple[str, str | None, list[str]]:
    """(tenant, cloud from a URI or None, warnings)."""
    found: list[tuple[str, str | None]] = []
    warnings: list[str] = []
    if request.tenant:
        found.append((parse_tenant(request.tenant), None))
    for value, kind in ((request.token_uri, "token"), (request.authorize_endpoint, "authorize")):
        if value:
            endpoint = parse_authority_endpoint(value, kind)
            warnings.extend(endpoint.warnings)
            found.append((endpoint.tenant, endpoint.cloud))
    if not found:
        raise InvalidInputError(
            "tenant", "--tenant <directory ID or domain> or --token-uri <access token URI>"
        )
    tenants = {t for t, _ in found}
    if len(tenants) > 1:
        raise ConfigurationError(
            "the tenant differs between the given fields: " + ", ".join(sorted(tenants)) + ".",
            "give one tenant (the token URI and authorize endpoint must name the same one).",
        )
    clouds = {c for _, c in found if c}
    if len(clouds) > 1:
        raise ConfigurationError(
            "the token URI and the authorize endpoint are in different clouds.",
            "use endpoints of one cloud.",
        )
    return found[0][0], (clouds.pop() if clouds else None), warnings


def build_profile(
    request: CredentialRequest, certificate: CertificateInfo | None = None
) -> tuple[CredentialProfile, list[str]]:
    """Validate and normalise ``request``; returns the profile and warnings for the user."""
    # fullmatch, not match with "$": "$" also matches before a trailing newline.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", request.name):
        raise InvalidInputError(
            "name",
            "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            request.name,
        )
    client_id = parse_guid("client ID", request.client_id)
    tenant, uri_cloud, warnings = _resolve_tenant(request)
    cloud = normalize_cloud_name(request.cloud) if request.cloud else (uri_cloud or "global")
    if (
        uri_cloud
        and request.cloud
        and uri_cloud != cloud
        and not (uri_cloud == "usgov" and cloud == "usgov-dod")
    ):
        raise ConfigurationError(
            f"--cloud {cloud} does not match the token URI's cloud ({uri_cloud}).",
            "leave out --cloud or fix the token URI.",
        )
    kind = request.kind
    if kind.app_only and tenant in ("common", "organizations", "consumers"):
        raise InvalidInputError(
            "tenant", "a specific tenant (GUID or domain) for an app-only credential", tenant
        )
    if kind is CredentialKind.PASSWORD and tenant in ("common", "consumers"):
        raise InvalidInputError(
            "tenant", "a specific tenant or 'organizations' for a password credential", tenant
        )
    if kind is CredentialKind.PASSWORD and not request.username:
        raise InvalidInputError("username", "the user's sign-in name (UPN)")
    if request.username and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", request.username):
        raise InvalidInputError("username", "a UPN such as alice@contoso.com", request.username)
    exchange = CLOUDS.get(cloud, CLOUDS["global"]).exchange_resource
    default_scope = (
        f"{exchange}/.default"
        if kind.app_only
        else f"{exchange}/IMAP.AccessAsUser.All {exchange}/SMTP.Send offline_access"
    )
    scopes = parse_scopes(
        request.scope or default_scope, app_only=kind.app_only, default_resource=exchange
    )
    warnings.extend(scopes.warnings)
    flow = request.flow
    if kind is CredentialKind.DELEGATED and flow is None:
        flow = DelegatedFlow.DEVICE_CODE
    if kind is not CredentialKind.DELEGATED and flow is not None:
        raise InvalidInputError("flow", "no --flow unless --kind delegated")
    redirect_uri = None
    if flow is DelegatedFlow.AUTH_CODE:
        redirect_uri = parse_redirect_uri(request.redirect_uri or "http://localhost")
    if kind is CredentialKind.CERTIFICATE and certificate is None:
        raise InvalidInputError("certificate file", "--cert PATH for a certificate credential")
    profile = CredentialProfile(
        name=request.name,
        kind=kind,
        display_name=request.display_name,
        cloud=cloud,
        tenant=tenant,
        client_id=client_id,
        username=request.username.lower() if request.username else None,
        scopes=scopes.scopes,
        flow=flow,
        redirect_uri=redirect_uri,
        secret_expires=parse_expiry(request.secret_expires) if request.secret_expires else None,
        certificate=certificate,
    )
    return profile, warnings
