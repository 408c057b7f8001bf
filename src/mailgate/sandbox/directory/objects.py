"""Entra ID's directory objects as Microsoft Graph shows them, as pure operations on a tenant.

Applications (app registrations), service principals (enterprise applications), their password
and key credentials, and the two kinds of consent: app role assignments (application
permissions) and delegated permission grants. :mod:`mailgate.sandbox.graph.directory_routes`
serves them over HTTP; everything here works on a
:class:`~mailgate.sandbox.directory.tenant.Tenant` and a clock and raises
:class:`DirectoryError` (Graph's status, code and message) when Graph would refuse.

The resource service principals every tenant holds (Microsoft Graph and Office 365 Exchange
Online) carry the app roles and delegated scopes mailgate uses. Permission ids: the two on the
fact sheet (``full_access_as_app``, ``EWS.AccessAsUser.All``) are Microsoft's; every other id
is a stable sandbox id (a UUID5 of the name), so clients must look ids up by name through
``GET /servicePrincipals?$filter=appId eq '…'`` as they should against Entra anyway.
Shapes follow Microsoft Graph v1.0's application, servicePrincipal, passwordCredential,
keyCredential, appRoleAssignment and oAuth2PermissionGrant resources; status codes and error
texts that the fact sheet does not cover are marked [U] in docs/sandbox.md.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509

from mailgate.sandbox.directory.resources import EXCHANGE, GRAPH, OIDC_SCOPES, RESOURCES, Resource
from mailgate.sandbox.directory.tenant import App, AppCertificate, AppSecret, Tenant
from mailgate.sandbox.pki import thumbprint_sha1

__all__ = [
    "DEFAULT_SECRET_LIFETIME",
    "CertificateSaver",
    "DirectoryError",
    "ResourcePermission",
    "add_password",
    "application_json",
    "assign_app_role",
    "create_application",
    "create_service_principal",
    "delete_application",
    "find_application",
    "get_service_principal",
    "grant_delegated",
    "list_applications",
    "list_service_principals",
    "permission_id",
    "remove_password",
    "resource_permissions",
    "resource_sp_id",
    "service_principal_json",
    "update_application",
]

_NAMESPACE = uuid.UUID("6f1c0a52-3b8e-4f6e-9a51-6d2c7c1f0b11")
# Microsoft's ids from the fact sheet (section 2); everything else gets a sandbox id.
_KNOWN_IDS = {
    ("exchange", "Role", "full_access_as_app"): "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
    ("exchange", "Scope", "EWS.AccessAsUser.All"): "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5",
}
_CATALOGUE: dict[str, dict[str, tuple[str, ...]]] = {
    "exchange": {
        "Role": ("full_access_as_app", "IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp"),
        "Scope": (
            "EWS.AccessAsUser.All",
            "IMAP.AccessAsUser.All",
            "POP.AccessAsUser.All",
            "SMTP.Send",
        ),
    },
    "graph": {
        "Role": (
            "Mail.Read",
            "Mail.ReadBasic",
            "Mail.ReadWrite",
            "Mail.Send",
            "Application.ReadWrite.All",
            "AppRoleAssignment.ReadWrite.All",
        ),
        "Scope": (
            "Mail.Read",
            "Mail.ReadBasic",
            "Mail.ReadWrite",
            "Mail.Send",
            "Mail.ReadWrite.Shared",
            "Mail.Send.Shared",
            "User.Read",
            "offline_access",
            "openid",
            "profile",
            "email",
            "Application.ReadWrite.All",
            "AppRoleAssignment.ReadWrite.All",
            "DelegatedPermissionGrant.ReadWrite.All",
        ),
    },
}
_FILTER = re.compile(r"^\s*(appId|displayName)\s+eq\s+'((?:[^']|'')*)'\s*$", re.I)
_APP_FIELDS = frozenset(
    {
        "displayName",
        "signInAudience",
        "requiredResourceAccess",
        "isFallbackPublicClient",
        "publicClient",
        "web",
        "keyCredentials",
        "description",
        "notes",
        "tags",
    }
)
# Entra's default lifetime of a secret added without an endDateTime [U: not on the fact sheet].
DEFAULT_SECRET_LIFETIME = timedelta(days=730)


class DirectoryError(Exception):
    """Graph refuses: HTTP ``status``, error ``code`` and ``message`` for the envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _bad(message: str) -> DirectoryError:
    return DirectoryError(400, "Request_BadRequest", message)


