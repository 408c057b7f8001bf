"""Exchange Online's authorization rules for mail protocols, pure over the sandbox state.

Order of the checks (the first failing one is the reason)::

    token signature, exp/nbf, issuer, known tenant and app   -> invalid_token
    audience: Exchange for imap/pop/smtp/ews, Graph for graph -> wrong_audience
    the protocol's role (app-only) or scope (delegated)       -> missing_permission
    EWS turned off for the tenant                             -> ews_disabled
    app-only imap/pop/smtp: New-ServicePrincipal done with the
      enterprise application's object id                      -> service_principal_not_registered
    the mailbox exists in the token's tenant                  -> mailbox_not_found
    application access policies (app-only ews/graph only)     -> application_access_policy
    SMTP AUTH enabled on the mailbox (smtp)                   -> smtp_auth_disabled
    mailbox permission: owner or FullAccess (delegated any
      protocol; app-only imap/pop/smtp via the SP object id)  -> no_mailbox_permission

App-only EWS (``full_access_as_app``) and Graph (``Mail.*`` roles) reach every mailbox of the
tenant unless a policy says otherwise, as in Exchange Online. Graph's ``Mail.Send`` also passes
:func:`check_access`; the Graph layer checks operation-specific permissions itself through
:attr:`MailAccess.permissions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import jwt

from mailgate.sandbox.directory.resources import EXCHANGE, GRAPH

if TYPE_CHECKING:
    from mailgate.sandbox.exchange.access import SandboxMail

__all__ = [
    "GRAPH_READ",
    "GRAPH_SEND",
    "MailAccess",
    "MailAccessDenied",
    "Protocol",
    "Reason",
    "check_access",
    "check_send_as",
    "required_permission",
]

Protocol = Literal["imap", "pop", "smtp", "ews", "graph"]
Reason = Literal[
    "invalid_token",
    "wrong_audience",
    "missing_permission",
    "service_principal_not_registered",
    "no_mailbox_permission",
    "application_access_policy",
    "smtp_auth_disabled",
    "ews_disabled",
    "mailbox_not_found",
    "send_as_denied",
]

GRAPH_READ = frozenset({"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic"})
GRAPH_SEND = "Mail.Send"

_APP_ROLES: dict[str, str] = {
    "imap": "IMAP.AccessAsApp",
    "pop": "POP.AccessAsApp",
    "smtp": "SMTP.SendAsApp",
    "ews": "full_access_as_app",
}
_USER_SCOPES: dict[str, str] = {
    "imap": "IMAP.AccessAsUser.All",
    "pop": "POP.AccessAsUser.All",
    "smtp": "SMTP.Send",
    "ews": "EWS.AccessAsUser.All",
}
# Protocols for which Exchange itself maps an app-only token to a registered service principal.
_NEEDS_SERVICE_PRINCIPAL = frozenset({"imap", "pop", "smtp"})
_POLICY_PROTOCOLS = frozenset({"ews", "graph"})


class MailAccessDenied(Exception):
    """Exchange refuses the request; ``reason`` is machine-readable, ``detail`` for logs."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: Reason = reason
        self.detail = detail


@dataclass(frozen=True)
class MailAccess:
    """Who reaches which mailbox with what; the result of a successful :func:`check_access`."""

    tenant_id: str
    app_id: str
    app_only: bool
    user: str | None
    permissions: frozenset[str]
    mailbox: str
    principal_id: str = ""

    @property
    def principal(self) -> str:
        """The trustee Exchange permissions name: the UPN, or the service principal's id."""
        return self.user if self.user is not None else self.principal_id


def required_permission(protocol: Protocol, app_only: bool) -> set[str]:
    """Permissions of which the token needs at least one for ``protocol``."""
    if protocol == "graph":
        return set(GRAPH_READ)
    return {(_APP_ROLES if app_only else _USER_SCOPES)[protocol]}


def _audiences(protocol: Protocol) -> set[str]:
    resource = GRAPH if protocol == "graph" else EXCHANGE
    return {resource.app_id, *(u.lower() for u in resource.identifier_uris)}


