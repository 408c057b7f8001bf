"""The sandbox's EWS subset: ``POST /EWS/Exchange.asmx`` (SOAP 1.1), served by the identity app.

Authorisation, in the order Exchange Online applies it (docs/sandbox.md lists the choices)::

    no/invalid Bearer token            HTTP 401 + x-ms-diagnostics 2000001 (2000003: audience)
    EWS turned off for the tenant      HTTP 403
    app-only token (roles):
      no ExchangeImpersonation         fault ErrorInvalidExchangeImpersonationHeaderData
                                       "ExchangeImpersonation SOAP header must be present …"
      no X-AnchorMailbox header        the same fault (Microsoft requires it with impersonation)
      no full_access_as_app role       fault ErrorImpersonateUserDenied
    delegated token (scp) with impersonation   fault "… must not exist for this type …"
    delegated token without EWS.AccessAsUser.All   HTTP 401 + x-ms-diagnostics 2000008
    unknown mailbox                    fault ErrorNonExistentMailbox
    application access policy, no FullAccess on a shared mailbox
                                       HTTP 200, ResponseCode ErrorAccessDenied
    over budget / forced busy          HTTP 500 fault ErrorServerBusy + BackOffMilliseconds

The mailbox is the impersonated one (app-only), or for delegated tokens the ``t:Mailbox``
named in a DistinguishedFolderId, else ``X-AnchorMailbox``, else the user's own. Test hooks::

    POST /_sandbox/ews/busy      {"count": 1, "back_off_ms": 500, "mailbox": null}
    POST /_sandbox/ews/throttle  {"requests_per_10_minutes": N} | {"reset": true}
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mailgate.sandbox.ews import items as ews_items
from mailgate.sandbox.ews import ops as ews_ops
from mailgate.sandbox.ews.envelope import SoapError, envelope, fault, parse_request, response
from mailgate.sandbox.ews.envelope import response_message as message
from mailgate.sandbox.ews.ops import EwsContext, Operation, mailbox_of
from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.rules import MailAccessDenied, check_access
from mailgate.sandbox.exchange.throttle import Limits, Throttle
from mailgate.sandbox.graph.delta import DeltaTokens

__all__ = ["OPERATIONS", "EwsService", "create_ews_router"]

OPERATIONS: dict[str, Operation] = {
    "GetFolder": ews_ops.get_folder,
    "FindFolder": ews_ops.find_folder,
    "CreateFolder": ews_ops.create_folder,
    "FindItem": ews_items.find_item,
    "GetItem": ews_items.get_item,
    "UpdateItem": ews_items.update_item,
    "MoveItem": ews_items.move_item,
    "CopyItem": ews_items.copy_item,
    "DeleteItem": ews_items.delete_item,
    "CreateItem": ews_items.create_item,
    "SyncFolderItems": ews_items.sync_folder_items,
    "ConvertId": ews_items.convert_id,
}

_XML = "text/xml; charset=utf-8"
_BUSY = "The server cannot service this request right now. Try again later."
_MUST_IMPERSONATE = (
    "ExchangeImpersonation SOAP header must be present for this type of OAuth token."
)
_MUST_NOT_IMPERSONATE = (
    "ExchangeImpersonation SOAP header must not exist for this type of OAuth token."
)
_DIAGNOSTICS = {
    "invalid_token": '2000001;reason="The token is invalid or has expired.";'
    'error_category="invalid_token"',
    "wrong_audience": '2000003;reason="The audience claim value is invalid for current'
    ' resource.";error_category="invalid_resource"',
    "missing_permission": '2000008;reason="The token does not grant EWS access.";'
    'error_category="invalid_grant"',
}


class EwsService:
    """State shared by EWS requests: the mail, budgets, forced busy answers, sync states."""

    def __init__(self, mail: SandboxMail, clock: Callable[[], float] | None = None) -> None:
        self.mail = mail
        self.throttle = Throttle(clock) if clock else Throttle()
        self.limits = Limits(per_window=None, concurrent=None)
        self.sync = DeltaTokens()
        self.back_off_ms = 500

    def unauthorized(self, reason: str) -> Response:
        """HTTP 401 as Exchange sends it for a token it will not take."""
        headers = {
            "x-ms-diagnostics": _DIAGNOSTICS.get(reason, _DIAGNOSTICS["invalid_token"]),
            "WWW-Authenticate": 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000", '
            'token_types="app_asserted_user_v1 service_asserted_app_v1", error="invalid_token"',
        }
        return Response(status_code=401, headers=headers)


def _fault(code: str, text: str, values: dict[str, str] | None = None) -> Response:
    return Response(fault(code, text, values), status_code=500, media_type=_XML)


def _claims(token: str) -> dict[str, Any] | None:
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims


def create_ews_router(mail: SandboxMail, service: EwsService | None = None) -> APIRouter:
    """The EWS endpoint over ``mail`` (mounted by :func:`mailgate.sandbox.app.create_app`)."""
    ews = service or EwsService(mail)
    router = APIRouter()

    def handle(request: Request, data: bytes) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        claims = _claims(token) if scheme.lower() == "bearer" and token else None
        if claims is None:
            return ews.unauthorized("invalid_token")
        try:
            soap = parse_request(data)
        except SoapError as err:
            return _fault(err.code, err.message)
        app_only = "scp" not in claims
        anchor = request.headers.get("x-anchormailbox", "").strip()
        if app_only:
            target = soap.impersonation.value if soap.impersonation else ""
        elif soap.impersonation is not None:
            target = ""
        else:
            target = mailbox_of(soap.body) or anchor or str(claims.get("upn", ""))
        try:
            access = check_access(mail, token, "ews", target)
        except MailAccessDenied as denied:
            reason = denied.reason
            if reason in ("invalid_token", "wrong_audience"):
                return ews.unauthorized(reason)
            if reason == "missing_permission":
                if app_only and soap.impersonation is not None:
                    return _fault(
                        "ErrorImpersonateUserDenied",
                        "The account does not have permission to impersonate the requested user.",
                    )
                return ews.unauthorized(reason)
            if reason == "ews_disabled":
                return Response(b"EWS is disabled for this organization.", status_code=403)
            if reason == "mailbox_not_found":
                if app_only and soap.impersonation is None:
                    return _fault("ErrorInvalidExchangeImpersonationHeaderData", _MUST_IMPERSONATE)
                if not app_only and soap.impersonation is not None:
                    return _fault(
                        "ErrorInvalidExchangeImpersonationHeaderData", _MUST_NOT_IMPERSONATE
                    )
                return _fault(
                    "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
                )
            denied_text = "Access is denied. Check credentials and try again."
            body = response(
                soap.operation, [message(soap.operation, "ErrorAccessDenied", denied_text)]
            )
            return Response(envelope([body]), media_type=_XML)
        if app_only and not anchor:
            return _fault(
                "ErrorInvalidExchangeImpersonationHeaderData",
                "The X-AnchorMailbox header must name the impersonated mailbox.",
            )
        key = Throttle.key(access.app_id, access.mailbox)
        back_off = ews.throttle.enter(key, ews.limits)
        if back_off is not None:
            return _fault("ErrorServerBusy", _BUSY, {"BackOffMilliseconds": str(back_off * 1000)})
        try:
            operation = OPERATIONS.get(soap.operation)
            if operation is None:
                return _fault(
                    "ErrorInvalidOperation",
                    f"The operation {soap.operation} is not supported by the sandbox.",
                )
            ctx = EwsContext(
                mail=mail,
                access=access,
                box=mail.store.mailbox(access.mailbox),
                request=soap.body,
                sync=ews.sync,
                now=datetime.now(UTC),
            )
            return Response(envelope(operation(ctx)), media_type=_XML)
        except SoapError as err:
            return _fault(err.code, err.message)
        finally:
            ews.throttle.leave(key)

    @router.post("/EWS/Exchange.asmx")
    @router.post("/ews/exchange.asmx", include_in_schema=False)
    async def exchange_asmx(request: Request) -> Response:
        return handle(request, await request.body())

    @router.post("/_sandbox/ews/busy")
    async def busy(request: Request) -> Response:
        data = await _json(request)
        back_off_ms = int(data.get("back_off_ms", 500))
        # Throttle counts whole seconds; ServerBusy carries milliseconds, so round up.
        ews.throttle.force(
            int(data.get("count", 1)),
            max(1, -(-back_off_ms // 1000)),
            app_id=data.get("app_id"),
            mailbox=data.get("mailbox"),
        )
        return JSONResponse({"forced": int(data.get("count", 1))})

    @router.post("/_sandbox/ews/throttle")
    async def budget(request: Request) -> Response:
        data = await _json(request)
        if data.get("reset"):
            ews.throttle.reset()
            ews.limits = Limits(per_window=None, concurrent=None)
        if "requests_per_10_minutes" in data:
            value = data["requests_per_10_minutes"]
            ews.limits = Limits(per_window=int(value) if value else None, concurrent=None)
        return JSONResponse({"requests_per_10_minutes": ews.limits.per_window})

    return router


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
