"""The first-party APIs every sandbox tenant holds as resource service principals: Microsoft
Graph and Office 365 Exchange Online (app ids and identifier URIs as on the real platform),
and the OpenID Connect scopes that name no resource.

Data only, at the bottom of the sandbox: the directory lists these service principals, the
identity platform parses scopes against them, Exchange's rules tell their audiences apart.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EXCHANGE", "GRAPH", "OIDC_SCOPES", "RESOURCES", "Resource"]

OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


@dataclass(frozen=True)
class Resource:
    """A first-party API (resource service principal) that every sandbox tenant holds."""

    key: str
    name: str
    app_id: str
    identifier_uris: tuple[str, ...]

    def matches(self, prefix: str) -> bool:
        """True if ``prefix`` (the part of a scope before the permission) names this resource."""
        wanted = prefix.rstrip("/").lower()
        return wanted == self.app_id or wanted in (u.lower() for u in self.identifier_uris)


EXCHANGE = Resource(
    "exchange",
    "Office 365 Exchange Online",
    "00000002-0000-0ff1-ce00-000000000000",
    ("https://outlook.office365.com", "https://outlook.office.com", "https://ps.outlook.com"),
)
GRAPH = Resource(
    "graph",
    "Microsoft Graph",
    "00000003-0000-0000-c000-000000000000",
    ("https://graph.microsoft.com",),
)
RESOURCES: dict[str, Resource] = {EXCHANGE.key: EXCHANGE, GRAPH.key: GRAPH}
