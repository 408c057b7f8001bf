"""The HTTP face of the emulated identity platform (Entra ID v2.0 endpoints) as FastAPI routers.

Routes (``{tenant}`` is a GUID, a verified domain, ``organizations`` or ``common``)::

    GET  /{tenant}/v2.0/.well-known/openid-configuration
    GET  /{tenant}/discovery/v2.0/keys
    POST /{tenant}/oauth2/v2.0/token
    GET  /{tenant}/oauth2/v2.0/authorize        sign-in form
    POST /{tenant}/oauth2/v2.0/authorize        credentials -> 302 to redirect_uri
    POST /{tenant}/oauth2/v2.0/devicecode
    GET  /common/userrealm/{username}            MSAL's pre-ROPC realm lookup ("Managed")
    GET  /devicelogin   POST /devicelogin       device-code approval form
    POST /_sandbox/device/approve  {user_code, username, password, consent?}
    POST /_sandbox/device/decline  {user_code}
    GET  /_sandbox/stats           POST /_sandbox/stats/reset
    POST /_sandbox/users/{upn}/revoke-sessions
    POST /_sandbox/users/{upn}/state   {"locked": true, ...}  flip account flags
    POST /_sandbox/faults/token  {"status": 503, "count": 2, "body": "json"|"html",
                                  "retry_after": 1}  the next ``count`` token requests fail so
                                  (count 0 stops it); as Entra does at times, a JSON 5xx carries
                                  AADSTS90033 "transient error", an HTML 5xx a bare error page

:mod:`mailgate.sandbox.app` puts these routes in one application with Graph's directory subset,
Graph mail and EWS.

This module only parses requests and renders answers; the rules live in
:mod:`mailgate.sandbox.entra.grants` and :mod:`mailgate.sandbox.entra.identity_platform`, which
raise :class:`~mailgate.sandbox.entra.aadsts.AadstsError`. Each group of routes says once how a
refusal is answered (Entra's JSON error, a 404, or a page for the browser).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from mailgate.sandbox.directory.tenant import USER_STATES
from mailgate.sandbox.entra import grants, pages
from mailgate.sandbox.entra.aadsts import AadstsError, error_body
from mailgate.sandbox.entra.identity_platform import IdentityPlatform, Stats

__all__ = ["TokenFaults", "identity_routers", "openid_configuration"]

_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}


def _error(err: AadstsError, status: int | None = None) -> JSONResponse:
    return JSONResponse(error_body(err), status_code=status or err.status, headers=_NO_STORE)


async def _fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class TokenFaults:
    """Injected failures of the token endpoint: the next ``count`` requests answer ``status``."""

    status: int = 503
    count: int = 0
    body: str = "json"
    retry_after: int | None = None

    def take(self) -> Response | None:
        """The failure to answer this token request with, or None to serve it normally."""
        if self.count <= 0:
            return None
        self.count -= 1
        headers = dict(_NO_STORE)
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.body == "html":
            page = f"<html><body><h1>{self.status} Server Error</h1></body></html>"
            return HTMLResponse(page, status_code=self.status, headers=headers)
        body = {
            "error": "temporarily_unavailable",
            "error_description": "AADSTS90033: A transient error has occurred. Please try again.",
            "error_codes": [90033],
        }
        return JSONResponse(body, status_code=self.status, headers=headers)


def openid_configuration(platform: IdentityPlatform, segment: str) -> dict[str, Any]:
    """The discovery document; paths carry the tenant GUID, as MSAL reads it from there."""
    tenant = platform.resolve_tenant(segment)
    base = platform.base_url
    path = tenant.id if tenant else segment
    issuer_tenant = tenant.id if tenant else "{tenantid}"
    return {
        "issuer": f"{base}/{issuer_tenant}/v2.0",
        "authorization_endpoint": f"{base}/{path}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/{path}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/{path}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{base}/{path}/discovery/v2.0/keys",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "name",
            "preferred_username",
            "oid",
            "tid",
            "ver",
        ],
        "request_uri_parameter_supported": False,
        "tenant_region_scope": "WW",
        "cloud_instance_name": "mailgate.sandbox",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }


def identity_routers(platform: IdentityPlatform) -> list[APIRouter]:
    """The identity platform's routes, in the order Starlette must try them."""
    faults = TokenFaults()
    return [
        _fault_hooks(faults),
        _protocol_routes(platform, faults),
        _authorize_routes(platform),
        _device_login_routes(platform),
        _device_hooks(platform),
        _user_hooks(platform),
    ]