def _claims(sandbox: SandboxMail, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            sandbox.public_key,
            algorithms=["RS256"],
            options={"verify_aud": False, "require": ["exp", "iss", "tid", "appid"]},
            leeway=0,
        )
    except jwt.PyJWTError as exc:
        raise MailAccessDenied("invalid_token", type(exc).__name__) from exc
    issuer = f"{sandbox.issuer_base.rstrip('/')}/{claims['tid']}/"
    if claims["iss"] != issuer:
        raise MailAccessDenied("invalid_token", "the token was issued by another authority")
    return claims


def check_access(sandbox: SandboxMail, token: str, protocol: Protocol, mailbox: str) -> MailAccess:
    """Decide whether ``token`` may use ``mailbox`` over ``protocol``; MailAccessDenied if not."""
    claims = _claims(sandbox, token)
    tenant = sandbox.tenant(str(claims["tid"]))
    app = tenant.app(str(claims["appid"])) if tenant else None
    if tenant is None or app is None:
        raise MailAccessDenied("invalid_token", "unknown tenant or application")
    audience = str(claims.get("aud", "")).rstrip("/").lower()
    if audience not in _audiences(protocol):
        raise MailAccessDenied("wrong_audience", f"aud {audience} is not for {protocol}")
    app_only = "scp" not in claims
    granted = frozenset(claims.get("roles", []) if app_only else str(claims.get("scp", "")).split())
    allowed = required_permission(protocol, app_only)
    if protocol == "graph":
        allowed.add(GRAPH_SEND)
    if not granted & allowed:
        raise MailAccessDenied("missing_permission", f"needs one of {sorted(allowed)}")
    exchange = tenant.exchange
    if protocol == "ews" and not exchange.ews_enabled:
        raise MailAccessDenied("ews_disabled", "EWSEnabled is False for the organization")
    principal = str(claims.get("oid", ""))
    if app_only and protocol in _NEEDS_SERVICE_PRINCIPAL:
        registered = exchange.service_principal(app.client_id)
        if registered is None or registered.object_id != principal:
            raise MailAccessDenied(
                "service_principal_not_registered",
                "no New-ServicePrincipal with the enterprise application's object id",
            )
    config = tenant.mailbox(mailbox)
    if config is None:
        raise MailAccessDenied("mailbox_not_found", f"no mailbox {mailbox} in the tenant")
    if app_only and protocol in _POLICY_PROTOCOLS:
        for policy in exchange.policies(app.client_id):
            if not policy.allows(config.address):
                raise MailAccessDenied(
                    "application_access_policy", f"{policy.access_right} blocks {config.address}"
                )
    if protocol == "smtp" and not config.smtp_auth_enabled:
        raise MailAccessDenied("smtp_auth_disabled", f"SMTP AUTH is off for {config.address}")
    user = None if app_only else str(claims.get("upn", ""))
    if user is not None:
        if not (config.is_owner(user) or config.has_full_access(user)):
            raise MailAccessDenied("no_mailbox_permission", f"{user} on {config.address}")
    elif protocol in _NEEDS_SERVICE_PRINCIPAL and not config.has_full_access(principal):
        raise MailAccessDenied("no_mailbox_permission", f"no FullAccess on {config.address}")
    return MailAccess(
        tenant_id=tenant.id,
        app_id=app.client_id,
        app_only=app_only,
        user=user,
        permissions=granted,
        mailbox=config.address,
        principal_id=principal,
    )


def check_send_as(sandbox: SandboxMail, access: MailAccess, from_address: str) -> None:
    """Allow sending as ``from_address``: the accessed mailbox itself or SendAs on it."""
    if from_address.strip().lower() == access.mailbox.lower():
        return
    found = sandbox.mailbox_config(from_address)
    if found is not None:
        tenant, config = found
        if tenant.id == access.tenant_id and (
            config.has_send_as(access.principal)
            or (access.user is not None and config.is_owner(access.user))
        ):
            return
    raise MailAccessDenied("send_as_denied", f"not allowed to send as {from_address}")
