"""Webhook alerts: secrets about to expire, refresh tokens that stopped working.

One JSON document per alert, POSTed to a URL the operator configures (``mailgate creds
expiring --webhook URL``, or ``MAILGATE_ALERT_WEBHOOK`` for alerts raised while getting
tokens). With ``MAILGATE_ALERT_SECRET`` set, the exact body bytes are signed with HMAC-SHA256
and the signature sent as ``X-Mailgate-Signature: sha256=<hex>``, so the receiver can check
that the alert comes from this mailgate and was not changed.

Alerts carry names, dates, days left and AADSTS codes; never a secret, token or password.
Sending is best effort with a short timeout: :func:`post_alert` never raises, it reports.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailgate.errors import InvalidInputError, TokenRequestError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ENV_SECRET",
    "ENV_WEBHOOK",
    "SIGNATURE_HEADER",
    "TIMEOUT_SECONDS",
    "AlertResult",
    "encode",
    "expiry_alert",
    "parse_webhook_url",
    "post_alert",
    "post_from_environment",
    "refresh_failure_alert",
    "sign",
]

ENV_WEBHOOK = "MAILGATE_ALERT_WEBHOOK"
ENV_SECRET = "MAILGATE_ALERT_SECRET"
SIGNATURE_HEADER = "X-Mailgate-Signature"
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class AlertResult:
    """Whether the alert was accepted (a 2xx answer) and, if not, why."""

    delivered: bool
    detail: str


def parse_webhook_url(value: str, field: str = "--webhook") -> str:
    """An ``http`` or ``https`` URL with a host, or an :class:`InvalidInputError`."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(field, "an http(s) URL such as https://alerts.example/hook", value)
    return value.strip()


def _now_text(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds")


def expiry_alert(
    rows: Sequence[Mapping[str, Any]], window_days: int, now: datetime | None = None
) -> dict[str, Any]:
    """The alert for ``creds expiring``: one entry per credential (name, kind, dates only)."""
    return {
        "source": "mailgate",
        "event": "credentials_expiring",
        "time": _now_text(now),
        "window_days": window_days,
        "credentials": [
            {
                "name": row["name"],
                "kind": row["kind"],
                "expires": row["expires"],
                "days_left": row["days_left"],
                "expired": row["expired"],
            }
            for row in rows
        ],
    }


def refresh_failure_alert(
    credential: str,
    error: TokenRequestError,
    *,
    tenant: str,
    user: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The alert for a refresh token the identity platform refused (AADSTS code and remedy)."""
    return {
        "source": "mailgate",
        "event": "refresh_token_failed",
        "time": _now_text(now),
        "credential": credential,
        "tenant": tenant,
        "user": user,
        "error": error.error,
        "code": error.code,
        "message": error.message,
        "remedy": error.remedy,
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact JSON with sorted keys."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign(body: bytes, secret: str) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def post_alert(
    url: str,
    payload: Mapping[str, Any],
    *,
    secret: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
    transport: httpx.BaseTransport | None = None,
) -> AlertResult:
    """POST ``payload`` as JSON to ``url``; never raises (the caller's work matters more)."""
    # httpx is imported on use: every command that acquires a token imports this module.
    import httpx

    body = encode(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "mailgate-alert"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return AlertResult(False, f"{exc.__class__.__name__} sending to the webhook")
    if response.is_success:
        return AlertResult(True, f"HTTP {response.status_code}")
    return AlertResult(False, f"the webhook answered HTTP {response.status_code}")


def post_from_environment(payload: Mapping[str, Any]) -> AlertResult | None:
    """Send to ``$MAILGATE_ALERT_WEBHOOK`` (signed with ``$MAILGATE_ALERT_SECRET``), if set."""
    url = os.environ.get(ENV_WEBHOOK, "").strip()
    if not url:
        return None
    try:
        parse_webhook_url(url, ENV_WEBHOOK)
    except InvalidInputError as exc:
        return AlertResult(False, exc.message)
    return post_alert(url, payload, secret=os.environ.get(ENV_SECRET) or None)