def _answering(render: Callable[[AadstsError], Response]) -> APIRouter:
    """A router whose endpoints raise :class:`AadstsError` and ``render`` turns it into the answer.

    The one place where a refusal becomes a response, so route bodies only say what they do.
    """

    class AadstsRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def answer(request: Request) -> Response:
                try:
                    return await handler(request)
                except AadstsError as err:
                    return render(err)

            return answer

    return APIRouter(route_class=AadstsRoute)


def _not_found(err: AadstsError) -> JSONResponse:
    return _error(err, 404)


def _error_page(err: AadstsError) -> HTMLResponse:
    return HTMLResponse(pages.error_page(str(err)), status_code=400)


def _device_login_again(err: AadstsError) -> HTMLResponse:
    return HTMLResponse(pages.device_login_page("/devicelogin", str(err)), status_code=400)


def _protocol_routes(platform: IdentityPlatform, faults: TokenFaults) -> APIRouter:
    """Discovery, keys, token, realm lookup and device authorization: what MSAL calls."""
    router = _answering(_error)
    stats: Stats = platform.stats

    @router.get("/{tenant}/v2.0/.well-known/openid-configuration")
    async def discovery(tenant: str) -> Response:
        stats.endpoints["openid_configuration"] += 1
        return JSONResponse(openid_configuration(platform, tenant))

    @router.get("/{tenant}/discovery/v2.0/keys")
    async def keys(tenant: str) -> Response:
        stats.endpoints["jwks"] += 1
        platform.resolve_tenant(tenant)
        return JSONResponse(platform.signer.jwks())

    @router.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> Response:
        failure = faults.take()
        if failure is not None:
            stats.endpoints["token_faults"] += 1
            return failure
        form = await _fields(request)
        name = grants.grant_name(form.get("grant_type", "")) or "none"
        stats.grants[name] += 1
        try:
            body = grants.token(platform, tenant, form, request.headers.get("authorization"))
        except AadstsError:
            stats.grant_errors[name] += 1  # counted here, answered by the router
            raise
        return JSONResponse(body, headers=_NO_STORE)

    @router.get("/common/userrealm/{username}")
    async def user_realm(username: str) -> Response:
        # MSAL asks this before ROPC to spot federated (ADFS) users; all sandbox users are
        # cloud-only ("Managed").
        stats.endpoints["userrealm"] += 1
        domain = username.rpartition("@")[2].lower()
        known = any(domain in (d.lower() for d in t.domains) for t in platform.directory.tenants)
        body: dict[str, Any] = {"ver": "1.0", "account_type": "Managed" if known else "Unknown"}
        if known:
            body.update(domain_name=domain, cloud_audience_urn="urn:federation:MicrosoftOnline")
        body["cloud_instance_name"] = "mailgate.sandbox"
        return JSONResponse(body)

    @router.post("/{tenant}/oauth2/v2.0/devicecode")
    async def devicecode(tenant: str, request: Request) -> Response:
        stats.endpoints["devicecode"] += 1
        return JSONResponse(grants.device_authorization(platform, tenant, await _fields(request)))

    return router


def _authorize_routes(platform: IdentityPlatform) -> APIRouter:
    """The browser's sign-in page; a refusal is shown as a page, never redirected."""
    router = _answering(_error_page)
    stats: Stats = platform.stats

    @router.get("/{tenant}/oauth2/v2.0/authorize")
    async def authorize_form(tenant: str, request: Request) -> Response:
        stats.endpoints["authorize"] += 1
        params = dict(request.query_params)
        req = grants.AuthorizeRequest.from_params(params)
        registered = grants.authorize_check(platform, tenant, req)
        if req.prompt == "none":
            return _finish(req, grants.authorize_submit(platform, tenant, req, "", ""))
        return HTMLResponse(pages.sign_in_page(request.url.path, params, registered.name))

    @router.post("/{tenant}/oauth2/v2.0/authorize")
    async def authorize_post(tenant: str, request: Request) -> Response:
        stats.endpoints["authorize_post"] += 1
        form = await _fields(request)
        req = grants.AuthorizeRequest.from_params(form)
        url = grants.authorize_submit(
            platform,
            tenant,
            req,
            form.get("username", ""),
            form.get("password", ""),
            consent=form.get("consent", "") in ("yes", "on", "true"),
        )
        return _finish(req, url)

    return router


