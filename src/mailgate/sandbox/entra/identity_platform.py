"""The state and shared rules of the emulated identity platform.

:class:`IdentityPlatform` owns the directory (tenants, apps, users), the signing key and the
short-lived grants (authorization codes, device codes, refresh tokens), and implements the
rules every flow shares: which tenant a path segment names, whether a user may sign in, what
was consented, and how a token response is put together. It does no I/O: the web layer in
:mod:`mailgate.sandbox.entra.routes` calls it, tests may call it directly with a fake clock.
All calls come from one event loop, so no locking is needed.
"""

from __future__ import annotations

import re
import secrets
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from mailgate.sandbox.directory.resources import GRAPH, Resource
from mailgate.sandbox.directory.tenant import App, Tenant, TenantFile, User
from mailgate.sandbox.entra.aadsts import aadsts
from mailgate.sandbox.entra.params import (
    ScopeRequest,
    granted_permissions,
    permissions_of,
    response_scope,
)
from mailgate.sandbox.entra.tokens import (
    TokenSigner,
    access_token_claims,
    client_info,
    id_token_claims,
)
from mailgate.sandbox.pki import load_certificate

__all__ = [
    "SPECIAL_TENANTS",
    "AuthorizationCode",
    "DeviceGrant",
    "IdentityPlatform",
    "RefreshGrant",
    "Stats",
    "is_tenant_identifier",
]

SPECIAL_TENANTS = frozenset({"common", "organizations", "consumers"})
_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)
_USER_CODE_ALPHABET = string.ascii_uppercase + string.digits


def is_tenant_identifier(segment: str) -> bool:
    """True for a GUID, a domain name, or one of the special segments."""
    return bool(
        segment.lower() in SPECIAL_TENANTS or _GUID.match(segment) or _DOMAIN.match(segment)
    )


@dataclass
class AuthorizationCode:
    """A code issued by ``/authorize``, redeemable once within its lifetime."""

    tenant_id: str
    client_id: str
    redirect_uri: str
    upn: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    nonce: str
    auth_time: int
    expires_at: float
    redeemed: bool = False


@dataclass
class DeviceGrant:
    """A device-code sign-in waiting for a user to approve or decline it."""

    device_code: str
    user_code: str
    segment: str
    client_id: str
    scope: str
    expires_at: float
    status: str = "pending"
    tenant_id: str = ""
    upn: str = ""
    redeemed: bool = False


@dataclass
class RefreshGrant:
    """What an opaque refresh token stands for. ``sequence`` orders it against revocations."""

    tenant_id: str
    client_id: str
    upn: str
    issued_at: datetime
    sequence: int
    mfa: bool