def _not_found(object_id: str) -> DirectoryError:
    return DirectoryError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def _stamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise _bad(f"Invalid value specified for property '{field}'.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"Invalid value specified for property '{field}'.") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- resource service principals -------------------------------------------------------------


@dataclass(frozen=True)
class ResourcePermission:
    """An app role (``Role``) or delegated scope (``Scope``) of a resource API."""

    resource: Resource
    kind: str
    name: str

    @property
    def id(self) -> str:
        """Microsoft's id where the fact sheet has it, else a stable sandbox id."""
        return permission_id(self.resource.key, self.kind, self.name)

    @property
    def entry(self) -> str:
        """The tenant-file form, ``exchange:IMAP.AccessAsApp``."""
        return f"{self.resource.key}:{self.name}"


def permission_id(resource_key: str, kind: str, name: str) -> str:
    """The id of one permission of ``resource_key`` (``exchange``/``graph``)."""
    known = _KNOWN_IDS.get((resource_key, kind, name))
    return known or str(uuid.uuid5(_NAMESPACE, f"{resource_key}:{kind}:{name}"))


def resource_permissions(resource: Resource, kind: str) -> list[ResourcePermission]:
    """Every app role (``Role``) or scope (``Scope``) the sandbox knows for ``resource``."""
    return [ResourcePermission(resource, kind, n) for n in _CATALOGUE[resource.key][kind]]


def resource_sp_id(tenant: Tenant, resource: Resource) -> str:
    """The object id of ``resource``'s service principal in ``tenant`` (stable per tenant)."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant.id}:{resource.app_id}"))


def _resource_by_sp(tenant: Tenant, sp_id: str) -> Resource | None:
    wanted = sp_id.strip().lower()
    return next((r for r in RESOURCES.values() if resource_sp_id(tenant, r) == wanted), None)


def _resource_sp_json(tenant: Tenant, resource: Resource) -> dict[str, Any]:
    return {
        "id": resource_sp_id(tenant, resource),
        "appId": resource.app_id,
        "displayName": resource.name,
        "servicePrincipalType": "Application",
        "accountEnabled": True,
        "servicePrincipalNames": [resource.app_id, *resource.identifier_uris],
        "appRoles": [
            {
                "id": p.id,
                "value": p.name,
                "displayName": p.name,
                "description": f"{p.name} (sandbox)",
                "allowedMemberTypes": ["Application"],
                "isEnabled": True,
                "origin": "Application",
            }
            for p in resource_permissions(resource, "Role")
        ],
        "oauth2PermissionScopes": [
            {
                "id": p.id,
                "value": p.name,
                "type": "Admin",
                "adminConsentDisplayName": p.name,
                "adminConsentDescription": f"{p.name} (sandbox)",
                "isEnabled": True,
            }
            for p in resource_permissions(resource, "Scope")
        ],
    }


# -- applications ------------------------------------------------------------------------------


def _password_json(secret: AppSecret, reveal: bool = False) -> dict[str, Any]:
    return {
        "customKeyIdentifier": None,
        "displayName": secret.display_name or None,
        "endDateTime": _stamp(secret.expires),
        "hint": secret.value[:3],
        "keyId": secret.key_id,
        # Graph returns the value once, in the addPassword response, and null ever after.
        "secretText": secret.value if reveal else None,
        "startDateTime": _stamp(secret.start),
    }


def _certificate_key_id(entry: AppCertificate) -> str:
    return entry.key_id or str(uuid.uuid5(_NAMESPACE, entry.cert_file))


def application_json(
    app: App, certificates: Mapping[str, x509.Certificate] | None = None
) -> dict[str, Any]:
    """The ``microsoft.graph.application`` view of an app registration."""
    keys = []
    for entry in app.certificates:
        cert = (certificates or {}).get(entry.cert_file)
        keys.append(
            {
                "keyId": _certificate_key_id(entry),
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "displayName": entry.display_name or None,
                "customKeyIdentifier": thumbprint_sha1(cert).hex().upper() if cert else None,
                "endDateTime": _stamp(cert.not_valid_after_utc) if cert else None,
                "startDateTime": _stamp(cert.not_valid_before_utc) if cert else None,
                "key": None,
            }
        )
    return {
        "id": app.object_id,
        "appId": app.client_id,
        "displayName": app.name,
        "signInAudience": "AzureADMyOrg",
        "createdDateTime": _stamp(app.created),
        "isFallbackPublicClient": app.public_client_flows,
        "publicClient": {"redirectUris": list(app.redirect_uris)},
        "web": {"redirectUris": list(app.web_redirect_uris)},
        "requiredResourceAccess": list(app.required_resource_access),
        "passwordCredentials": [_password_json(s) for s in app.secrets],
        "keyCredentials": keys,
    }


def find_application(tenant: Tenant, object_id: str) -> App:
    """The app registration with this object id; 404 otherwise."""
    wanted = object_id.strip().lower()
    found = next((a for a in tenant.apps if a.object_id == wanted), None)
    if found is None:
        raise _not_found(object_id)
    return found


def _match_filter(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    match = _FILTER.match(text)
    if match is None:
        raise DirectoryError(
            400,
            "Request_UnsupportedQuery",
            "Unsupported query: the sandbox filters on appId eq '…' or displayName eq '…' only.",
        )
    return match.group(1).lower(), match.group(2).replace("''", "'")


def list_applications(tenant: Tenant, filter_text: str | None) -> list[App]:
    """App registrations, optionally ``$filter``-ed by ``appId`` or ``displayName``."""
    wanted = _match_filter(filter_text)
    if wanted is None:
        return list(tenant.apps)
    field, value = wanted
    if field == "appid":
        return [a for a in tenant.apps if a.client_id == value.strip().lower()]
    return [a for a in tenant.apps if a.name == value]


def _uris(value: Any, field: str) -> list[str]:
    uris = value.get("redirectUris", []) if isinstance(value, dict) else None
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise _bad(f"Invalid value specified for property '{field}'.")
    return list(uris)


def _resource_access(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _bad("Invalid value specified for property 'requiredResourceAccess'.")
    checked: list[dict[str, Any]] = []
    for item in value:
        access = item.get("resourceAccess") if isinstance(item, dict) else None
        app_id = item.get("resourceAppId") if isinstance(item, dict) else None
        if not isinstance(app_id, str) or not isinstance(access, list):
            raise _bad("Invalid value specified for property 'requiredResourceAccess'.")
        entries = []
        for entry in access:
            if (
                not isinstance(entry, dict)
                or entry.get("type") not in ("Role", "Scope")
                or not isinstance(entry.get("id"), str)
            ):
                raise _bad("Invalid value specified for property 'resourceAccess'.")
            entries.append({"id": entry["id"].lower(), "type": entry["type"]})
        checked.append({"resourceAppId": app_id.lower(), "resourceAccess": entries})
    return checked


CertificateSaver = Callable[[str, x509.Certificate], str]
"""Stores an uploaded certificate and returns the path the tenant file should name."""


def _key_credentials(app: App, value: Any, save: CertificateSaver) -> list[AppCertificate]:
    if not isinstance(value, list):
        raise _bad("Invalid value specified for property 'keyCredentials'.")
    existing = {_certificate_key_id(c): c for c in app.certificates}
    result: list[AppCertificate] = []
    for item in value:
        if not isinstance(item, dict):
            raise _bad("Invalid value specified for property 'keyCredentials'.")
        key_id = str(item.get("keyId") or uuid.uuid4()).lower()
        if not item.get("key") and key_id in existing:
            result.append(existing[key_id])  # kept by naming its keyId, as Graph allows
            continue
        if item.get("type") != "AsymmetricX509Cert" or item.get("usage") != "Verify":
            raise _bad("Only keyCredentials of type AsymmetricX509Cert and usage Verify.")
        try:
            der = base64.b64decode(str(item.get("key", "")), validate=True)
            cert = x509.load_der_x509_certificate(der)
        except (binascii.Error, ValueError) as exc:
            raise _bad("Key credential 'key' must be a base64 DER X.509 certificate.") from exc
        path = save(key_id, cert)
        name = str(item.get("displayName") or "")
        result.append(AppCertificate(cert_file=path, key_id=key_id, display_name=name))
    return result


def _apply_fields(app: App, body: Mapping[str, Any], save: CertificateSaver) -> None:
    unknown = sorted(set(body) - _APP_FIELDS)
    if "passwordCredentials" in unknown:
        raise _bad("Use addPassword and removePassword to change passwordCredentials.")
    if unknown:
        raise _bad(f"Invalid property '{unknown[0]}'.")
    if "displayName" in body:
        if not isinstance(body["displayName"], str) or not body["displayName"].strip():
            raise _bad("Invalid value specified for property 'displayName'.")
        app.name = body["displayName"].strip()
    if body.get("signInAudience", "AzureADMyOrg") != "AzureADMyOrg":
        raise _bad("The sandbox registers single-tenant apps only (signInAudience AzureADMyOrg).")
    if "requiredResourceAccess" in body:
        app.required_resource_access = _resource_access(body["requiredResourceAccess"])
    if "isFallbackPublicClient" in body:
        flag = body["isFallbackPublicClient"]
        if flag is not None and not isinstance(flag, bool):
            raise _bad("Invalid value specified for property 'isFallbackPublicClient'.")
        app.public_client_flows = bool(flag)
    if "publicClient" in body:
        app.redirect_uris = _uris(body["publicClient"], "publicClient")
    if "web" in body:
        app.web_redirect_uris = _uris(body["web"], "web")
    if "keyCredentials" in body:
        app.certificates = _key_credentials(app, body["keyCredentials"], save)


def create_application(
    tenant: Tenant, body: Mapping[str, Any], now: datetime, save: CertificateSaver
) -> App:
    """``POST /applications``: a new registration without a service principal."""
    if not isinstance(body.get("displayName"), str):
        raise _bad("Property 'displayName' is required.")
    app = App(
        name="-",
        client_id=str(uuid.uuid4()),
        object_id=str(uuid.uuid4()),
        created=now,
    )
    _apply_fields(app, body, save)
    tenant.apps.append(app)
    return app


def update_application(app: App, body: Mapping[str, Any], save: CertificateSaver) -> None:
    """``PATCH /applications/{id}``: only the properties given change."""
    _apply_fields(app, body, save)


def delete_application(tenant: Tenant, app: App) -> None:
    """``DELETE /applications/{id}``: the registration and its service principal go."""
    tenant.apps.remove(app)


def add_password(app: App, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """``POST /applications/{id}/addPassword``: a generated secret, its text shown this once."""
    spec = body.get("passwordCredential", {})
    if not isinstance(spec, dict):
        raise _bad("Invalid value specified for property 'passwordCredential'.")
    start = _parse_time(spec["startDateTime"], "startDateTime") if "startDateTime" in spec else now
    end = (
        _parse_time(spec["endDateTime"], "endDateTime")
        if spec.get("endDateTime")
        else now + DEFAULT_SECRET_LIFETIME
    )
    if end <= start:
        raise _bad("Key credential end date is invalid: it must be after the start date.")
    secret = AppSecret(
        key_id=str(uuid.uuid4()),
        value=secrets.token_urlsafe(30),
        expires=end,
        display_name=str(spec.get("displayName") or ""),
        start=start,
    )
    app.secrets.append(secret)
    return _password_json(secret, reveal=True)


def remove_password(app: App, body: Mapping[str, Any]) -> None:
    """``POST /applications/{id}/removePassword``: the secret with ``keyId`` stops working."""
    key_id = str(body.get("keyId", "")).strip().lower()
    found = next((s for s in app.secrets if s.key_id == key_id), None)
    if found is None:
        raise _bad(f"No password credential with keyId '{key_id}' exists on the application.")
    app.secrets.remove(found)


# -- service principals ------------------------------------------------------------------------


def service_principal_json(tenant: Tenant, app: App) -> dict[str, Any]:
    """The enterprise application of one of the tenant's own app registrations."""
    return {
        "id": app.service_principal_id,
        "appId": app.client_id,
        "displayName": app.name,
        "servicePrincipalType": "Application",
        "accountEnabled": True,
        "appOwnerOrganizationId": tenant.id,
        "servicePrincipalNames": [app.client_id],
        "appRoles": [],
        "oauth2PermissionScopes": [],
    }


def create_service_principal(tenant: Tenant, body: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /servicePrincipals {"appId"}``: the enterprise application of a registration."""
    app_id = str(body.get("appId", "")).strip().lower()
    app = tenant.app(app_id) if app_id else None
    if app is None:
        raise _bad(
            f"The appId '{app_id}' of the service principal does not reference a valid "
            "application object."
        )
    if app.service_principal_id is not None:
        raise DirectoryError(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "The service principal cannot be created, updated, or restored because the service"
            " principal name is already in use.",
        )
    app.service_principal_id = str(uuid.uuid4())
    return service_principal_json(tenant, app)


def list_service_principals(tenant: Tenant, filter_text: str | None) -> list[dict[str, Any]]:
    """Resource and own service principals, optionally filtered by ``appId``/``displayName``."""
    views = [_resource_sp_json(tenant, r) for r in RESOURCES.values()]
    views += [service_principal_json(tenant, a) for a in tenant.apps if a.service_principal_id]
    wanted = _match_filter(filter_text)
    if wanted is None:
        return views
    field, value = wanted
    key = "appId" if field == "appid" else "displayName"
    target = value.strip().lower() if key == "appId" else value
    return [v for v in views if v[key] == target]


def get_service_principal(tenant: Tenant, sp_id: str) -> dict[str, Any]:
    """One service principal by object id; 404 otherwise."""
    resource = _resource_by_sp(tenant, sp_id)
    if resource is not None:
        return _resource_sp_json(tenant, resource)
    return service_principal_json(tenant, _own_sp(tenant, sp_id))


def _own_sp(tenant: Tenant, sp_id: str) -> App:
    wanted = sp_id.strip().lower()
    found = next((a for a in tenant.apps if a.service_principal_id == wanted), None)
    if found is None:
        raise _not_found(sp_id)
    return found


def _resource(tenant: Tenant, resource_id: Any) -> Resource:
    resource = _resource_by_sp(tenant, str(resource_id or ""))
    if resource is None:
        raise _bad(
            f"The resource '{resource_id}' is not a resource service principal the sandbox "
            f"knows (Microsoft Graph {GRAPH.app_id}, Exchange Online {EXCHANGE.app_id})."
        )
    return resource


def assign_app_role(
    tenant: Tenant, sp_id: str, body: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """``POST /servicePrincipals/{id}/appRoleAssignments``: admin consent to one app role."""
    app = _own_sp(tenant, sp_id)
    if str(body.get("principalId", "")).strip().lower() != app.service_principal_id:
        raise _bad("principalId must be the service principal named in the URL.")
    resource = _resource(tenant, body.get("resourceId"))
    role_id = str(body.get("appRoleId", "")).strip().lower()
    role = next((p for p in resource_permissions(resource, "Role") if p.id == role_id), None)
    if role is None:
        raise _bad(f"Permission being assigned was not found on application '{resource.app_id}'.")
    if role.entry in app.app_role_assignments:
        raise _bad("Permission being assigned already exists on the object.")
    app.app_role_assignments.append(role.entry)
    return {
        "id": str(uuid.uuid4()),
        "appRoleId": role.id,
        "createdDateTime": _stamp(now),
        "principalDisplayName": app.name,
        "principalId": app.service_principal_id,
        "principalType": "ServicePrincipal",
        "resourceDisplayName": resource.name,
        "resourceId": resource_sp_id(tenant, resource),
    }


def grant_delegated(tenant: Tenant, body: Mapping[str, Any]) -> dict[str, Any]:
    """``POST /oauth2PermissionGrants``: tenant-wide consent to delegated scopes."""
    app = _own_sp(tenant, str(body.get("clientId", "")))
    if body.get("consentType") != "AllPrincipals":
        raise _bad(
            "The sandbox emulates consentType 'AllPrincipals' (admin consent) only; per-user "
            "consent is given at sign-in."
        )
    resource = _resource(tenant, body.get("resourceId"))
    scope = body.get("scope")
    names = scope.split() if isinstance(scope, str) else []
    if not names:
        raise _bad("Property 'scope' is required.")
    known = {p.name.lower(): p for p in resource_permissions(resource, "Scope")}
    for name in names:
        permission = known.get(name.lower())
        if permission is None:
            raise _bad(f"The scope '{name}' does not exist on application '{resource.app_id}'.")
        # OpenID scopes need no grant in the token service; keep the grant list to real ones.
        if permission.name not in OIDC_SCOPES and permission.entry not in app.delegated_grants:
            app.delegated_grants.append(permission.entry)
    return {
        "id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("="),
        "clientId": app.service_principal_id,
        "consentType": "AllPrincipals",
        "principalId": None,
        "resourceId": resource_sp_id(tenant, resource),
        "scope": " ".join(names),
    }
