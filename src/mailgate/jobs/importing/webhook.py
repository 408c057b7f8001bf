"""Webhook delivery of imported messages: the JSON payload, its signature, the retry rule.

Pure functions (no network) plus :class:`WebhookClient`, the thin httpx part.

- **Payload** (:func:`webhook_payload`): the message's identity (job, mailbox, folder, item id,
  Message-ID, sha256), its headers in order, the text and HTML bodies, and each attachment either
  inline as base64 or, when the import also saves to a directory, as the path of the saved file.
- **Signature**: ``X-Mailgate-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`` with
  the job's webhook secret; receivers verify with :func:`verify_signature` (constant time).
- **Idempotency**: ``Idempotency-Key`` is stable per message (see
  :func:`mailgate.jobs.importing.keys.idempotency_key`), so a redelivery after a crash carries the
  same key and the receiver can drop it.
- **Retries**: 2xx is delivered. 408, 425, 429, 5xx and network failures are retried a few times
  with backoff (``Retry-After`` honoured up to a cap); any other status is final at once (a 400 or
  401 will not change by asking again). A message that is not delivered is marked failed and is
  not post-processed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import hashlib
import hmac
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from mailgate.errors import InvalidInputError
from mailgate.secret import Secret

__all__ = [
    "BACKOFF_SECONDS",
    "IDEMPOTENCY_HEADER",
    "MAX_ATTEMPTS",
    "MAX_RETRY_AFTER",
    "RETRYABLE",
    "SIGNATURE_HEADER",
    "MessageIdentity",
    "WebhookClient",
    "WebhookResult",
    "check_webhook_url",
    "retry_delay",
    "shown_url",
    "sign",
    "verify_signature",
    "webhook_payload",
]

SIGNATURE_HEADER = "X-Mailgate-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
RETRYABLE = frozenset({408, 425, 429})
MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
MAX_RETRY_AFTER = 30.0


@dataclass(frozen=True)
class MessageIdentity:
    """Where a message came from and how it is recognised again."""

    job: str
    mailbox: str
    folder: str
    uidvalidity: int
    item_id: str
    idempotency_key: str
    sha256: str
    size: int


def sign(body: bytes, secret: Secret) -> str:
    """The signature header value: ``sha256=`` + hex HMAC-SHA256 of ``body``."""
    digest = hmac.new(secret.reveal().encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(body: bytes, secret: Secret, header: str) -> bool:
    """True if ``header`` is the signature of ``body`` (what a receiver checks)."""
    return hmac.compare_digest(sign(body, secret), header.strip())


def shown_url(url: str) -> str:
    """``url`` fit to print or store: no user info and no query (Azure Functions put their key
    in ``?code=``, others in ``user:token@``)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "(an unparsable URL)"
    hidden = "?…" if parsed.query else ""
    return str(parsed.copy_with(userinfo=b"", query=None, fragment=None)) + hidden


def check_webhook_url(url: str) -> str:
    """An http(s) URL with a host; plain http only to loopback (the body carries mail)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidInputError("--webhook", "an https:// URL", shown_url(url)) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidInputError("--webhook", "an https:// URL", shown_url(url))
    if parsed.scheme == "http" and parsed.host not in ("127.0.0.1", "localhost", "::1"):
        raise InvalidInputError(
            "--webhook",
            "an https:// URL (plain http only to 127.0.0.1 or localhost)",
            shown_url(url),
        )
    return url


def _text(part: EmailMessage | None) -> str | None:
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # unknown charset, broken encoding
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    return content if isinstance(content, str) else None


def webhook_payload(
    raw: bytes,
    identity: MessageIdentity,
    *,
    eml_path: Path | None = None,
    attachment_paths: Sequence[Path] | None = None,
) -> dict[str, Any]:
    """The JSON document POSTed for one message (schema in docs/import.md).

    With ``attachment_paths`` (the import also saved to a directory) attachments are listed by
    path; otherwise each carries its bytes as ``content_base64``.
    """
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    headers = [[name, str(value)] for name, value in message.items()]
    problems: list[str] = []
    try:
        text = _text(message.get_body(("plain",)))  # type: ignore[arg-type]
        html = _text(message.get_body(("html",)))  # type: ignore[arg-type]
    except Exception as exc:  # hostile MIME: the message still goes out, with the problem named
        text = html = None
        problems.append(f"bodies could not be read ({exc.__class__.__name__})")
    attachments: list[dict[str, Any]] = []
    if attachment_paths is not None:
        attachments = [
            {"filename": p.name, "path": str(p), "size": p.stat().st_size} for p in attachment_paths
        ]
    else:
        try:
            parts = list(message.iter_attachments())
        except Exception as exc:
            parts = []
            problems.append(f"attachments could not be read ({exc.__class__.__name__})")
        for index, part in enumerate(parts, start=1):
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                continue
            attachments.append(
                {
                    "filename": part.get_filename() or f"attachment-{index}",
                    "content_type": part.get_content_type(),
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "content_base64": base64.b64encode(data).decode("ascii"),
                }
            )
    return {
        "idempotency_key": identity.idempotency_key,
        "job": identity.job,
        "mailbox": identity.mailbox,
        "folder": identity.folder,
        "uidvalidity": identity.uidvalidity,
        "item_id": identity.item_id,
        "message_id": message.get("Message-ID"),
        "sha256": identity.sha256,
        "size": identity.size,
        "subject": message.get("Subject"),
        "from": message.get("From"),
        "to": message.get("To"),
        "cc": message.get("Cc"),
        "date": message.get("Date"),
        "headers": headers,
        "text": text,
        "html": html,
        "attachments": attachments,
        "eml_path": str(eml_path) if eml_path else None,
        "problems": problems,
    }


def retry_delay(status: int | None, attempt: int, retry_after: str | None) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None when not to retry.

    ``status`` None is a network failure. ``attempt`` counts from 1.
    """
    if status is not None and (200 <= status < 300):
        return None
    if status is not None and status < 500 and status not in RETRYABLE:
        return None
    if attempt >= MAX_ATTEMPTS:
        return None
    delay: float = BACKOFF_SECONDS * 2 ** (attempt - 1)
    if retry_after:
        with contextlib.suppress(ValueError):  # an HTTP date: keep our own backoff
            delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER))
    return delay


@dataclass(frozen=True)
class WebhookResult:
    """How a delivery ended: ``ok`` on 2xx; otherwise the last status or error text."""

    ok: bool
    status: int | None
    attempts: int
    error: str = ""


class WebhookClient:
    """POSTs signed payloads with an idempotency key; the only network code here."""

    def __init__(
        self,
        url: str,
        secret: Secret | None,
        *,
        timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = check_webhook_url(url)
        self.secret = secret
        self.client = httpx.AsyncClient(
            timeout=timeout,
            verify=ssl_context or True,
            transport=transport,
            headers={"User-Agent": "mailgate-import"},
        )

    async def deliver(self, payload: dict[str, Any], key: str) -> WebhookResult:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: key}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, self.secret)
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            retry_after: str | None = None
            try:
                response = await self.client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                # The URL only: no header (the signature) and no body goes into the error.
                error = f"{exc.__class__.__name__} posting to {shown_url(self.url)}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return WebhookResult(True, status, attempt)
                retry_after = response.headers.get("Retry-After")
                error = f"HTTP {status} from {shown_url(self.url)}"
            delay = retry_delay(status, attempt, retry_after)
            if delay is None:
                return WebhookResult(False, status, attempt, error)
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        await self.client.aclose()
