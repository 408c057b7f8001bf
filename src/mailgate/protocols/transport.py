"""The one HTTP transport seam shared by the Graph and EWS adapters.

Everything that touches httpx for mail goes through here:

- :func:`create_client` builds the ``httpx.AsyncClient`` (timeouts, TLS context, User-Agent,
  bearer auth from a :data:`~mailgate.protocols.base.TokenSource`); tests hand in an
  ``httpx.MockTransport`` or talk to the sandbox.
- :func:`transport_errors` is the only place httpx exceptions become
  :class:`~mailgate.errors.TransportError` (with ``raise ... from``), so a DNS failure, a TLS
  failure or a timeout reads the same whichever API was being called.
- :func:`require_same_origin` checks a server-given link (``@odata.nextLink``/``deltaLink``)
  before it is followed with the bearer token attached;
- :func:`retry_after_seconds` reads ``Retry-After`` (seconds or an HTTP date);
  :func:`with_backoff` retries a call that raised
  :class:`~mailgate.protocols.base.ThrottledError`, waiting what the server asked (Graph
  ``Retry-After``, EWS ``BackOffMilliseconds``). Retrying stays the caller's choice.
"""

from __future__ import annotations

import asyncio
import email.policy
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from mailgate import __version__
from mailgate.errors import MailgateError, ProtocolError, TransportError
from mailgate.protocols.base import (
    SubmissionUnknownError,
    ThrottledError,
    TokenSource,
    http_status,
)

__all__ = [
    "USER_AGENT",
    "BearerAuth",
    "add_envelope_bcc",
    "create_client",
    "may_have_arrived",
    "require_same_origin",
    "retry_after_seconds",
    "stream",
    "submission",
    "transport_errors",
    "with_backoff",
]

USER_AGENT = f"mailgate/{__version__}"

T = TypeVar("T")


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer`` from a token source to every request.

    The token source caches and refreshes, so asking it per request costs nothing; the token
    lives only in the request header, never in this object's ``repr``.
    """

    def __init__(self, token_source: TokenSource) -> None:
        self._token_source = token_source

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        request.headers["Authorization"] = f"Bearer {await self._token_source()}"
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


def create_client(
    *,
    token_source: TokenSource,
    base_url: str = "",
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An ``AsyncClient`` for one mailbox connection.

    ``timeout`` bounds connecting and each read (not a whole streamed download, which may be
    large); ``ssl_context`` defaults to the system trust store.
    """
    verify: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    return httpx.AsyncClient(
        base_url=base_url,
        auth=BearerAuth(token_source),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
        verify=verify,
        transport=transport,
        follow_redirects=False,
    )


