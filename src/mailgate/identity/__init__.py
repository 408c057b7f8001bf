"""Identity: clouds, the seeds' input formats, MSAL flows, the token cache, AADSTS diagnoses.

The names below load on first use (PEP 562): ``import mailgate.identity`` alone must not pull
in MSAL, requests and an HTTP server, because every CLI command passes through here and most
need none of them (a ``get`` served by a cached token never starts a sign-in).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailgate.identity.aadsts import CATALOGUE, error_from_result
    from mailgate.identity.clouds import CLOUDS, Cloud, get_cloud
    from mailgate.identity.inputs import (
        AuthorityEndpoint,
        ScopeSet,
        parse_authority_endpoint,
        parse_guid,
        parse_redirect_uri,
        parse_scopes,
        parse_tenant,
    )
    from mailgate.identity.interaction import ConsoleInteraction, Interaction, NoInteraction
    from mailgate.identity.tokens import AccessToken, TokenProvider, decode_claims

_HOMES = {
    "CATALOGUE": "aadsts",
    "error_from_result": "aadsts",
    "CLOUDS": "clouds",
    "Cloud": "clouds",
    "get_cloud": "clouds",
    "AuthorityEndpoint": "inputs",
    "ScopeSet": "inputs",
    "parse_authority_endpoint": "inputs",
    "parse_guid": "inputs",
    "parse_redirect_uri": "inputs",
    "parse_scopes": "inputs",
    "parse_tenant": "inputs",
    "ConsoleInteraction": "interaction",
    "Interaction": "interaction",
    "NoInteraction": "interaction",
    "AccessToken": "tokens",
    "TokenProvider": "tokens",
    "decode_claims": "tokens",
}

__all__ = [
    "CATALOGUE",
    "CLOUDS",
    "AccessToken",
    "AuthorityEndpoint",
    "Cloud",
    "ConsoleInteraction",
    "Interaction",
    "NoInteraction",
    "ScopeSet",
    "TokenProvider",
    "decode_claims",
    "error_from_result",
    "get_cloud",
    "parse_authority_endpoint",
    "parse_guid",
    "parse_redirect_uri",
    "parse_scopes",
    "parse_tenant",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
