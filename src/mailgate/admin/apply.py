"""``setup apply`` as data: the Microsoft Graph requests that register an app, step by step.

:func:`apply_steps` is a generator in the style of httpx's ``Auth.auth_flow``: it yields a
:class:`GraphCall` and receives the JSON answer, so the same code drives the real run
(:mod:`mailgate.admin.graph_client` sends each call), ``--dry-run`` (:func:`dry_run` answers
with placeholders) and unit tests (which step it by hand). No network, no clock: the caller
passes ``now``. What exists so far is kept in :class:`Progress`, so a failure can say exactly
what was created and how to finish or undo it.

Order (as an admin would click it): look up the resource APIs' permission ids → create the
application with its required resource access → its service principal (enterprise
application) → a client secret or the certificate → admin consent (one app role assignment per
application permission, one delegated permission grant per API) → public client flows.
Permission ids are looked up by name (``GET /servicePrincipals?$filter=appId eq '…'``) rather
than hard-coded: the fact sheet verifies only two of them.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mailgate.admin.plan import Api, Flow, Permission, PlanRequest, permissions_for
from mailgate.errors import InvalidInputError, ProtocolError
from mailgate.identity.clouds import GRAPH_CLI_CLIENT_ID
from mailgate.secret import Secret

__all__ = [
    "GRAPH_CLI_CLIENT_ID",
    "SECRET_DISPLAY_NAME",
    "ApplyRequest",
    "CertificateUpload",
    "GraphCall",
    "Progress",
    "admin_scopes",
    "apply_steps",
    "dry_run",
]

# The first-party public client "Microsoft Graph Command Line Tools" (Connect-MgGraph), which
# any tenant can sign in to with device code for delegated Graph scopes. Its id is well known
# but not on the fact sheet [U]; `--admin-client-id` takes the tenant's own public client.
SECRET_DISPLAY_NAME = "mailgate"


@dataclass(frozen=True)
class CertificateUpload:
    """The public part of the certificate to register (base64 DER) and how to show it."""

    der_base64: str
    thumbprint_sha1: str
    subject: str


@dataclass(frozen=True)
class ApplyRequest:
    """Validated input of ``setup apply``."""

    plan: PlanRequest
    name: str
    now: datetime
    secret_days: int = 180
    certificate: CertificateUpload | None = None
    public_client: bool = False

    @property
    def public_client_flows(self) -> bool:
        """ROPC and device code need "Allow public client flows"; ``--public-client`` asks too."""
        return self.public_client or self.plan.flow in (Flow.ROPC, Flow.DEVICE_CODE)


@dataclass(frozen=True)
class GraphCall:
    """One request: ``path`` is relative to ``https://graph.microsoft.com/v1.0``."""

    step: str
    method: str
    path: str
    body: Mapping[str, Any] | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    # The answer holds a secret (addPassword): never print or log it.
    secret_answer: bool = False

    def url(self, base: str) -> str:
        """The URL for display; the query is sent URL-encoded."""
        query = "&".join(f"{k}={v}" for k, v in self.params.items())
        return f"{base.rstrip('/')}{self.path}" + (f"?{query}" if query else "")


@dataclass
class Progress:
    """What exists in the tenant so far (filled in as the answers arrive)."""

    application_id: str | None = None
    app_id: str | None = None
    service_principal_id: str | None = None
    secret: Secret | None = None
    secret_key_id: str | None = None
    secret_expires: str | None = None
    certificate_uploaded: bool = False
    consented: list[str] = field(default_factory=list)
    public_client_flows: bool = False
    done: bool = False


def admin_scopes(graph_resource: str, app_only: bool) -> str:
    """The delegated Graph scopes the admin signs in for: only what the run needs."""
    names = ["Application.ReadWrite.All"]
    names.append(
        "AppRoleAssignment.ReadWrite.All" if app_only else "DelegatedPermissionGrant.ReadWrite.All"
    )
    return " ".join(f"{graph_resource}/{n}" for n in names)


def _grouped(perms: Sequence[Permission]) -> list[tuple[Api, list[Permission]]]:
    groups: dict[str, tuple[Api, list[Permission]]] = {}
    for perm in perms:
        groups.setdefault(perm.api.app_id, (perm.api, []))[1].append(perm)
    return list(groups.values())


def _single(answer: Mapping[str, Any], api: Api) -> Mapping[str, Any]:
    found = answer.get("value")
    if not isinstance(found, list) or len(found) != 1 or not isinstance(found[0], dict):
        raise ProtocolError(
            f"the tenant has no service principal for {api.name} ({api.app_id}).",
            "the API is not available in this tenant (no licence?); check Enterprise "
            "applications in the Entra admin center.",
        )
    return found[0]


def _permission_ids(
    resource: Mapping[str, Any], api: Api, perms: Sequence[Permission], app_only: bool
) -> dict[str, str]:
    key = "appRoles" if app_only else "oauth2PermissionScopes"
    listed = resource.get(key, [])
    by_name = {
        str(p.get("value")): str(p.get("id")) for p in listed if isinstance(p, dict) and p.get("id")
    }
    ids: dict[str, str] = {}
    for perm in perms:
        if perm.name not in by_name:
            raise ProtocolError(
                f"{api.name} has no {'application' if app_only else 'delegated'} permission "
                f"named {perm.name}.",
                "check the API's permissions in the Entra admin center; the tenant may not "
                "offer it.",
            )
        ids[perm.name] = by_name[perm.name]
    return ids


def _id(answer: Mapping[str, Any], key: str, what: str) -> str:
    value = answer.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError(f"Graph's answer to '{what}' has no {key}.", "try again.")
    return value


