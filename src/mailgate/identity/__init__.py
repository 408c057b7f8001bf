"""Identity: clouds, the seeds' input formats, MSAL flows, the token cache, AADSTS diagnoses."""

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