def require_same_origin(link: str, base_url: str) -> str:
    """``link`` if following it keeps the request on ``base_url``'s scheme, host and port.

    Paging and delta links come from the server's reply and are followed with the bearer token
    attached; a link to another host (a tampered reply, a proxy's rewrite) would hand that host
    a token for the mailbox. Relative links stay on the base host and pass.
    """
    try:
        url = httpx.URL(link)
    except httpx.InvalidURL as exc:
        raise ProtocolError(
            "The server sent a malformed paging link.", "report this reply."
        ) from exc
    if not url.scheme and not url.host:
        return link
    base = httpx.URL(base_url)
    # httpx drops default ports (443 for https), so :443 and no port compare equal.
    if (url.scheme or base.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        shown = f"{url.scheme or base.scheme}://{url.host}" + (f":{url.port}" if url.port else "")
        raise ProtocolError(
            f"The server sent a paging link to another host; refusing to send the token to "
            f"{shown} (the mailbox is at {base.scheme}://{base.host}"
            + (f":{base.port}" if base.port else "")
            + ").",
            "check the base URL and any proxy between mailgate and the server.",
        )
    return link


def _describe(exc: httpx.HTTPError) -> str:
    try:
        request = exc.request
    except RuntimeError:  # an error raised before a request existed
        return f"{type(exc).__name__}: {exc}"
    url = request.url
    reason = str(exc) or type(exc).__name__
    # The port too: "cannot reach https://127.0.0.1/v1.0" for a server configured on port 1
    # sends the reader to check the wrong thing. httpx leaves it None for the scheme's default.
    port = f":{url.port}" if url.port else ""
    host = f"[{url.host}]" if ":" in url.host else url.host  # an IPv6 address, as in a URL
    return f"{request.method} {url.scheme}://{host}{port}{url.path}: {reason}"


def may_have_arrived(exc: BaseException) -> bool:
    """True if ``exc`` (a mailgate error from a request) leaves open whether the server acted
    on the request: it was sent and then no answer came (read timeout, connection closed or
    broken while waiting), or a gateway answered 504 after waiting for the server behind it.
    Connect and write failures, and every other answer, say it did not."""
    if http_status(exc) == 504:
        return True
    cause = exc.__cause__
    return isinstance(cause, httpx.ReadTimeout | httpx.ReadError | httpx.RemoteProtocolError)


@contextmanager
def submission(server: str) -> Iterator[None]:
    """Errors inside the block that leave open whether ``server`` took the message (see
    :func:`may_have_arrived`) become :class:`SubmissionUnknownError`; others pass as they are."""
    try:
        yield
    except MailgateError as exc:
        if not may_have_arrived(exc):
            raise
        raise SubmissionUnknownError(
            f"{server} may have accepted the message, but its answer did not arrive: {exc.message}",
            "look for it in the mailbox's Sent Items before sending it again.",
        ) from exc


@contextmanager
def transport_errors() -> Iterator[None]:
    """Convert httpx errors raised inside the block into :class:`TransportError`.

    The URL path is kept in the message (no query: it may carry a user's search text); headers
    are never included, so no token can leak.
    """
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TransportError(
            f"The server did not answer in time ({_describe(exc)}).",
            "check the network path to the server, or raise the timeout.",
        ) from exc
    except httpx.HTTPError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ssl.SSLError) or "CERTIFICATE" in str(exc).upper():
            remedy = "the server's TLS certificate is not trusted: check the CA bundle or proxy."
        else:
            remedy = "check the host name, the network, proxies and firewalls."
        raise TransportError(f"HTTP request failed ({_describe(exc)}).", remedy) from exc


@asynccontextmanager
async def stream(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> AsyncIterator[httpx.Response]:
    """``client.stream`` with httpx errors converted, also while the body is being read."""
    with transport_errors():
        async with client.stream(method, url, **kwargs) as response:
            yield response


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); None if absent
    or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def with_backoff(
    call: Callable[[], Awaitable[T]],
    attempts: int = 3,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    *,
    default_wait: float = 1.0,
    max_wait: float = 300.0,
) -> T:
    """Run ``call``; on :class:`ThrottledError` wait what the server asked and try again.

    At most ``attempts`` calls are made; the last ThrottledError is re-raised. A server that
    gives no wait time gets ``default_wait`` doubled on each retry; any wait is capped at
    ``max_wait`` so a bogus header cannot park the caller for hours.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    fallback = default_wait
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except ThrottledError as exc:
            if attempt == attempts:
                raise
            wait = exc.retry_after if exc.retry_after > 0 else fallback
            fallback *= 2
            await sleep(min(wait, max_wait))
    raise AssertionError("unreachable")  # pragma: no cover


def add_envelope_bcc(mime: bytes, recipients: Sequence[str]) -> bytes:
    """Graph and EWS take recipients from the MIME headers, not from an envelope: envelope
    recipients missing from To/Cc/Bcc are added as a ``Bcc`` header (Exchange strips Bcc from
    what recipients see). Returns ``mime`` unchanged when nothing is missing."""
    head, sep, _ = mime.partition(b"\r\n\r\n")
    if not sep:
        head, sep, _ = mime.partition(b"\n\n")
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\n\n")
    listed = {
        address.lower()
        for _, address in getaddresses(
            [str(v) for name in ("To", "Cc", "Bcc") for v in headers.get_all(name, [])]
        )
    }
    missing = [r for r in recipients if r.lower() not in listed]
    if not missing:
        return mime
    newline = b"\r\n" if b"\r\n" in head or not head else b"\n"
    return b"Bcc: " + ", ".join(missing).encode("utf-8") + newline + mime
