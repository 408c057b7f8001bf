"""Client secret rotation through Microsoft Graph, in the only safe order.

add a new secret → prove it with a real token request → store it → remove the old one.

The old secret is never removed unless the new one has worked and is stored; when the new one
fails (or cannot be stored), it is removed again so no unused secret is left in the app. A new
secret can take a while to replicate in Entra ([U]: minutes at most in practice), so the proof
is retried for a while on the errors replication causes (7000215, 700016).

The caller supplies the I/O: a :class:`~mailgate.admin.graph_client.GraphClient`, ``prove``
(a token request with the new secret, e.g. ``TokenProvider.acquire_unsaved``) and ``store``
(the vault write). ``sleep`` and ``wait_seconds`` are arguments so tests never wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailgate.admin.apply import SECRET_DISPLAY_NAME, GraphCall
from mailgate.admin.graph_client import GraphClient
from mailgate.errors import (
    ApplicationNotFoundError,
    ClientCredentialError,
    MailgateError,
    ProtocolError,
)
from mailgate.secret import Secret
from mailgate.vault import CredentialProfile

__all__ = [
    "RotationFailedError",
    "RotationResult",
    "answer_date",
    "find_app_object_id",
    "rotate_secret",
]

_REPLICATION_CODES = frozenset({7000215, 700016})


class RotationFailedError(MailgateError):
    """The new secret could not be proved or stored; the stored (old) secret is unchanged."""


@dataclass(frozen=True)
class RotationResult:
    """What changed: the new secret's key id and expiry, and what became of the old one."""

    app_object_id: str
    new_key_id: str
    expires: str
    old_key_id: str | None
    old_removed: bool
    old_problem: str = ""


def find_app_object_id(graph: GraphClient, profile: CredentialProfile) -> str:
    """The app registration's object id: stored by ``setup apply``, else looked up by appId."""
    if profile.app_object_id:
        return profile.app_object_id
    answer = graph.send(
        GraphCall(
            "find the app registration",
            "GET",
            "/applications",
            params={"$filter": f"appId eq '{profile.client_id}'"},
        )
    )
    found = answer.get("value")
    if not isinstance(found, list) or len(found) != 1 or not found[0].get("id"):
        raise ProtocolError(
            f"no app registration with application id {profile.client_id} in tenant "
            f"{profile.tenant}.",
            "check the credential's tenant and client id (`mailgate creds show`).",
        )
    return str(found[0]["id"])


def _remove(graph: GraphClient, app_object_id: str, key_id: str, what: str) -> str:
    """Remove one secret; returns "" on success, else the reason (never raises)."""
    try:
        graph.send(
            GraphCall(
                f"remove the {what} secret",
                "POST",
                f"/applications/{app_object_id}/removePassword",
                {"keyId": key_id},
            )
        )
    except MailgateError as exc:
        return exc.message
    return ""


def _prove(
    prove: Callable[[Secret], object],
    secret: Secret,
    wait_seconds: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> None:
    deadline = clock() + wait_seconds
    delay = 2.0
    while True:
        try:
            prove(secret)
            return
        except (ClientCredentialError, ApplicationNotFoundError) as exc:
            if exc.code not in _REPLICATION_CODES or clock() + delay > deadline:
                raise
        sleep(delay)
        delay = min(delay * 2, 15.0)


def rotate_secret(
    graph: GraphClient,
    profile: CredentialProfile,
    *,
    days: int,
    now: datetime,
    prove: Callable[[Secret], object],
    store: Callable[[Secret, str, datetime, str], object],
    wait_seconds: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RotationResult:
    """Rotate ``profile``'s client secret; see the module docstring for the order."""
    app_object_id = find_app_object_id(graph, profile)
    end = now + timedelta(days=days)
    answer = graph.send(
        GraphCall(
            f"add a client secret valid for {days} days",
            "POST",
            f"/applications/{app_object_id}/addPassword",
            {
                "passwordCredential": {
                    "displayName": f"{SECRET_DISPLAY_NAME} {now:%Y-%m-%d}",
                    "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            },
            secret_answer=True,
        )
    )
    text, new_key_id = answer.get("secretText"), answer.get("keyId")
    if not isinstance(text, str) or not isinstance(new_key_id, str):
        raise ProtocolError("Graph's addPassword answer has no secretText or keyId.", "try again.")
    secret = Secret(text)
    expires = datetime.fromisoformat(
        str(answer.get("endDateTime") or end.isoformat()).replace("Z", "+00:00")
    )
    try:
        _prove(prove, secret, wait_seconds, sleep, clock)
        store(secret, new_key_id, expires, app_object_id)
    except MailgateError as exc:
        problem = _remove(graph, app_object_id, new_key_id, "new")
        undo = (
            "The new secret was removed again."
            if not problem
            else f"The new secret (key id {new_key_id}) could not be removed ({problem}): "
            "delete it under Certificates & secrets."
        )
        raise RotationFailedError(
            f"the new secret did not work or could not be stored: {exc.message} {undo} "
            f"The stored secret of {profile.name!r} is unchanged and the old secret was kept.",
            exc.remedy or "run `mailgate creds rotate-secret` again later.",
        ) from exc
    old = profile.secret_key_id
    if old is None:
        return RotationResult(app_object_id, new_key_id, answer_date(expires), None, False)
    problem = _remove(graph, app_object_id, old, "old")
    return RotationResult(
        app_object_id, new_key_id, answer_date(expires), old, not problem, problem
    )


def answer_date(value: datetime) -> str:
    """``YYYY-MM-DD`` for messages."""
    return f"{value:%Y-%m-%d}"