def _device_login_routes(platform: IdentityPlatform) -> APIRouter:
    """The page where a user enters a device code; a refusal shows the form again."""
    router = _answering(_device_login_again)
    stats: Stats = platform.stats

    @router.get("/devicelogin")
    async def devicelogin_form() -> Response:
        stats.endpoints["devicelogin"] += 1
        return HTMLResponse(pages.device_login_page("/devicelogin"))

    @router.post("/devicelogin")
    async def devicelogin_post(request: Request) -> Response:
        stats.endpoints["devicelogin_post"] += 1
        form = await _fields(request)
        if form.get("action") == "decline":
            grants.decline_device(platform, form.get("user_code", ""))
            return HTMLResponse(
                pages.message_page("Sign-in cancelled", "You may close this window.")
            )
        grants.approve_device(
            platform,
            form.get("user_code", ""),
            form.get("username", ""),
            form.get("password", ""),
            consent=form.get("consent", "") in ("yes", "on", "true"),
        )
        return HTMLResponse(
            pages.message_page(
                "You're signed in", "You have signed in on your device. You may close this window."
            )
        )

    return router


def _device_hooks(platform: IdentityPlatform) -> APIRouter:
    """Test hooks: answer a device code without a browser, read and reset the counters."""
    router = _answering(_error)
    stats: Stats = platform.stats

    @router.post("/_sandbox/device/approve")
    async def device_approve(request: Request) -> Response:
        data = await _json(request)
        grant = grants.approve_device(
            platform,
            str(data.get("user_code", "")),
            str(data.get("username") or data.get("upn") or ""),
            str(data.get("password", "")),
            consent=bool(data.get("consent", False)),
        )
        return JSONResponse(
            {"status": grant.status, "upn": grant.upn, "tenant_id": grant.tenant_id}
        )

    @router.post("/_sandbox/device/decline")
    async def device_decline(request: Request) -> Response:
        data = await _json(request)
        grant = grants.decline_device(platform, str(data.get("user_code", "")))
        return JSONResponse({"status": grant.status})

    @router.get("/_sandbox/stats")
    async def get_stats() -> Response:
        return JSONResponse(stats.as_dict())

    @router.post("/_sandbox/stats/reset")
    async def reset_stats() -> Response:
        stats.endpoints.clear()
        stats.grants.clear()
        stats.grant_errors.clear()
        return JSONResponse(stats.as_dict())

    return router


def _fault_hooks(faults: TokenFaults) -> APIRouter:
    """Test hook: make the token endpoint fail as Microsoft's sometimes does (5xx, 429)."""
    router = APIRouter()

    @router.post("/_sandbox/faults/token")
    async def token_faults(request: Request) -> Response:
        data = await _json(request)
        status, count = data.get("status", 503), data.get("count", 1)
        body, retry_after = data.get("body", "json"), data.get("retry_after")
        if (
            not isinstance(status, int)
            or not 400 <= status <= 599
            or not isinstance(count, int)
            or body not in ("json", "html")
            or not (retry_after is None or isinstance(retry_after, int))
        ):
            return JSONResponse(
                {
                    "error": 'expected {"status": 400-599, "count": N, "body": "json" or '
                    '"html", "retry_after": seconds or null}'
                },
                status_code=400,
            )
        faults.status, faults.count, faults.body = status, max(0, count), body
        faults.retry_after = retry_after
        return JSONResponse(
            {"status": status, "count": faults.count, "body": body, "retry_after": retry_after}
        )

    return router


def _user_hooks(platform: IdentityPlatform) -> APIRouter:
    """Test hooks on one user; an unknown user is a 404 (with the AADSTS body)."""
    router = _answering(_not_found)

    @router.post("/_sandbox/users/{upn}/revoke-sessions")
    async def revoke_sessions(upn: str) -> Response:
        moment = platform.revoke_sessions(upn)
        return JSONResponse({"upn": upn, "tokens_valid_from": moment.isoformat()})

    @router.post("/_sandbox/users/{upn}/state")
    async def set_user_state(upn: str, request: Request) -> Response:
        data = await _json(request)
        unknown = sorted(set(data) - set(USER_STATES))
        if unknown or not all(isinstance(v, bool) for v in data.values()):
            return JSONResponse(
                {"error": "invalid_request", "allowed": list(USER_STATES), "unknown": unknown},
                status_code=400,
            )
        _tenant, user = platform.find_user(upn)
        for flag, value in data.items():
            setattr(user, flag, value)
        return JSONResponse({"upn": user.upn, "state": user.state})

    return router


def _finish(req: grants.AuthorizeRequest, url: str) -> Response:
    """Send the browser to the redirect URI, or relay the result with a form for form_post."""
    if req.response_mode == "form_post":
        values = dict(parse_qsl(urlsplit(url).query))
        return HTMLResponse(pages.form_post_page(req.redirect_uri, values))
    return RedirectResponse(url, status_code=302)
