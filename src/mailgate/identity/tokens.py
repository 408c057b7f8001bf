"""Token acquisition for every flow the seeds use, on MSAL, with the encrypted cache.

One class per flow, each with ``acquire(app, scopes)``; :class:`TokenProvider` picks the flow
from the credential's kind, builds the MSAL application over the credential's persisted cache,
and returns an :class:`AccessToken`. MSAL consults the cache first, so repeated calls and
process restarts cost one token request per token lifetime.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from mailgate import alerts
from mailgate.errors import (
    ConfigurationError,
    InteractionRequiredError,
    SecretExpiringWarning,
    TokenRequestError,
)
from mailgate.identity.cache import TokenCacheStore
from mailgate.identity.cached_tokens import cached_access_token
from mailgate.identity.clouds import Cloud, get_cloud
from mailgate.identity.inputs import ScopeSet, parse_scopes
from mailgate.secret import Secret
from mailgate.vault import CredentialKind, CredentialProfile, DelegatedFlow, SecretField, Vault

if TYPE_CHECKING:
    import msal

    from mailgate.identity.interaction import Interaction

__all__ = [
    "AccessToken",
    "AuthCodeFlow",
    "ClientCredentialsFlow",
    "DeviceCodeFlow",
    "Flow",
    "PasswordFlow",
    "RefreshHook",
    "TokenProvider",
    "decode_claims",
]

_log = logging.getLogger(__name__)


def decode_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (for display and diagnosis only, never for trust)."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class AccessToken:
    """An access token and what is known about it. ``value`` is a :class:`Secret`."""

    value: Secret
    expires_on: datetime
    scopes: tuple[str, ...]
    from_cache: bool
    claims: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_result(cls, result: dict[str, Any], scopes: tuple[str, ...]) -> AccessToken:
        token = str(result["access_token"])
        expires_in = int(result.get("expires_in", 3599))
        return cls(
            value=Secret(token),
            expires_on=datetime.now(UTC) + timedelta(seconds=expires_in),
            scopes=scopes,
            from_cache=result.get("token_source") == "cache",
            claims=decode_claims(token),
        )

    @property
    def audience(self) -> str:
        return str(self.claims.get("aud", ""))

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.claims.get("roles", ()))

    @property
    def delegated_scopes(self) -> tuple[str, ...]:
        return tuple(str(self.claims.get("scp", "")).split())


class Flow(Protocol):
    """One OAuth flow: get a token for ``scopes`` from ``app``, cache first."""

    def acquire(
        self, app: msal.ClientApplication, scopes: list[str], force_refresh: bool
    ) -> dict[str, Any]: ...


@dataclass
class ClientCredentialsFlow:
    """App-only: client secret or certificate (``grant_type=client_credentials``)."""

    tenant: str

    def acquire(
        self, app: msal.ClientApplication, scopes: list[str], force_refresh: bool
    ) -> dict[str, Any]:
        import msal

        from mailgate.identity import _msal

        if force_refresh:
            # acquire_token_for_client has no force_refresh; dropping the cached AT does it.
            for item in list(app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                app.token_cache.remove_at(item)
        result = _msal.call(app.acquire_token_for_client, self.tenant, scopes)
        return _msal.check_result(result, "client credentials")


RefreshHook = Callable[[TokenRequestError], None]
"""Told when the identity platform refuses a cached refresh token (before it is raised)."""

# Errors meaning the stored refresh token itself is no longer accepted (facts §7: 70008/700082
# expired by inactivity, 50173 revoked); others (network, throttling) say nothing about it.
_DEAD_REFRESH_ERRORS = frozenset({"invalid_grant", "interaction_required"})
_DEAD_REFRESH_CODES = frozenset({70008, 700082, 50173})


def _silent(
    app: msal.ClientApplication,
    tenant: str,
    scopes: list[str],
    username: str | None,
    force_refresh: bool,
    on_refresh_failure: RefreshHook | None = None,
) -> dict[str, Any] | None:
    from mailgate.identity import _msal

    accounts = _msal.call(app.get_accounts, tenant, username=username) if username else []
    if not accounts and not username:
        accounts = _msal.call(app.get_accounts, tenant)
    if not accounts:
        return None
    result = _msal.call(
        app.acquire_token_silent_with_error,
        tenant,
        scopes,
        accounts[0],
        force_refresh=force_refresh,
    )
    if result and "access_token" in result:
        return dict(result)
    if result and "error" in result:
        from mailgate.identity.aadsts import error_from_result

        # The refresh token was refused (revoked, expired): that is the user's answer, say it.
        error = error_from_result(result)
        dead = result.get("error") in _DEAD_REFRESH_ERRORS or error.code in _DEAD_REFRESH_CODES
        if dead and on_refresh_failure is not None:
            on_refresh_failure(error)
        raise error
    return None


@dataclass
class PasswordFlow:
    """Resource owner password credentials (ROPC): user name + password, no MFA possible."""

    tenant: str
    username: str
    password: Secret
    on_refresh_failure: RefreshHook | None = None

    def acquire(
        self, app: msal.ClientApplication, scopes: list[str], force_refresh: bool
    ) -> dict[str, Any]:
        from mailgate.identity import _msal

        cached = _silent(
            app, self.tenant, scopes, self.username, force_refresh, self.on_refresh_failure
        )
        if cached:
            return cached
        result = _msal.call(
            app.acquire_token_by_username_password,
            self.tenant,
            self.username,
            self.password.reveal(),
            scopes,
        )
        return _msal.check_result(result, "password sign-in")


class _InteractiveFlow:
    """Cache and refresh token first; the interactive sign-in only when they cannot serve."""

    tenant: str
    username: str | None
    on_refresh_failure: RefreshHook | None

    def acquire(
        self, app: msal.ClientApplication, scopes: list[str], force_refresh: bool
    ) -> dict[str, Any]:
        cached = _silent(
            app, self.tenant, scopes, self.username, force_refresh, self.on_refresh_failure
        )
        if cached:
            return cached
        return self.sign_in(app, scopes)

    def sign_in(self, app: msal.ClientApplication, scopes: list[str]) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class DeviceCodeFlow(_InteractiveFlow):
    """Device code: the person enters a code at the verification page; refresh token kept."""

    tenant: str
    username: str | None
    interaction: Interaction
    on_refresh_failure: RefreshHook | None = None

    def sign_in(self, app: msal.ClientApplication, scopes: list[str]) -> dict[str, Any]:
        from mailgate.identity import _msal

        flow = _msal.call(app.initiate_device_flow, self.tenant, scopes=scopes)
        if "user_code" not in flow:
            _msal.check_result(flow, "device code")
        self.interaction.show_device_code(flow)
        result = _msal.call(app.acquire_token_by_device_flow, self.tenant, flow)
        return _msal.check_result(result, "device code sign-in")


@dataclass
class AuthCodeFlow(_InteractiveFlow):
    """Authorization code with PKCE and a local redirect; refresh token kept."""

    tenant: str
    username: str | None
    redirect_uri: str
    interaction: Interaction
    on_refresh_failure: RefreshHook | None = None

    def sign_in(self, app: msal.ClientApplication, scopes: list[str]) -> dict[str, Any]:
        from mailgate.identity import _msal

        started: dict[str, Any] = {}

        def build(redirect_uri: str) -> str:
            with warnings.catch_warnings():
                # MSAL recommends form_post; the redirect goes to our own loopback listener
                # and the code is bound to this flow by PKCE, so query mode is kept (it is
                # what every Entra endpoint and sandbox supports).
                warnings.filterwarnings("ignore", message="response_mode=", category=UserWarning)
                started.update(
                    _msal.call(
                        app.initiate_auth_code_flow,
                        self.tenant,
                        scopes,
                        redirect_uri=redirect_uri,
                        login_hint=self.username,
                    )
                )
            return str(started["auth_uri"])

        response = self.interaction.authorize(build, self.redirect_uri)
        result = _msal.call(app.acquire_token_by_auth_code_flow, self.tenant, started, response)
        return _msal.check_result(result, "authorization code sign-in")


class TokenProvider:
    """Gets access tokens for vault credentials, through MSAL and the encrypted cache."""

    def __init__(
        self,
        vault: Vault,
        *,
        interaction: Interaction | None = None,
        sandbox_file: Path | None = None,
        alert: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        self.vault = vault
        self.caches = TokenCacheStore(vault.directory / "token-cache", vault.key)
        self.interaction = interaction
        self.sandbox_file = sandbox_file
        # Where "refresh token stopped working" alerts go: the MAILGATE_ALERT_WEBHOOK by default.
        self.alert = alert or alerts.post_from_environment

    def _refresh_failed(self, profile: CredentialProfile) -> RefreshHook:
        def report(error: TokenRequestError) -> None:
            payload = alerts.refresh_failure_alert(
                profile.name, error, tenant=profile.tenant, user=profile.username
            )
            try:
                self.alert(payload)
            except Exception:  # an alert must never hide the real error
                _log.warning("the refresh-token alert for %r could not be sent", profile.name)

        return report

    def cloud(self, profile: CredentialProfile) -> Cloud:
        return get_cloud(profile.cloud, self.sandbox_file)

    def scopes_for(self, profile: CredentialProfile, scopes: str | None) -> ScopeSet:
        if scopes is None:
            return ScopeSet(profile.scopes, profile.app_only)
        return parse_scopes(
            scopes,
            app_only=profile.app_only,
            default_resource=self.cloud(profile).exchange_resource,
        )

    def _lookup(
        self, profile: CredentialProfile, given: Mapping[SecretField, Secret] | None
    ) -> Callable[[SecretField], Secret | None]:
        """Where the credential's secrets come from: ``given`` (unsaved) or the vault."""
        if given is not None:
            return given.get
        return lambda field_name: self.vault.secret(profile.name, field_name)

    def _required(
        self,
        profile: CredentialProfile,
        lookup: Callable[[SecretField], Secret | None],
        field_name: SecretField,
        what: str,
    ) -> Secret:
        value = lookup(field_name)
        if value is None:
            raise ConfigurationError(
                f"credential {profile.name!r} has no {what}.",
                f"store it with `mailgate creds set-secret {profile.name}`.",
            )
        return value

    def _app(
        self,
        profile: CredentialProfile,
        cache: msal.SerializableTokenCache,
        secrets: Mapping[SecretField, Secret] | None = None,
    ) -> msal.ClientApplication:
        from mailgate.identity import _msal

        cloud = self.cloud(profile)
        lookup = self._lookup(profile, secrets)
        if profile.kind is CredentialKind.CERTIFICATE:
            assert profile.certificate is not None
            credential: dict[str, str] | str = {
                "private_key": self._required(
                    profile, lookup, SecretField.PRIVATE_KEY, "private key"
                ).reveal(),
                "thumbprint": profile.certificate.thumbprint_sha1,
                "public_certificate": profile.certificate.certificate_pem,
            }
            return _msal.build_confidential_app(
                cloud, profile.tenant, profile.client_id, credential, cache
            )
        client_secret = lookup(SecretField.CLIENT_SECRET)
        if client_secret is not None:
            return _msal.build_confidential_app(
                cloud, profile.tenant, profile.client_id, client_secret.reveal(), cache
            )
        if profile.kind is CredentialKind.CLIENT_SECRET:
            self._required(profile, lookup, SecretField.CLIENT_SECRET, "client secret")
        return _msal.build_public_app(cloud, profile.tenant, profile.client_id, cache)

    def _flow(
        self,
        profile: CredentialProfile,
        interaction: Interaction,
        secrets: Mapping[SecretField, Secret] | None = None,
    ) -> Flow:
        hook = self._refresh_failed(profile)
        if profile.kind.app_only:
            return ClientCredentialsFlow(profile.tenant)
        if profile.kind is CredentialKind.PASSWORD:
            assert profile.username is not None
            lookup = self._lookup(profile, secrets)
            password = self._required(profile, lookup, SecretField.PASSWORD, "password")
            return PasswordFlow(profile.tenant, profile.username, password, hook)
        if profile.flow is DelegatedFlow.DEVICE_CODE:
            return DeviceCodeFlow(profile.tenant, profile.username, interaction, hook)
        return AuthCodeFlow(
            profile.tenant,
            profile.username,
            profile.redirect_uri or "http://localhost",
            interaction,
            hook,
        )

    def acquire(
        self, name: str, scopes: str | None = None, *, force_refresh: bool = False
    ) -> AccessToken:
        """A token for credential ``name`` (its default scopes unless ``scopes`` is given).

        Warns (:class:`~mailgate.errors.SecretExpiringWarning`) when its secret or
        certificate expires within 14 days or has expired.
        """
        profile = self.vault.get(name)
        expiring = profile.expiry_warning()
        if expiring:
            warnings.warn(expiring, SecretExpiringWarning, stacklevel=2)
        scope_set = self.scopes_for(profile, scopes)
        if not force_refresh:
            cached = self._cached(profile, scope_set)
            if cached is not None:
                return AccessToken.from_result(cached, scope_set.scopes)
        from mailgate.identity.interaction import NoInteraction

        interaction = self.interaction or NoInteraction(name)
        with self.caches.open(name) as cache:
            app = self._app(profile, cache)
            flow = self._flow(profile, interaction)
            result = flow.acquire(app, list(scope_set.scopes), force_refresh)
        return AccessToken.from_result(result, scope_set.scopes)

    def _cached(self, profile: CredentialProfile, scope_set: ScopeSet) -> dict[str, Any] | None:
        """The cached token MSAL would return without a network call (see
        :mod:`mailgate.identity.cached_tokens`), read without loading MSAL; else None."""
        cache = self.caches.read(profile.name)
        if cache is None:
            return None
        host = urlsplit(self.cloud(profile).authority(profile.tenant)).hostname
        if not host:
            return None
        return cached_access_token(
            cache,
            client_id=profile.client_id,
            authority_host=host,
            tenant=profile.tenant,
            scopes=list(scope_set.scopes),
            app_only=profile.kind.app_only,
            username=profile.username,
            now=time.time(),
        )

    def sign_in(self, name: str, scopes: str | None = None) -> AccessToken:
        """Run the interactive sign-in of a delegated credential now and keep its refresh token."""
        profile = self.vault.get(name)
        if profile.kind is not CredentialKind.DELEGATED:
            raise ConfigurationError(
                f"credential {name!r} is a {profile.kind.value} credential; only delegated "
                "credentials sign in interactively.",
                f"get a token with `mailgate token {name}`.",
            )
        if self.interaction is None:
            raise InteractionRequiredError(
                "an interactive sign-in needs a terminal.", "run the command in a terminal."
            )
        scope_set = self.scopes_for(profile, scopes)
        with self.caches.open(name) as cache:
            app = self._app(profile, cache)
            flow = self._flow(profile, self.interaction)
            assert isinstance(flow, _InteractiveFlow)
            result = flow.sign_in(app, list(scope_set.scopes))
        return AccessToken.from_result(result, scope_set.scopes)

    def acquire_unsaved(
        self,
        profile: CredentialProfile,
        secrets: Mapping[SecretField, Secret] | None = None,
        scopes: str | None = None,
        *,
        interaction: Interaction | None = None,
    ) -> AccessToken:
        """A fresh token for a credential that is not (or not yet) in the vault.

        Used for an admin's one-off sign-in (nothing of it is kept) and to prove a new client
        secret before it replaces the stored one. The MSAL cache lives only for this call, so
        the identity platform is always asked.
        """
        import msal

        from mailgate.identity.interaction import NoInteraction

        scope_set = self.scopes_for(profile, scopes)
        cache = msal.SerializableTokenCache()
        app = self._app(profile, cache, secrets if secrets is not None else {})
        flow = self._flow(
            profile,
            interaction or NoInteraction(profile.name),
            secrets if secrets is not None else {},
        )
        result = flow.acquire(app, list(scope_set.scopes), False)
        return AccessToken.from_result(result, scope_set.scopes)

    async def acquire_async(
        self, name: str, scopes: str | None = None, *, force_refresh: bool = False
    ) -> AccessToken:
        """:meth:`acquire` in a worker thread: MSAL is synchronous, the mail core is not."""
        return await asyncio.to_thread(self.acquire, name, scopes, force_refresh=force_refresh)

    def forget(self, name: str) -> None:
        """Drop the cached tokens of ``name`` (used when a credential is removed)."""
        self.caches.remove(name)