@dataclass
class Stats:
    """Request counters for tests that prove caching: endpoint hits and token grant types."""

    endpoints: Counter[str] = field(default_factory=Counter)
    grants: Counter[str] = field(default_factory=Counter)
    grant_errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON view: ``{"token": {grant: n}, "token_errors": {...}, "<endpoint>": n}``."""
        return {
            **dict(self.endpoints),
            "token": dict(self.grants),
            "token_errors": dict(self.grant_errors),
        }


def _now() -> datetime:
    return datetime.now(UTC)


class IdentityPlatform:
    """The emulated Entra ID: directory, keys, grants, and the rules the flows share."""

    def __init__(
        self,
        directory: TenantFile,
        signer: TokenSigner,
        base_url: str,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.directory = directory
        self.signer = signer
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.stats = Stats()
        self.codes: dict[str, AuthorizationCode] = {}
        self.devices: dict[str, DeviceGrant] = {}
        self.refresh_tokens: dict[str, RefreshGrant] = {}
        self.tokens_valid_from: dict[str, tuple[int, datetime]] = {}
        self._sequence = 0
        self._certificates: dict[str, x509.Certificate] = {}
        # Test hook: secrets added through Graph are refused this many times (replication).
        self.propagation_delay = 0
        self.propagating: dict[str, int] = {}

    # -- directory -------------------------------------------------------------------------

    @property
    def settings(self) -> Any:
        """Lifetimes from the tenant file."""
        return self.directory.settings

    def timestamp(self) -> float:
        """Now, as a POSIX timestamp from the platform clock."""
        return self.clock().timestamp()

    def resolve_tenant(self, segment: str) -> Tenant | None:
        """The tenant a path segment names; None for common/organizations/consumers.

        Raises 900023 for a malformed segment and 90002 for an unknown one.
        """
        if not is_tenant_identifier(segment):
            raise aadsts(900023, tenant=segment)
        if segment.lower() in SPECIAL_TENANTS:
            return None
        wanted = segment.lower()
        for tenant in self.directory.tenants:
            if wanted == tenant.id or wanted in (d.lower() for d in tenant.domains):
                return tenant
        raise aadsts(90002, tenant=segment)

    def tenant_of_user(self, segment: str, tenant: Tenant | None, upn: str) -> Tenant:
        """The tenant a user signs in to: the named one, or the one owning the UPN's domain."""
        if tenant is not None:
            return tenant
        domain = upn.rpartition("@")[2].lower()
        for candidate in self.directory.tenants:
            if domain in (d.lower() for d in candidate.domains):
                return candidate
        raise aadsts(50034, tenant_id=segment)

    def app(self, tenant: Tenant, client_id: str) -> App:
        """The app registered in ``tenant``; 700016 when it is not there."""
        app = tenant.app(client_id)
        if app is None:
            raise aadsts(700016, client_id=client_id, tenant_name=tenant.id)
        return app

    def app_anywhere(self, client_id: str, segment: str) -> App:
        """The app from any tenant, for ``/common``-style requests that name no tenant yet."""
        for tenant in self.directory.tenants:
            app = tenant.app(client_id)
            if app is not None:
                return app
        raise aadsts(700016, client_id=client_id, tenant_name=segment)

    def find_user(self, upn: str) -> tuple[Tenant, User]:
        """The user with this UPN in any tenant (for admin endpoints)."""
        for tenant in self.directory.tenants:
            user = tenant.user(upn)
            if user is not None:
                return tenant, user
        raise aadsts(50034, tenant_id="any")

    def certificates(self, app: App) -> list[x509.Certificate]:
        """The app's certificate credentials, loaded once."""
        loaded = []
        for entry in app.certificates:
            if entry.cert_file not in self._certificates:
                path = self.directory.path(entry.cert_file)
                self._certificates[entry.cert_file] = load_certificate(path)
            loaded.append(self._certificates[entry.cert_file])
        return loaded

    def token_endpoints(self, segment: str, tenant: Tenant) -> set[str]:
        """Every URL of this tenant's token endpoint a client assertion may name as ``aud``."""
        names = {segment, tenant.id, *tenant.domains}
        return {f"{self.base_url}/{name}/oauth2/v2.0/token" for name in names}

    # -- users -----------------------------------------------------------------------------

    def check_account(self, tenant: Tenant, user: User) -> None:
        """Account states that block every flow, with or without a password."""
        if user.locked:
            raise aadsts(50053)
        if user.disabled:
            raise aadsts(50057)
        if user.blocked_by_conditional_access:
            raise aadsts(53003)

    def sign_in(self, tenant: Tenant, upn: str, password: str, *, interactive: bool) -> User:
        """Check a user name and password; non-interactive flows also fail on MFA and
        external challenges, which a browser sign-in is assumed to complete."""
        user = tenant.user(upn)
        if user is None:
            raise aadsts(50034, tenant_id=tenant.id)
        if user.locked:
            raise aadsts(50053)
        # Exact comparison on purpose: ROPC fails on passwords with stray spaces, too.
        if not secrets.compare_digest(password.encode(), user.password.encode()):
            raise aadsts(50126)
        self.check_account(tenant, user)
        if user.password_expired:
            raise aadsts(50055)
        if not interactive:
            resource = GRAPH.app_id
            if user.mfa_registration_required:
                raise aadsts(50079, resource=resource)
            if user.mfa_required:
                raise aadsts(50076, resource=resource)
            if user.external_challenge:
                raise aadsts(50158)
        return user

    def consented(self, app: App, user: User, request: ScopeRequest) -> list[str]:
        """Delegated permissions of the request's resource that the user may grant the app.

        The TOML shorthand (``admin_consent``, ``consented_users``) plus the tenant-wide
        delegated permission grants made through Graph.
        """
        resource = request.resource or GRAPH
        users = {u.lower() for u in app.consented_users}
        found: list[str] = []
        if app.admin_consent or user.upn.lower() in users:
            found += permissions_of(app.delegated_permissions, resource)
        found += [p for p in permissions_of(app.delegated_grants, resource) if p not in found]
        return found

    @staticmethod
    def roles(app: App, resource: Resource) -> list[str]:
        """Application permissions of ``resource`` granted to the app (its ``roles`` claim)."""
        found = permissions_of(app.application_permissions, resource) if app.admin_consent else []
        found += [p for p in permissions_of(app.app_role_assignments, resource) if p not in found]
        return found

    def check_secret_propagated(self, app: App, secret: str) -> None:
        """7000215 while a secret added through Graph has not "replicated" yet (test hook).

        Real Entra can refuse a new secret for a short while after it was added; the sandbox
        does so only when :attr:`propagation_delay` asks for it, counting token requests.
        """
        for entry in app.secrets:
            if entry.value == secret and self.propagating.get(entry.key_id, 0) > 0:
                self.propagating[entry.key_id] -= 1
                raise aadsts(7000215, client_id=app.client_id)

    def grant(
        self, app: App, user: User, request: ScopeRequest, consent: bool = False
    ) -> list[str]:
        """Permissions for ``scp``; records the user's consent if given, else raises 65001."""
        if request.resource is None:
            request = ScopeRequest(GRAPH, GRAPH.identifier_uris[0], (".default",), request.oidc)
        if app.service_principal_id is None:
            # Nothing can have been consented to without an enterprise application.
            raise aadsts(65001, client_id=app.client_id, app_name=app.name)
        granted = granted_permissions(request, self.consented(app, user, request))
        if granted is None and consent:
            app.consented_users.append(user.upn)
            granted = granted_permissions(request, self.consented(app, user, request))
        if granted is None:
            raise aadsts(65001, client_id=app.client_id, app_name=app.name)
        return granted

    def revoke_sessions(self, upn: str) -> datetime:
        """Invalidate every refresh token issued to the user so far (AADSTS50173 afterwards)."""
        tenant, user = self.find_user(upn)
        moment = self.clock()
        self.tokens_valid_from[f"{tenant.id}/{user.object_id}"] = (self._sequence, moment)
        return moment

    def check_refresh_grant(self, grant: RefreshGrant, user: User) -> None:
        """Raise 50173 when the user's sessions were revoked after this token was issued."""
        revoked = self.tokens_valid_from.get(f"{grant.tenant_id}/{user.object_id}")
        if revoked is not None and grant.sequence <= revoked[0]:
            raise aadsts(
                50173,
                issued=grant.issued_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                valid_from=revoked[1].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            )

    # -- issuing ---------------------------------------------------------------------------

    def app_token_response(
        self, tenant: Tenant, app: App, request: ScopeRequest, acr: str
    ) -> dict[str, Any]:
        """Response of a client-credentials grant; ``roles`` only when consented."""
        assert request.resource is not None
        if app.service_principal_id is None:
            raise aadsts(7000229, client_id=app.client_id, tenant=tenant.id)
        lifetime = self.settings.access_token_lifetime
        roles = self.roles(app, request.resource)
        claims = access_token_claims(
            issuer_base=self.base_url,
            tenant_id=tenant.id,
            audience=request.audience,
            client_id=app.client_id,
            acr=acr,
            now=int(self.timestamp()),
            lifetime=lifetime,
            app_object_id=app.service_principal_id,
            roles=roles,
        )
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.signer.sign(claims),
        }

    def user_token_response(
        self,
        tenant: Tenant,
        app: App,
        user: User,
        request: ScopeRequest,
        acr: str,
        *,
        granted: list[str],
        mfa: bool,
        nonce: str = "",
        auth_time: int | None = None,
    ) -> dict[str, Any]:
        """Response of a user flow: access token, ``client_info``, and the optional id and
        refresh tokens (``openid`` / ``offline_access``)."""
        if request.resource is None:
            request = ScopeRequest(GRAPH, GRAPH.identifier_uris[0], (".default",), request.oidc)
        lifetime = self.settings.access_token_lifetime
        now = int(self.timestamp())
        claims = access_token_claims(
            issuer_base=self.base_url,
            tenant_id=tenant.id,
            audience=request.audience,
            client_id=app.client_id,
            acr=acr,
            now=now,
            lifetime=lifetime,
            app_object_id=app.service_principal_id or app.object_id,
            user=user,
            scp=granted,
            mfa=mfa,
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": response_scope(request, granted),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.signer.sign(claims),
            "client_info": client_info(user.object_id, tenant.id),
        }
        if "openid" in request.oidc:
            body["id_token"] = self.signer.sign(
                id_token_claims(
                    issuer_base=self.base_url,
                    tenant_id=tenant.id,
                    client_id=app.client_id,
                    user=user,
                    now=now,
                    nonce=nonce or None,
                    auth_time=auth_time,
                )
            )
        if "offline_access" in request.oidc:
            self._sequence += 1
            token = secrets.token_urlsafe(48)
            self.refresh_tokens[token] = RefreshGrant(
                tenant.id, app.client_id, user.upn, self.clock(), self._sequence, mfa
            )
            body["refresh_token"] = token
        return body

    # -- grants waiting for a user -----------------------------------------------------------

    def new_code(self, code: AuthorizationCode) -> str:
        """Store an authorization code and return its opaque value."""
        value = secrets.token_urlsafe(48)
        self.codes[value] = code
        return value

    def new_device_grant(self, segment: str, client_id: str, scope: str) -> DeviceGrant:
        """Create a pending device-code grant with a fresh 9-character user code."""
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        grant = DeviceGrant(
            device_code=secrets.token_urlsafe(48),
            user_code=user_code,
            segment=segment,
            client_id=client_id,
            scope=scope,
            expires_at=self.timestamp() + self.settings.device_code_lifetime,
        )
        self.devices[grant.device_code] = grant
        return grant

    def device_by_user_code(self, user_code: str) -> DeviceGrant:
        """The grant for a user code as typed (case and dashes ignored); 70018 if unknown."""
        wanted = re.sub(r"[\s-]", "", user_code).upper()
        for grant in self.devices.values():
            if grant.user_code == wanted:
                if grant.expires_at <= self.timestamp():
                    raise aadsts(70019)
                return grant
        raise aadsts(70018)
