"""The thin I/O half of ``setup apply`` and ``creds rotate-secret``: Graph calls over httpx.

:class:`GraphClient` sends one :class:`~mailgate.admin.apply.GraphCall` with the admin's
token and turns Graph's error envelope into mailgate errors (403 → AuthorizationError with the
admin-role remedy, network → TransportError); :func:`drive` runs a step generator to its end;
:func:`stopped_error` words a half-done run as one readable error: what exists now and how to
finish or undo it. Nothing here prints or logs an answer: addPassword's holds a secret.
"""

from __future__ import annotations

import ssl
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any

import httpx

from mailgate.admin.apply import GraphCall, Progress
from mailgate.errors import (
    AuthenticationError,
    AuthorizationError,
    MailgateError,
    ProtocolError,
    TransportError,
)
from mailgate.identity.clouds import Cloud
from mailgate.secret import Secret

__all__ = [
    "ADMIN_ROLES_REMEDY",
    "GraphClient",
    "GraphRequestError",
    "StepFailed",
    "created_so_far",
    "drive",
    "graph_base_url",
    "stopped_error",
]

ADMIN_ROLES_REMEDY = (
    "sign in as an administrator with the Global Administrator role (or Application "
    "Administrator plus Privileged Role Administrator for the consent steps)."
)


class GraphRequestError(MailgateError):
    """Graph refused a call: HTTP ``status``, Graph's ``code`` and message."""

    def __init__(self, message: str, remedy: str, *, status: int, code: str) -> None:
        super().__init__(message, remedy)
        self.status = status
        self.code = code


def graph_base_url(cloud: Cloud) -> str:
    """``https://graph.microsoft.com/v1.0`` for the cloud; the sandbox serves it on its port."""
    if cloud.is_sandbox:
        return f"{cloud.authority_base}/v1.0"
    return f"{cloud.graph_resource}/v1.0"


def _error(call: GraphCall, response: httpx.Response) -> MailgateError:
    try:
        body = response.json()
        detail = body.get("error", {}) if isinstance(body, dict) else {}
    except ValueError:
        detail = {}
    code = str(detail.get("code") or "")
    text = str(detail.get("message") or response.reason_phrase)
    message = f"Graph refused '{call.step}': HTTP {response.status_code} {code}: {text}"
    if response.status_code == 403:
        return AuthorizationError(message, ADMIN_ROLES_REMEDY)
    if response.status_code == 401:
        return AuthenticationError(message, "sign in again; the admin token was not accepted.")
    return GraphRequestError(
        message,
        "check the values given; Graph's message above says which one it refused.",
        status=response.status_code,
        code=code,
    )


class GraphClient:
    """Sends Graph calls with one bearer token (a :class:`Secret`)."""

    def __init__(
        self,
        base_url: str,
        token: Secret,
        *,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token.reveal()}"},
            verify=verify,
            transport=transport,
            timeout=timeout,
        )

    def send(self, call: GraphCall) -> dict[str, Any]:
        """Send ``call``; its JSON answer (``{}`` for 204), or a mailgate error."""
        try:
            response = self._client.request(
                call.method,
                call.path,
                json=dict(call.body) if call.body is not None else None,
                params=dict(call.params) or None,
            )
        except httpx.HTTPError as exc:
            raise TransportError(
                f"Microsoft Graph could not be reached during '{call.step}' "
                f"({exc.__class__.__name__}).",
                "check the network and proxy settings (HTTPS_PROXY), then run the command again.",
            ) from exc
        if not response.is_success:
            raise _error(call, response)
        if not response.content:
            return {}
        try:
            data = response.json()
        except ValueError as exc:
            raise ProtocolError(
                f"Graph's answer to '{call.step}' is not JSON.", "try again."
            ) from exc
        return data if isinstance(data, dict) else {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class StepFailed(Exception):
    """Carries the failing call and the mailgate error out of :func:`drive`."""

    def __init__(self, call: GraphCall, error: MailgateError) -> None:
        super().__init__(str(error))
        self.call = call
        self.error = error


def drive(
    steps: Generator[GraphCall, Mapping[str, Any], Progress], client: GraphClient
) -> Progress:
    """Send every call the generator yields; :class:`StepFailed` names the one that failed."""
    call = next(steps)
    while True:
        try:
            answer = client.send(call)
        except MailgateError as exc:
            raise StepFailed(call, exc) from exc
        try:
            call = steps.send(answer)
        except StopIteration as done:
            result: Progress = done.value
            return result
        except MailgateError as exc:
            raise StepFailed(call, exc) from exc


def created_so_far(progress: Progress, name: str) -> list[str]:
    """Sentences naming what exists in the tenant after a partial run."""
    items: list[str] = []
    if progress.application_id:
        items.append(
            f"the application '{name}' (application id {progress.app_id}, object id "
            f"{progress.application_id})"
        )
    if progress.service_principal_id:
        items.append(f"its service principal (object id {progress.service_principal_id})")
    if progress.secret_key_id:
        items.append(f"a client secret (key id {progress.secret_key_id})")
    if progress.certificate_uploaded:
        items.append("the uploaded certificate")
    if progress.consented:
        items.append("admin consent to " + ", ".join(progress.consented))
    return items


def stopped_error(
    failure: StepFailed,
    progress: Progress,
    *,
    name: str,
    base_url: str,
    stored_credential: str | None,
) -> MailgateError:
    """One readable error for a half-done ``setup apply``: the cause, what exists, what next."""
    items = created_so_far(progress, name)
    made = "; ".join(items) if items else "nothing (the tenant is unchanged)"
    message = (
        f"setup apply stopped at '{failure.call.step}': {failure.error.message} "
        f"Created so far: {made}."
    )
    if stored_credential:
        message += f" The secret is stored in credential '{stored_credential}'."
    remedy = failure.error.remedy
    if progress.application_id:
        remedy = (
            f"{remedy} Then finish the remaining steps by hand (`mailgate setup plan ... "
            f"--client-id {progress.app_id} --sp-object-id "
            f"{progress.service_principal_id or '<enterprise-app-object-id>'}` lists them), or "
            f"undo: delete the app registration in the Entra admin center or with "
            f"DELETE {base_url.rstrip('/')}/applications/{progress.application_id}, and run "
            "`mailgate setup apply` again."
        )
    error = type(failure.error)(message, remedy) if _simple(failure.error) else None
    return error or MailgateError(message, remedy)


def _simple(error: MailgateError) -> bool:
    # Error classes whose constructor is (message, remedy); others are re-created as the base.
    return type(error) in (AuthorizationError, AuthenticationError, TransportError, ProtocolError)
