"""The sandbox's Microsoft Graph directory subset: app registrations, enterprise applications and
consent, plus the test hooks for the Exchange PowerShell steps Graph cannot do.

Routes (``{id}`` is an object id)::

    GET/POST /v1.0/applications                    ?$filter=appId eq '…' | displayName eq '…'
    GET/PATCH/DELETE /v1.0/applications/{id}
    POST /v1.0/applications/{id}/addPassword       {"passwordCredential": {"endDateTime", …}}
    POST /v1.0/applications/{id}/removePassword    {"keyId"}
    GET/POST /v1.0/servicePrincipals               ?$filter=appId eq '…'
    GET  /v1.0/servicePrincipals/{id}
    POST /v1.0/servicePrincipals/{id}/appRoleAssignments  {principalId, resourceId, appRoleId}
    POST /v1.0/oauth2PermissionGrants              {clientId, consentType, resourceId, scope}
    POST /_sandbox/exchange/powershell             {"tenant", "script"}
    POST /_sandbox/directory/propagation           {"delay_requests": N}

Authorisation as in Entra: a Graph token of the sandbox whose ``scp`` (delegated) or ``roles``
(app-only) holds the permission the call needs. For delegated tokens the user matters too:
any member may read, and create apps while the tenant's ``users_can_register_apps`` (Entra's
default "Yes") holds; changing an app needs one of its owners (its creator) or an admin
directory role (``directory_roles`` in the tenant file); consent (app role assignments,
delegated permission grants) needs an admin. Anything less is 403
``Authorization_RequestDenied``. The operations are in :mod:`mailgate.sandbox.directory.objects`.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mailgate.sandbox.directory import objects as ops
from mailgate.sandbox.directory.objects import DirectoryError
from mailgate.sandbox.directory.resources import GRAPH
from mailgate.sandbox.directory.tenant import App, Tenant, User
from mailgate.sandbox.entra.aadsts import AadstsError
from mailgate.sandbox.entra.identity_platform import IdentityPlatform
from mailgate.sandbox.exchange.powershell import ShellError, run_script
from mailgate.sandbox.graph.resources import error_body

__all__ = [
    "ASSIGN_ROLES",
    "GRANT_DELEGATED",
    "READ_APPS",
    "WRITE_APPS",
    "Caller",
    "create_directory_router",
]

READ_APPS = frozenset(
    {
        "Application.Read.All",
        "Application.ReadWrite.All",
        "Directory.Read.All",
        "Directory.ReadWrite.All",
    }
)
WRITE_APPS = frozenset({"Application.ReadWrite.All", "Directory.ReadWrite.All"})
ASSIGN_ROLES = frozenset({"AppRoleAssignment.ReadWrite.All"})
GRANT_DELEGATED = frozenset({"DelegatedPermissionGrant.ReadWrite.All"})
_DENIED = "Insufficient privileges to complete the operation."
_AUDIENCES = {GRAPH.app_id, *(u.lower() for u in GRAPH.identifier_uris)}


def _error(request: Request, err: DirectoryError, now: Any) -> JSONResponse:
    request_id = str(uuid.uuid4())
    client_id = request.headers.get("client-request-id", "")
    headers = {"request-id": request_id, "client-request-id": client_id or request_id}
    body = error_body(err.code, err.message, request_id, client_id, now)
    return JSONResponse(body, status_code=err.status, headers=headers)


@dataclass(frozen=True)
class Caller:
    """Who calls: the tenant, and the signed-in user (None for an app-only token)."""

    tenant: Tenant
    user: User | None

    @property
    def admin(self) -> bool:
        """App-only callers with the permission, and users with an admin directory role."""
        return self.user is None or self.user.is_directory_admin

    def require_admin(self) -> None:
        """Consent is for administrators only."""
        if not self.admin:
            raise DirectoryError(403, "Authorization_RequestDenied", _DENIED)

    def require_owner(self, app: App) -> None:
        """Changing an app needs an admin or one of its owners."""
        if not self.admin and (self.user is None or self.user.upn.lower() not in app.owners):
            raise DirectoryError(403, "Authorization_RequestDenied", _DENIED)


def _caller(platform: IdentityPlatform, request: Request, needed: frozenset[str]) -> Caller:
    """Who holds a token allowed to make this call; DirectoryError (401/403) otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise DirectoryError(401, "InvalidAuthenticationToken", "Access token is empty.")
    try:
        claims: dict[str, Any] = jwt.decode(
            token.strip(),
            platform.signer.key.public_key(),
            algorithms=["RS256"],
            options={"verify_aud": False, "require": ["exp", "iss", "tid", "appid"]},
        )
    except jwt.PyJWTError as exc:
        raise DirectoryError(
            401, "InvalidAuthenticationToken", "Access token validation failure."
        ) from exc
    tenant = next((t for t in platform.directory.tenants if t.id == claims["tid"]), None)
    if tenant is None or claims["iss"] != f"{platform.base_url}/{tenant.id}/":
        raise DirectoryError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    if str(claims.get("aud", "")).rstrip("/").lower() not in _AUDIENCES:
        raise DirectoryError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    if "scp" in claims:
        granted = set(str(claims["scp"]).split())
        user = tenant.user(str(claims.get("upn", "")))
        if not granted & needed or user is None:
            raise DirectoryError(403, "Authorization_RequestDenied", _DENIED)
        return Caller(tenant, user)
    if not set(claims.get("roles", [])) & needed:
        raise DirectoryError(403, "Authorization_RequestDenied", _DENIED)
    return Caller(tenant, None)


