"""The token endpoint's grants and the two interactive sign-ins (browser and device code).

Each grant is a ``grant_<name>`` function taking the :class:`TokenContext` of one request and
returning the JSON body of a successful response or raising an :class:`AadstsError`;
:data:`GRANTS` maps ``grant_type`` values to them. :func:`token` is the whole endpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from mailgate.sandbox.directory.tenant import App, Tenant
from mailgate.sandbox.entra.aadsts import AadstsError, aadsts
from mailgate.sandbox.entra.clientauth import (
    ClientCredentials,
    authenticate_client,
    read_client_credentials,
)
from mailgate.sandbox.entra.identity_platform import (
    AuthorizationCode,
    DeviceGrant,
    IdentityPlatform,
)
from mailgate.sandbox.entra.params import parse_scopes, pkce_matches, redirect_uri_matches

__all__ = [
    "DEVICE_CODE_GRANT",
    "GRANTS",
    "AuthorizeRequest",
    "TokenContext",
    "approve_device",
    "authorize_check",
    "authorize_submit",
    "decline_device",
    "device_authorization",
    "grant_authorization_code",
    "grant_client_credentials",
    "grant_device_code",
    "grant_name",
    "grant_password",
    "grant_refresh_token",
    "token",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class TokenContext:
    """One token request: the platform, the tenant path segment and the form fields."""

    platform: IdentityPlatform
    segment: str
    tenant: Tenant | None
    form: Mapping[str, str]
    creds: ClientCredentials

    def require(self, name: str) -> str:
        """A form field that must be present (AADSTS900144 otherwise)."""
        value = self.form.get(name, "")
        if not value:
            raise aadsts(900144, field=name)
        return value

    def authenticate(self, tenant: Tenant, *, client_credentials: bool = False) -> tuple[App, str]:
        """Find the app in ``tenant`` and authenticate it; returns the app and its acr."""
        app = self.platform.app(tenant, self.creds.client_id)
        if self.creds.secret:
            self.platform.check_secret_propagated(app, self.creds.secret)
        acr = authenticate_client(
            app,
            self.creds,
            credential_required=client_credentials or not app.public_client_flows,
            certificates=self.platform.certificates(app),
            audiences=self.platform.token_endpoints(self.segment, tenant),
            now=self.platform.clock(),
        )
        return app, acr


def grant_name(grant_type: str) -> str:
    """Short name used in stats and dispatch (the device-code URN becomes ``device_code``)."""
    return "device_code" if grant_type == DEVICE_CODE_GRANT else grant_type


def grant_client_credentials(ctx: TokenContext) -> dict[str, Any]:
    """App-only token; the scope must be exactly one ``<resource>/.default``."""
    if ctx.tenant is None:
        raise aadsts(50059)
    scope = ctx.require("scope")
    request = parse_scopes(scope, ctx.tenant.name)
    if request.resource is None or not request.is_default or request.oidc:
        raise aadsts(
            70011,
            reason=f"The scope '{scope}' is not valid. Client credential flows must have a"
            " scope value with /.default suffixed to the resource identifier"
            " (application ID URI).",
        )
    app, acr = ctx.authenticate(ctx.tenant, client_credentials=True)
    return ctx.platform.app_token_response(ctx.tenant, app, request, acr)


def grant_password(ctx: TokenContext) -> dict[str, Any]:
    """Resource owner password credentials (ROPC): fails on MFA and external challenges."""
    if ctx.segment.lower() in ("common", "consumers"):
        raise aadsts(9001023)
    username = ctx.require("username")
    password = ctx.require("password")
    tenant = ctx.platform.tenant_of_user(ctx.segment, ctx.tenant, username)
    request = parse_scopes(ctx.require("scope"), tenant.name)
    app, acr = ctx.authenticate(tenant)
    user = ctx.platform.sign_in(tenant, username, password, interactive=False)
    granted = ctx.platform.grant(app, user, request)
    return ctx.platform.user_token_response(
        tenant, app, user, request, acr, granted=granted, mfa=False
    )


def grant_authorization_code(ctx: TokenContext) -> dict[str, Any]:
    """Redeem a code once, checking client, redirect URI and the PKCE verifier."""
    platform = ctx.platform
    code = platform.codes.get(ctx.require("code"))
    if code is None or (ctx.tenant is not None and ctx.tenant.id != code.tenant_id):
        raise aadsts(9002313, reason="The authorization code is unknown.")
    if code.redeemed:
        raise aadsts(54005)
    if code.expires_at <= platform.timestamp():
        raise aadsts(70008)
    if code.client_id != ctx.creds.client_id.lower():
        raise aadsts(70000, reason="The code was issued to another client.")
    tenant = next(t for t in platform.directory.tenants if t.id == code.tenant_id)
    redirect_uri = ctx.form.get("redirect_uri", "")
    if redirect_uri != code.redirect_uri:
        raise aadsts(50011, redirect_uri=redirect_uri, client_id=code.client_id)
    app, acr = ctx.authenticate(tenant)
    verifier = ctx.form.get("code_verifier", "")
    if code.code_challenge and not pkce_matches(
        code.code_challenge, code.code_challenge_method, verifier
    ):
        raise aadsts(501481)
    code.redeemed = True
    user = tenant.user(code.upn)
    assert user is not None
    platform.check_account(tenant, user)
    request = parse_scopes(ctx.form.get("scope") or code.scope, tenant.name)
    granted = platform.grant(app, user, request)
    return platform.user_token_response(
        tenant,
        app,
        user,
        request,
        acr,
        granted=granted,
        mfa=True,
        nonce=code.nonce,
        auth_time=code.auth_time,
    )


def grant_refresh_token(ctx: TokenContext) -> dict[str, Any]:
    """Trade a refresh token for new tokens, possibly for another resource."""
    platform = ctx.platform
    grant = platform.refresh_tokens.get(ctx.require("refresh_token"))
    if grant is None or (ctx.tenant is not None and ctx.tenant.id != grant.tenant_id):
        raise aadsts(9002313, reason="The refresh token is unknown.")
    if grant.client_id != ctx.creds.client_id.lower():
        raise aadsts(70000, reason="The refresh token was issued to another client.")
    tenant = next(t for t in platform.directory.tenants if t.id == grant.tenant_id)
    app, acr = ctx.authenticate(tenant)
    user = tenant.user(grant.upn)
    if user is None:
        raise aadsts(50034, tenant_id=tenant.id)
    platform.check_account(tenant, user)
    platform.check_refresh_grant(grant, user)
    request = parse_scopes(ctx.require("scope"), tenant.name)
    granted = platform.grant(app, user, request)
    return platform.user_token_response(
        tenant, app, user, request, acr, granted=granted, mfa=grant.mfa
    )


def grant_device_code(ctx: TokenContext) -> dict[str, Any]:
    """Poll a device code: pending, declined, expired, or the tokens once approved."""
    platform = ctx.platform
    grant = platform.devices.get(ctx.require("device_code"))
    if grant is None or grant.client_id != ctx.creds.client_id.lower():
        raise aadsts(70018)
    if grant.redeemed:
        raise aadsts(70000, reason="The device code was already redeemed.")
    if grant.status == "declined":
        raise aadsts(70020)
    if grant.expires_at <= platform.timestamp():
        raise aadsts(70019)
    if grant.status != "approved":
        raise aadsts(70016)
    tenant = next(t for t in platform.directory.tenants if t.id == grant.tenant_id)
    app, acr = ctx.authenticate(tenant)
    user = tenant.user(grant.upn)
    assert user is not None
    request = parse_scopes(grant.scope, tenant.name)
    granted = platform.grant(app, user, request)
    grant.redeemed = True
    return platform.user_token_response(tenant, app, user, request, acr, granted=granted, mfa=True)


GRANTS: dict[str, Callable[[TokenContext], dict[str, Any]]] = {
    "client_credentials": grant_client_credentials,
    "password": grant_password,
    "authorization_code": grant_authorization_code,
    "refresh_token": grant_refresh_token,
    "device_code": grant_device_code,
}


def token(
    platform: IdentityPlatform, segment: str, form: Mapping[str, str], authorization: str | None
) -> dict[str, Any]:
    """The token endpoint: resolve the tenant, dispatch on ``grant_type``."""
    tenant = platform.resolve_tenant(segment)
    grant_type = form.get("grant_type", "")
    if not grant_type:
        raise aadsts(900144, field="grant_type")
    handler = GRANTS.get(grant_name(grant_type))
    if handler is None:
        raise aadsts(70003, grant_type=grant_type)
    creds = read_client_credentials(form, authorization)
    if not creds.client_id:
        raise aadsts(900144, field="client_id")
    return handler(TokenContext(platform, segment, tenant, form, creds))


# -- device authorization ---------------------------------------------------------------


def device_authorization(
    platform: IdentityPlatform, segment: str, form: Mapping[str, str]
) -> dict[str, Any]:
    """``/devicecode``: a new device code for the app and scope (no verification_uri_complete)."""
    tenant = platform.resolve_tenant(segment)
    client_id = form.get("client_id", "").strip().lower()
    if not client_id:
        raise aadsts(900144, field="client_id")
    if tenant is None:
        platform.app_anywhere(client_id, segment)
    else:
        platform.app(tenant, client_id)
    scope = form.get("scope", "")
    parse_scopes(scope, tenant.name if tenant else segment)
    grant = platform.new_device_grant(segment, client_id, scope)
    uri = f"{platform.base_url}/devicelogin"
    return {
        "user_code": grant.user_code,
        "device_code": grant.device_code,
        "verification_uri": uri,
        "expires_in": platform.settings.device_code_lifetime,
        "interval": platform.settings.device_code_interval,
        "message": f"To sign in, use a web browser to open the page {uri} and enter the code"
        f" {grant.user_code} to authenticate.",
    }


def approve_device(
    platform: IdentityPlatform, user_code: str, upn: str, password: str, consent: bool = False
) -> DeviceGrant:
    """A user signs in on the device login page and approves the pending device code."""
    grant = platform.device_by_user_code(user_code)
    named = platform.resolve_tenant(grant.segment)
    tenant = platform.tenant_of_user(grant.segment, named, upn)
    app = platform.app(tenant, grant.client_id)
    user = platform.sign_in(tenant, upn, password, interactive=True)
    platform.grant(app, user, parse_scopes(grant.scope, tenant.name), consent)
    grant.status, grant.tenant_id, grant.upn = "approved", tenant.id, user.upn
    return grant


def decline_device(platform: IdentityPlatform, user_code: str) -> DeviceGrant:
    """The user refuses the sign-in; the next poll gets ``authorization_declined``."""
    grant = platform.device_by_user_code(user_code)
    grant.status = "declined"
    return grant


# -- browser sign-in (authorization code) ------------------------------------------------


@dataclass(frozen=True)
class AuthorizeRequest:
    """The ``/authorize`` query parameters the sign-in form carries along."""

    client_id: str
    redirect_uri: str
    response_type: str = "code"
    scope: str = ""
    state: str = ""
    nonce: str = ""
    code_challenge: str = ""
    code_challenge_method: str = ""
    response_mode: str = "query"
    prompt: str = ""
    login_hint: str = ""

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> AuthorizeRequest:
        """Pick the known parameters out of a query or form."""
        known = {k: params[k] for k in cls.__dataclass_fields__ if params.get(k)}
        known.setdefault("client_id", "")
        known.setdefault("redirect_uri", "")
        return cls(**known)

    def redirect(self, values: dict[str, str]) -> str:
        """The redirect URI with ``values`` (and ``state``) in the query or fragment."""
        if self.state:
            values = {**values, "state": self.state}
        joiner = (
            "#" if self.response_mode == "fragment" else ("&" if "?" in self.redirect_uri else "?")
        )
        return f"{self.redirect_uri}{joiner}{urlencode(values)}"


def authorize_check(platform: IdentityPlatform, segment: str, req: AuthorizeRequest) -> App:
    """Checks before the sign-in page is shown; these errors are shown, never redirected,
    because the redirect URI is not trusted yet."""
    tenant = platform.resolve_tenant(segment)
    if not req.client_id:
        raise aadsts(900144, field="client_id")
    app = (
        platform.app(tenant, req.client_id)
        if tenant
        else platform.app_anywhere(req.client_id, segment)
    )
    if not redirect_uri_matches(app.all_redirect_uris, req.redirect_uri):
        raise aadsts(50011, redirect_uri=req.redirect_uri, client_id=app.client_id)
    return app


def authorize_submit(
    platform: IdentityPlatform,
    segment: str,
    req: AuthorizeRequest,
    upn: str,
    password: str,
    consent: bool = False,
) -> str:
    """The sign-in form was posted: return the redirect URL carrying a code or an error.

    Raises only for errors that must not be redirected (see :func:`authorize_check`).
    """
    authorize_check(platform, segment, req)
    try:
        if "code" not in req.response_type.split():
            return req.redirect(
                {
                    "error": "unsupported_response_type",
                    "error_description": "response_type must include 'code'.",
                }
            )
        if req.prompt == "none":
            raise aadsts(50058)
        named = platform.resolve_tenant(segment)
        tenant = platform.tenant_of_user(segment, named, upn)
        app = platform.app(tenant, req.client_id)
        request = parse_scopes(req.scope, tenant.name)
        user = platform.sign_in(tenant, upn, password, interactive=True)
        platform.grant(app, user, request, consent)
    except AadstsError as exc:
        return req.redirect({"error": exc.error, "error_description": str(exc)})
    now = platform.timestamp()
    code = platform.new_code(
        AuthorizationCode(
            tenant_id=tenant.id,
            client_id=app.client_id,
            redirect_uri=req.redirect_uri,
            upn=user.upn,
            scope=req.scope,
            code_challenge=req.code_challenge,
            code_challenge_method=req.code_challenge_method or "plain",
            nonce=req.nonce,
            auth_time=int(now),
            expires_at=now + platform.settings.authorization_code_lifetime,
        )
    )
    return req.redirect({"code": code})
