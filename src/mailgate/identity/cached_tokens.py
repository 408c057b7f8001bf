"""The access token MSAL would take from its cache, found without loading MSAL. Pure functions.

Why: a cached, valid access token is the common case for a CLI run (one token serves an hour of
runs), yet asking MSAL for it costs importing MSAL and requests and, before MSAL looks at its
cache at all, an HTTPS request for the tenant's OpenID configuration (authority validation).
For a bulk ``mailgate get`` that is a tenth of a second or more; against Entra ID it is also one
more round trip that can fail while a valid token sits in the cache.

MSAL stays the only token client: this module never requests, refreshes or stores a token. It
reads the cache MSAL wrote (its documented cross-language schema) and answers only when MSAL's
silent lookup (msal 1.39, ``ClientApplication._acquire_token_silent_from_cache_and_possibly_
refresh_it``) would return a cached token without any network call, and only when that token
is unambiguous:

- the account: delegated credentials use the one account of this authority host whose user
  name is the credential's (any account when it has none); zero or several: ask MSAL;
- the access token: same client id, authority host, tenant (``realm``), account (none for
  app-only) and a ``target`` holding every requested scope, without key binding
  (``key_id``) or cache isolation (``ext_cache_key``); exactly one such entry, else ask MSAL;
- its life: at least five more minutes (MSAL's own margin) and not past ``refresh_on`` (where
  MSAL would refresh it early).

A tenant given as a domain name is cached by MSAL under its GUID, so it never matches here and
MSAL answers (correct, just without the shortcut). ``force_refresh`` always goes to MSAL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MSAL_EXPIRY_MARGIN", "cached_access_token"]

MSAL_EXPIRY_MARGIN = 5 * 60  # MSAL treats a token with less left as expired


def _entries(cache: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    section = cache.get(kind)
    if not isinstance(section, Mapping):
        return []
    return [e for e in section.values() if isinstance(e, Mapping)]


def _home_account(cache: Mapping[str, Any], environment: str, username: str | None) -> str | None:
    homes = {
        str(a.get("home_account_id"))
        for a in _entries(cache, "Account")
        if str(a.get("environment", "")).lower() == environment
        and a.get("authority_type") in ("MSSTS", "ADFS")
        and (username is None or str(a.get("username", "")).lower() == username.lower())
        and a.get("home_account_id")
    }
    return homes.pop() if len(homes) == 1 else None


def cached_access_token(
    cache: Mapping[str, Any],
    *,
    client_id: str,
    authority_host: str,
    tenant: str,
    scopes: Sequence[str],
    app_only: bool,
    username: str | None,
    now: float,
) -> dict[str, Any] | None:
    """MSAL's result for the cached token it would return, or None to let MSAL decide."""
    environment = authority_host.lower()
    home: str | None = None
    if not app_only:
        home = _home_account(cache, environment, username)
        if home is None:
            return None
    wanted = set(scopes)
    if not wanted:
        return None
    found = [
        e
        for e in _entries(cache, "AccessToken")
        if e.get("client_id") == client_id
        and str(e.get("environment", "")).lower() == environment
        and e.get("realm") == tenant
        and e.get("home_account_id") == home
        and wanted <= set(str(e.get("target", "")).split())
        and "key_id" not in e
        and "ext_cache_key" not in e
    ]
    if len(found) != 1:
        return None
    entry = found[0]
    try:
        expires_in = int(entry["expires_on"]) - now
        refresh_on = int(entry["refresh_on"]) if "refresh_on" in entry else None
        secret = str(entry["secret"])
    except (KeyError, TypeError, ValueError):
        return None
    if expires_in < MSAL_EXPIRY_MARGIN or (refresh_on is not None and refresh_on < now):
        return None
    return {
        "access_token": secret,
        "token_type": entry.get("token_type", "Bearer"),
        "expires_in": int(expires_in),
        "token_source": "cache",
    }
