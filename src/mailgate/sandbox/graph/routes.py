"""The sandbox's Microsoft Graph mail subset (``/v1.0``), served by the identity platform's app.

Routes (``{u}`` is a UPN, a mailbox address, a user object id, or ``me`` for delegated tokens;
``{f}`` a folder id or well-known name: inbox, deleteditems, sentitems, drafts, junkemail,
archive, msgfolderroot)::

    GET  /v1.0/users/{u}/mailFolders                 POST same (create)
    GET  /v1.0/users/{u}/mailFolders/{f}             GET/POST …/{f}/childFolders
    GET  /v1.0/users/{u}/mailFolders/{f}/messages    POST same (create from JSON)
    GET  /v1.0/users/{u}/mailFolders/{f}/messages/delta
    GET  /v1.0/users/{u}/messages                    GET …/messages/{id}   …/{id}/$value
    PATCH/DELETE /v1.0/users/{u}/messages/{id}       POST …/{id}/move|copy|permanentDelete
    POST /v1.0/users/{u}/sendMail                    JSON, or base64 MIME as text/plain
    POST /_sandbox/graph/throttle   {"count", "retry_after", "app_id", "mailbox"} or
                                    {"requests_per_10_minutes", "concurrent_requests"} or
                                    {"reset": true}
    POST /_sandbox/graph/delta/expire               every delta token becomes 410 Gone
    POST /_sandbox/lost-answers     {"protocol": "smtp"|"graph", "count"}: the next submissions
                                    are delivered, then SMTP hangs up before its 250 and Graph
                                    answers 504 (a reply lost after the server took the mail)

Every request is authorised with :func:`~mailgate.sandbox.exchange.rules.check_access` and
counted per (app id, mailbox) by :class:`~mailgate.sandbox.exchange.throttle.Throttle`. The
operations live in :mod:`mailgate.sandbox.graph.ops` and
:mod:`~mailgate.sandbox.graph.sync`; this module only does HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.rules import MailAccessDenied, check_access
from mailgate.sandbox.exchange.throttle import Limits, Throttle
from mailgate.sandbox.graph import ops as graph_ops
from mailgate.sandbox.graph import sync as graph_sync
from mailgate.sandbox.graph.delta import DeltaTokens
from mailgate.sandbox.graph.ops import GraphContext, GraphError
from mailgate.sandbox.graph.query import QueryError
from mailgate.sandbox.graph.resources import error_body

__all__ = ["GraphService", "Operation", "create_graph_router"]

_DENIED = "Access is denied. Check credentials and try again."
# (status, code, message) per reason of exchange.rules.
_REFUSALS: dict[str, tuple[int, str, str]] = {
    "invalid_token": (401, "InvalidAuthenticationToken", "Access token validation failure."),
    "wrong_audience": (
        401,
        "InvalidAuthenticationToken",
        "Access token validation failure. Invalid audience.",
    ),
    "missing_permission": (403, "ErrorAccessDenied", _DENIED),
    "no_mailbox_permission": (403, "ErrorAccessDenied", _DENIED),
    "application_access_policy": (
        403,
        "ErrorAccessDenied",
        "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly"
        " AccessPolicy settings.",
    ),
    "mailbox_not_found": (404, "ErrorInvalidUser", "The requested user '{user}' is invalid."),
    "send_as_denied": (
        403,
        "ErrorSendAsDenied",
        "The user account which was used to submit this request does not have the right to"
        " send mail on behalf of the specified sending account., Cannot submit message.",
    ),
}
_WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"'
)


class GraphService:
    """State shared by the Graph routes: the mail, throttle books, delta tokens, overrides."""

    def __init__(
        self,
        mail: SandboxMail,
        throttle: Throttle | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.mail = mail
        self.throttle = throttle or Throttle()
        self.delta = DeltaTokens()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.overrides: dict[str, int | None] = {}

    def limits(self, mailbox: str) -> Limits:
        """The tenant's Graph limits for ``mailbox``, unless a test hook overrode them."""
        settings = self.mail.exchange(mailbox)
        return Limits(
            per_window=self.overrides.get(
                "requests_per_10_minutes", settings.graph_requests_per_10_minutes
            ),
            concurrent=self.overrides.get(
                "concurrent_requests", settings.graph_concurrent_requests
            ),
        )

    def resolve_user(self, segment: str, token: str) -> str:
        """The mailbox address a ``users/{segment}`` names (object ids map to UPNs)."""
        if segment.lower() == "me":
            try:
                claims = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                return segment  # check_access reports the bad token
            if "scp" not in claims:
                raise GraphError(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            return str(claims.get("upn", segment))
        for tenant in self.mail.directory.tenants:
            for user in tenant.users:
                if user.object_id.lower() == segment.lower():
                    return str(user.upn)
        return segment

    def error(self, request: Request, status: int, code: str, message: str) -> JSONResponse:
        """Graph's error envelope with correlation headers."""
        request_id = str(uuid.uuid4())
        client_id = request.headers.get("client-request-id", "")
        headers = {"request-id": request_id, "client-request-id": client_id or request_id}
        if status == 401:
            headers["WWW-Authenticate"] = _WWW_AUTHENTICATE
        body = error_body(code, message, request_id, client_id, self.clock())
        return JSONResponse(body, status_code=status, headers=headers)


Operation = Callable[[GraphContext], Response]


def create_graph_router(mail: SandboxMail, service: GraphService | None = None) -> APIRouter:
    """The Graph routes over ``mail`` (mounted by :func:`mailgate.sandbox.app.create_app`)."""
    graph = service or GraphService(mail)
    router = APIRouter()

    async def run(
        request: Request, user: str, operation: Operation, path: dict[str, str], write: bool
    ) -> Response:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return graph.error(request, 401, "InvalidAuthenticationToken", "Access token is empty.")
        token = token.strip()
        try:
            address = graph.resolve_user(user, token)
            access = check_access(mail, token, "graph", address)
        except GraphError as err:
            return graph.error(request, err.status, err.code, err.message)
        except MailAccessDenied as denied:
            status, code, message = _REFUSALS.get(
                denied.reason, (403, "ErrorAccessDenied", _DENIED)
            )
            return graph.error(request, status, code, message.format(user=user))
        if write and "Mail.ReadWrite" not in access.permissions:
            return graph.error(request, 403, "ErrorAccessDenied", _DENIED)
        key = Throttle.key(access.app_id, access.mailbox)
        retry_after = graph.throttle.enter(key, graph.limits(access.mailbox))
        if retry_after is not None:
            response = graph.error(
                request,
                429,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit or request limit.",
            )
            response.headers["Retry-After"] = str(retry_after)
            return response
        try:
            ctx = GraphContext(
                mail=mail,
                access=access,
                box=mail.store.mailbox(access.mailbox),
                base_url=str(request.base_url).rstrip("/"),
                url=str(request.url).split("?")[0],
                params=list(request.query_params.multi_items()),
                path=path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.body(),
                delta=graph.delta,
                now=graph.clock(),
            )
            return operation(ctx)
        except GraphError as err:
            return graph.error(request, err.status, err.code, err.message)
        except QueryError as err:
            return graph.error(request, 400, err.code, err.message)
        finally:
            graph.throttle.leave(key)

    def route(method: str, path: str, operation: Operation, write: bool = False) -> None:
        async def endpoint(request: Request) -> Response:
            params = dict(request.path_params)
            return await run(request, params.pop("user", "me"), operation, params, write)

        router.add_api_route(f"/v1.0/users/{{user}}{path}", endpoint, methods=[method])
        router.add_api_route(f"/v1.0/me{path}", endpoint, methods=[method])

    route("GET", "/mailFolders", graph_ops.list_folders)
    route("POST", "/mailFolders", graph_ops.create_folder, write=True)
    route("GET", "/mailFolders/{folder}", graph_ops.get_folder)
    route("GET", "/mailFolders/{folder}/childFolders", graph_ops.list_folders)
    route("POST", "/mailFolders/{folder}/childFolders", graph_ops.create_folder, write=True)
    route("GET", "/mailFolders/{folder}/messages/delta", graph_sync.delta)
    route("GET", "/mailFolders/{folder}/messages", graph_ops.list_messages)
    route("POST", "/mailFolders/{folder}/messages", graph_ops.create_message, write=True)
    route("GET", "/messages", graph_ops.list_messages)
    route("GET", "/messages/{message}", graph_ops.get_message)
    route("GET", "/messages/{message}/$value", graph_ops.get_mime)
    route("PATCH", "/messages/{message}", graph_ops.update_message, write=True)
    route("DELETE", "/messages/{message}", graph_ops.delete_message, write=True)
    route("POST", "/messages/{message}/move", graph_ops.move_message, write=True)
    route("POST", "/messages/{message}/copy", graph_ops.copy_message, write=True)
    route("POST", "/messages/{message}/permanentDelete", graph_ops.purge_message, write=True)
    route("POST", "/sendMail", graph_ops.send_mail)

    @router.post("/_sandbox/graph/throttle")
    async def throttle_hook(request: Request) -> Response:
        data = await _json(request)
        if data.get("reset"):
            graph.throttle.reset()
            graph.overrides.clear()
        for name in ("requests_per_10_minutes", "concurrent_requests"):
            if name in data:
                value = data[name]
                graph.overrides[name] = int(value) if value is not None else None
        if int(data.get("count", 0)) > 0:
            graph.throttle.force(
                int(data["count"]),
                int(data.get("retry_after", 5)),
                app_id=data.get("app_id"),
                mailbox=data.get("mailbox"),
            )
        return JSONResponse({"overrides": graph.overrides})

    @router.post("/_sandbox/lost-answers")
    async def lost_answers(request: Request) -> Response:
        data = await _json(request)
        protocol, count = str(data.get("protocol", "")), data.get("count", 1)
        if protocol not in ("smtp", "graph") or not isinstance(count, int):
            return JSONResponse(
                {"error": 'expected {"protocol": "smtp" or "graph", "count": N}'}, status_code=400
            )
        mail.lose_answers(protocol, count)
        return JSONResponse({"protocol": protocol, "count": count})

    @router.post("/_sandbox/graph/delta/expire")
    async def expire_delta() -> Response:
        return JSONResponse({"expired": graph.delta.expire_all()})

    return router


async def _json(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
