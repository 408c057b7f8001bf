"""Pure parsing and checks of OAuth request parameters: resources, scopes, PKCE, redirect URIs.

Scopes name a resource by one of its identifier URIs (or its app id) followed by ``/`` and a
permission, e.g. ``https://outlook.office.com/IMAP.AccessAsUser.All`` or
``https://outlook.office365.com/.default``. A bare permission (``User.Read``) means Microsoft
Graph, as on the real platform. ``openid``, ``profile``, ``email`` and ``offline_access`` are
OpenID Connect scopes and name no resource. One request may target one resource only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

from mailgate.sandbox.directory.resources import GRAPH, OIDC_SCOPES, RESOURCES, Resource
from mailgate.sandbox.entra.aadsts import aadsts

__all__ = [
    "ScopeRequest",
    "granted_permissions",
    "parse_scopes",
    "permissions_of",
    "pkce_matches",
    "redirect_uri_matches",
    "response_scope",
]


@dataclass(frozen=True)
class ScopeRequest:
    """A parsed ``scope`` parameter.

    ``audience`` is the resource identifier exactly as the client wrote it (tokens carry it in
    ``aud``); ``permissions`` keeps the client's spelling, ``.default`` included.
    """

    resource: Resource | None
    audience: str
    permissions: tuple[str, ...]
    oidc: frozenset[str]

    @property
    def is_default(self) -> bool:
        """True for ``<resource>/.default``: everything consented for that resource."""
        return self.permissions == (".default",)


def _split(scope: str) -> tuple[str, str]:
    if "/" not in scope:
        return GRAPH.identifier_uris[0], scope
    prefix, _, permission = scope.rpartition("/")
    return prefix, permission


def parse_scopes(scope: str, tenant_name: str = "") -> ScopeRequest:
    """Parse a space-separated scope string; raise AADSTS70011/500011/900144 when unusable."""
    items = scope.split()
    if not items:
        raise aadsts(900144, field="scope")
    oidc = frozenset(s.lower() for s in items if s.lower() in OIDC_SCOPES)
    resource: Resource | None = None
    audience = ""
    permissions: list[str] = []
    for item in items:
        if item.lower() in OIDC_SCOPES:
            continue
        prefix, permission = _split(item)
        if not permission:
            raise aadsts(70011, reason=f"The scope '{item}' does not name a permission.")
        found = next((r for r in RESOURCES.values() if r.matches(prefix)), None)
        if found is None:
            raise aadsts(500011, resource=prefix, tenant_name=tenant_name)
        if resource is not None and found is not resource:
            raise aadsts(
                70011,
                reason=f"The scope '{scope}' is not valid: it names more than one resource.",
            )
        resource, audience = found, audience or prefix.rstrip("/")
        permissions.append(permission)
    if ".default" in permissions and len(permissions) > 1:
        raise aadsts(
            70011,
            reason=f"The scope '{scope}' is not valid: '.default' cannot be combined with"
            " other permissions of the same resource.",
        )
    return ScopeRequest(resource, audience, tuple(permissions), oidc)


def permissions_of(entries: list[str], resource: Resource) -> list[str]:
    """Permission names of ``resource`` in a tenant-file list like ``["exchange:SMTP.Send"]``."""
    prefix = f"{resource.key}:"
    return [e[len(prefix) :] for e in entries if e.startswith(prefix)]


def granted_permissions(request: ScopeRequest, consented: list[str]) -> list[str] | None:
    """Delegated permissions to put in ``scp``, or None when consent is missing (AADSTS65001).

    ``consented`` are the permission names of the request's resource that have consent.
    """
    if request.is_default:
        return list(consented) or None
    by_lower = {c.lower(): c for c in consented}
    granted = [by_lower.get(p.lower()) for p in request.permissions]
    if any(g is None for g in granted):
        return None
    return [g for g in granted if g is not None]


def response_scope(request: ScopeRequest, granted: list[str]) -> str:
    """The ``scope`` field of a user-flow token response: granted scopes, then OIDC ones."""
    names = [f"{request.audience}/{g}" for g in granted]
    names += sorted(request.oidc)
    return " ".join(names)


def pkce_matches(challenge: str, method: str, verifier: str) -> bool:
    """RFC 7636 check; ``plain`` is assumed when the method was left out, as Entra does."""
    if method.upper() == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    return hmac.compare_digest(computed, challenge)


_LOOPBACK = {"localhost", "127.0.0.1", "[::1]", "::1"}


def redirect_uri_matches(registered: list[str], given: str) -> bool:
    """Exact match, except that a loopback ``http`` URI matches any port, as Entra allows."""
    want = urlsplit(given)
    for uri in registered:
        have = urlsplit(uri)
        if uri == given:
            return True
        loopback = have.scheme == "http" and (have.hostname or "") in _LOOPBACK
        if (
            loopback
            and want.scheme == "http"
            and want.hostname == have.hostname
            and (want.path or "/") == (have.path or "/")
            and want.query == have.query
        ):
            return True
    return False
