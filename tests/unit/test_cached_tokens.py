"""The MSAL-free cache lookup answers only where MSAL would return a cached token silently."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mailgate.identity.cached_tokens import cached_access_token

NOW = 1_800_000_000
HOME = "oid.tid"
CACHE: dict[str, Any] = {
    "Account": {
        "a": {
            "home_account_id": HOME,
            "environment": "login.microsoftonline.com",
            "realm": "tid",
            "username": "Alice@Contoso.com",
            "authority_type": "MSSTS",
        }
    },
    "AccessToken": {
        "t": {
            "credential_type": "AccessToken",
            "secret": "the-token",
            "home_account_id": HOME,
            "environment": "login.microsoftonline.com",
            "client_id": "cid",
            "target": "https://outlook.office365.com/IMAP.AccessAsUser.All openid profile",
            "realm": "tid",
            "token_type": "Bearer",
            "expires_on": str(NOW + 3000),
        }
    },
}
IMAP = ["https://outlook.office365.com/IMAP.AccessAsUser.All"]


def lookup(cache: dict[str, Any], **overrides: Any) -> dict[str, Any] | None:
    arguments: dict[str, Any] = {
        "client_id": "cid",
        "authority_host": "Login.MicrosoftOnline.com",
        "tenant": "tid",
        "scopes": IMAP,
        "app_only": False,
        "username": "alice@contoso.com",
        "now": NOW,
    }
    return cached_access_token(cache, **(arguments | overrides))


def test_the_one_matching_valid_token() -> None:
    assert lookup(CACHE) == {
        "access_token": "the-token",
        "token_type": "Bearer",
        "expires_in": 3000,
        "token_source": "cache",
    }
    assert lookup(CACHE, username=None) is not None  # the only account


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "other"},
        {"tenant": "contoso.onmicrosoft.com"},  # MSAL caches the GUID: let MSAL answer
        {"authority_host": "login.microsoftonline.us"},
        {"username": "bob@contoso.com"},
        {"scopes": [*IMAP, "https://outlook.office365.com/SMTP.Send"]},
        {"scopes": []},
        {"app_only": True},  # app tokens have no account
        {"now": NOW + 3000 - 299},  # inside MSAL's five-minute margin
    ],
)
def test_anything_else_goes_to_msal(change: dict[str, Any]) -> None:
    assert lookup(CACHE, **change) is None


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("AccessToken", "t", "refresh_on"), str(NOW - 1)),  # MSAL would refresh early
        (("AccessToken", "t", "key_id"), "k"),  # bound to a key (PoP/SSH)
        (("AccessToken", "t", "ext_cache_key"), "x"),
        (("AccessToken", "t", "expires_on"), "soon"),
        (("AccessToken", "u"), None),  # a second matching token: ambiguous
        (("Account", "b"), None),  # a second account with that name: ambiguous
    ],
)
def test_unusual_entries_go_to_msal(path: tuple[str, ...], value: str | None) -> None:
    cache = copy.deepcopy(CACHE)
    if value is None:
        section, key = path
        source = "t" if section == "AccessToken" else "a"
        cache[section][key] = dict(cache[section][source], home_account_id=HOME)
        if section == "Account":
            cache[section][key]["home_account_id"] = "other.tid"
    else:
        section, key, field = path
        cache[section][key][field] = value
    assert lookup(cache) is None


def test_app_only_token_has_no_account() -> None:
    cache = copy.deepcopy(CACHE)
    del cache["Account"]
    cache["AccessToken"]["t"]["home_account_id"] = None
    cache["AccessToken"]["t"]["target"] = "https://outlook.office365.com/.default"
    found = lookup(
        cache, app_only=True, username=None, scopes=["https://outlook.office365.com/.default"]
    )
    assert found is not None and found["access_token"] == "the-token"
    assert lookup({}, app_only=True) is None
    assert lookup({"AccessToken": []}, app_only=True) is None