class _Certificates:
    """Writes certificates uploaded as keyCredentials where the tenant file can name them."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def save(self, key_id: str, cert: x509.Certificate) -> str:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="mailgate-sandbox-certs-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{key_id}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return str(path.resolve())


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise DirectoryError(400, "BadRequest", "Unable to read JSON request payload.") from exc
    if not isinstance(data, dict):
        raise DirectoryError(400, "BadRequest", "The request body must be a JSON object.")
    return data


def create_directory_router(
    platform: IdentityPlatform,
    certificate_dir: Path | None = None,
    on_change: Callable[[], None] | None = None,
) -> APIRouter:
    """The directory routes over ``platform``; ``on_change`` runs after every change."""
    router = APIRouter()
    certificates = _Certificates(certificate_dir)

    def changed() -> None:
        if on_change is not None:
            on_change()

    Handler = Callable[[Request, Caller, dict[str, Any]], Response]

    def route(method: str, path: str, needed: frozenset[str], handler: Handler) -> None:
        async def endpoint(request: Request) -> Response:
            try:
                caller = _caller(platform, request, needed)
                body = await _body(request) if method in ("POST", "PATCH") else {}
                response = handler(request, caller, body)
            except DirectoryError as err:
                return _error(request, err, platform.clock())
            if method != "GET":
                changed()
            return response

        router.add_api_route(path, endpoint, methods=[method])

    def certs(app: App) -> dict[str, x509.Certificate]:
        files = [c.cert_file for c in app.certificates]
        return dict(zip(files, platform.certificates(app), strict=True))

    def owned(request: Request, caller: Caller) -> App:
        app = ops.find_application(caller.tenant, request.path_params["id"])
        caller.require_owner(app)
        return app

    def list_apps(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        found = ops.list_applications(caller.tenant, request.query_params.get("$filter"))
        return JSONResponse({"value": [ops.application_json(a, certs(a)) for a in found]})

    def create_app(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        if not caller.admin and not caller.tenant.users_can_register_apps:
            raise DirectoryError(403, "Authorization_RequestDenied", _DENIED)
        app = ops.create_application(caller.tenant, body, platform.clock(), certificates.save)
        if caller.user is not None:
            app.owners.append(caller.user.upn.lower())
        return JSONResponse(ops.application_json(app, certs(app)), status_code=201)

    def get_app(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        app = ops.find_application(caller.tenant, request.path_params["id"])
        return JSONResponse(ops.application_json(app, certs(app)))

    def patch_app(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        ops.update_application(owned(request, caller), body, certificates.save)
        return Response(status_code=204)

    def delete_app(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        ops.delete_application(caller.tenant, owned(request, caller))
        return Response(status_code=204)

    def add_password(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        created = ops.add_password(owned(request, caller), body, platform.clock())
        if platform.propagation_delay:
            platform.propagating[created["keyId"]] = platform.propagation_delay
        return JSONResponse(created)

    def remove_password(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        ops.remove_password(owned(request, caller), body)
        return Response(status_code=204)

    def list_sps(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        found = ops.list_service_principals(caller.tenant, request.query_params.get("$filter"))
        return JSONResponse({"value": found})

    def create_sp(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        app = caller.tenant.app(str(body.get("appId", "")))
        if app is not None:
            caller.require_owner(app)
        return JSONResponse(ops.create_service_principal(caller.tenant, body), status_code=201)

    def get_sp(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        return JSONResponse(ops.get_service_principal(caller.tenant, request.path_params["id"]))

    def assign(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        caller.require_admin()
        created = ops.assign_app_role(
            caller.tenant, request.path_params["id"], body, platform.clock()
        )
        return JSONResponse(created, status_code=201)

    def grant(request: Request, caller: Caller, body: dict[str, Any]) -> Response:
        caller.require_admin()
        return JSONResponse(ops.grant_delegated(caller.tenant, body), status_code=201)

    route("GET", "/v1.0/applications", READ_APPS, list_apps)
    route("POST", "/v1.0/applications", WRITE_APPS, create_app)
    route("GET", "/v1.0/applications/{id}", READ_APPS, get_app)
    route("PATCH", "/v1.0/applications/{id}", WRITE_APPS, patch_app)
    route("DELETE", "/v1.0/applications/{id}", WRITE_APPS, delete_app)
    route("POST", "/v1.0/applications/{id}/addPassword", WRITE_APPS, add_password)
    route("POST", "/v1.0/applications/{id}/removePassword", WRITE_APPS, remove_password)
    route("GET", "/v1.0/servicePrincipals", READ_APPS, list_sps)
    route("POST", "/v1.0/servicePrincipals", WRITE_APPS, create_sp)
    route("GET", "/v1.0/servicePrincipals/{id}", READ_APPS, get_sp)
    route("POST", "/v1.0/servicePrincipals/{id}/appRoleAssignments", ASSIGN_ROLES, assign)
    route("POST", "/v1.0/oauth2PermissionGrants", GRANT_DELEGATED, grant)

    @router.post("/_sandbox/exchange/powershell")
    async def powershell(request: Request) -> Response:
        try:
            data = await _body(request)
        except DirectoryError as err:
            return JSONResponse({"error": err.message}, status_code=400)
        try:
            tenant = platform.resolve_tenant(str(data.get("tenant", "")))
        except AadstsError as err:
            return JSONResponse({"error": str(err)}, status_code=404)
        if tenant is None or not isinstance(data.get("script"), str):
            return JSONResponse(
                {"error": "give a tenant id or domain and a script"}, status_code=400
            )
        try:
            results = run_script(tenant, data["script"])
        except ShellError as err:
            changed()  # the lines before the failing one stay applied
            return JSONResponse({"error": err.message, "line": err.line}, status_code=400)
        changed()
        return JSONResponse(
            {
                "results": [
                    {"line": r.line, "command": r.command, "output": r.output, "changed": r.changed}
                    for r in results
                ]
            }
        )

    @router.post("/_sandbox/directory/propagation")
    async def propagation(request: Request) -> Response:
        try:
            data = await _body(request)
            delay = int(data.get("delay_requests", 0))
        except (DirectoryError, TypeError, ValueError):
            return JSONResponse({"error": 'give {"delay_requests": N}'}, status_code=400)
        platform.propagation_delay = max(delay, 0)
        if not delay:
            platform.propagating.clear()
        return JSONResponse({"delay_requests": platform.propagation_delay})

    return router