def apply_steps(
    request: ApplyRequest, progress: Progress
) -> Generator[GraphCall, Mapping[str, Any], Progress]:
    """Yield each Graph call; send back its JSON answer. Fills ``progress`` as it goes."""
    flow = request.plan.flow
    app_only = flow.app_only
    kind = "Role" if app_only else "Scope"
    resources: list[tuple[Api, list[Permission], str, dict[str, str]]] = []
    for api, perms in _grouped(permissions_for(request.plan.protocol, flow)):
        answer = yield GraphCall(
            f"look up the permission ids of {api.name}",
            "GET",
            "/servicePrincipals",
            params={"$filter": f"appId eq '{api.app_id}'"},
        )
        resource = _single(answer, api)
        ids = _permission_ids(resource, api, perms, app_only)
        resources.append((api, perms, _id(resource, "id", api.name), ids))

    body: dict[str, Any] = {
        "displayName": request.name,
        "signInAudience": "AzureADMyOrg",
        "requiredResourceAccess": [
            {
                "resourceAppId": api.app_id,
                "resourceAccess": [{"id": ids[p.name], "type": kind} for p in perms],
            }
            for api, perms, _sp, ids in resources
        ],
    }
    if flow is Flow.AUTH_CODE:
        # "Mobile and desktop applications": loopback redirect, any port (docs/setup.md).
        body["publicClient"] = {"redirectUris": ["http://localhost"]}
    answer = yield GraphCall(
        "create the application (app registration)", "POST", "/applications", body
    )
    progress.application_id = _id(answer, "id", "create the application")
    progress.app_id = _id(answer, "appId", "create the application")

    answer = yield GraphCall(
        "create its service principal (enterprise application)",
        "POST",
        "/servicePrincipals",
        {"appId": progress.app_id},
    )
    progress.service_principal_id = sp_id = _id(answer, "id", "create the service principal")

    if flow is Flow.CLIENT_CREDENTIALS:
        end = request.now + timedelta(days=request.secret_days)
        answer = yield GraphCall(
            f"add a client secret valid for {request.secret_days} days",
            "POST",
            f"/applications/{progress.application_id}/addPassword",
            {
                "passwordCredential": {
                    "displayName": SECRET_DISPLAY_NAME,
                    "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            },
            secret_answer=True,
        )
        progress.secret = Secret(_id(answer, "secretText", "add a client secret"))
        progress.secret_key_id = _id(answer, "keyId", "add a client secret")
        progress.secret_expires = str(answer.get("endDateTime") or end.isoformat())
    elif flow is Flow.CERTIFICATE:
        certificate = request.certificate
        if certificate is None:
            raise InvalidInputError("--certificate", "a PEM or PFX file for --flow certificate")
        yield GraphCall(
            f"upload the certificate (thumbprint {certificate.thumbprint_sha1})",
            "PATCH",
            f"/applications/{progress.application_id}",
            {
                "keyCredentials": [
                    {
                        "type": "AsymmetricX509Cert",
                        "usage": "Verify",
                        "key": certificate.der_base64,
                        "displayName": certificate.subject,
                    }
                ]
            },
        )
        progress.certificate_uploaded = True

    for api, perms, resource_id, ids in resources:
        if app_only:
            for perm in perms:
                yield GraphCall(
                    f"grant admin consent to {perm.name} ({api.name})",
                    "POST",
                    f"/servicePrincipals/{sp_id}/appRoleAssignments",
                    {"principalId": sp_id, "resourceId": resource_id, "appRoleId": ids[perm.name]},
                )
                progress.consented.append(perm.name)
        else:
            names = [p.name for p in perms]
            yield GraphCall(
                f"grant admin consent to {' '.join(names)} ({api.name})",
                "POST",
                "/oauth2PermissionGrants",
                {
                    "clientId": sp_id,
                    "consentType": "AllPrincipals",
                    "resourceId": resource_id,
                    "scope": " ".join(names),
                },
            )
            progress.consented.extend(names)

    if request.public_client_flows:
        yield GraphCall(
            "allow public client flows",
            "PATCH",
            f"/applications/{progress.application_id}",
            {"isFallbackPublicClient": True},
        )
        progress.public_client_flows = True
    progress.done = True
    return progress


def _placeholder_answer(call: GraphCall, request: ApplyRequest) -> dict[str, Any]:
    """What ``--dry-run`` pretends Graph answered: placeholders the later calls show."""
    if call.method == "GET":
        app_id = call.params["$filter"].split("'")[1]
        perms = [
            p
            for p in permissions_for(request.plan.protocol, request.plan.flow)
            if p.api.app_id == app_id
        ]
        name = perms[0].api.name if perms else app_id
        entries = [{"value": p.name, "id": p.guid or f"<id of {p.name} in {name}>"} for p in perms]
        return {
            "value": [
                {
                    "id": f"<object id of {name}'s service principal>",
                    "appRoles": entries,
                    "oauth2PermissionScopes": entries,
                }
            ]
        }
    if call.path == "/applications":
        return {"id": "<application object id>", "appId": "<application (client) id>"}
    if call.path == "/servicePrincipals":
        return {"id": "<service principal object id>"}
    if call.secret_answer:
        return {"keyId": "<secret key id>", "secretText": "<never shown>"}
    return {}


def dry_run(request: ApplyRequest) -> list[GraphCall]:
    """Every call a real run would make, with placeholders for ids Graph has not given yet."""
    calls: list[GraphCall] = []
    steps = apply_steps(request, Progress())
    try:
        call = next(steps)
        while True:
            calls.append(call)
            call = steps.send(_placeholder_answer(call, request))
    except StopIteration:
        return calls
