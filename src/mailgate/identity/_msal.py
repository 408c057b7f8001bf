"""The one place MSAL is called and its failures become mailgate errors.

MSAL reports token errors as result dicts and raises ``ValueError`` when tenant discovery fails
(an unknown tenant answers the discovery request with HTTP 400 and an AADSTS body, which MSAL
folds into a generic message; the original is kept as the exception's context), ``requests``
exceptions for network trouble and ``MsalServiceError("HTTP Error: 503")`` for a 5xx answer.
Everything leaves here as a :mod:`mailgate.errors` type.

Transient answers (429, 500, 502, 503, 504) are retried by the HTTP session MSAL is given
(:class:`IdentityHttpSession`), below MSAL: there the status and ``Retry-After`` are visible,
and MSAL's own throttle cache, which replays a 5xx to every call for its ``Retry-After`` (or
5 s, 60 s for public clients), only ever sees the last answer. See :data:`RETRY` for the bounds.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msal
import requests

from mailgate.errors import (
    AuthenticationError,
    ConfigurationError,
    IdentityUnavailableError,
    MailgateError,
    TenantNotFoundError,
    TransportError,
)
from mailgate.identity.aadsts import error_from_result
from mailgate.identity.clouds import Cloud

__all__ = [
    "RETRY",
    "IdentityHttpSession",
    "RetryPolicy",
    "SandboxHttpSession",
    "build_confidential_app",
    "build_public_app",
    "call",
    "check_result",
    "msal_errors",
]

_JSON_IN_TEXT = re.compile(r"\{.*\}", re.S)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a transient answer of the identity platform is retried.

    ``attempts`` requests in all; between them ``first_delay`` doubling, or the server's
    ``Retry-After`` when it sends one. A wait that would pass ``max_wait`` (one wait) or
    ``total_wait`` (all waits of one request) is not made: the answer is reported instead, as
    retrying sooner than Retry-After asks would only be refused again.
    """

    attempts: int = 3
    first_delay: float = 0.5
    max_wait: float = 10.0
    total_wait: float = 15.0


# Small on purpose: a command should fail within seconds, not hang while Microsoft recovers;
# schedulers (cron, the outbox worker) retry the whole run later.
RETRY = RetryPolicy()

_TRANSIENT = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class _Failure:
    """The last transient answer a session gave up on, for the error MSAL's exception becomes."""

    status: int
    path: str
    attempts: int
    waited: float
    detail: str
    retry_after: float | None


# MSAL runs in the caller's thread (TokenProvider.acquire_async uses a worker thread per call),
# so the failure its exception stands for is the one this thread's session recorded last.
_last = threading.local()


def _retry_after(response: requests.Response) -> float | None:
    # The one Retry-After reader (seconds or an HTTP date); imported here, on a failed request
    # only, because it lives beside httpx, which a token from the cache never needs.
    from mailgate.protocols.transport import retry_after_seconds

    return retry_after_seconds(response.headers.get("Retry-After"))


def _detail(response: requests.Response) -> str:
    """Entra's error description from a JSON body (first line), or the kind of body."""
    try:
        body = response.json()
    except ValueError:
        kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        return "an HTML error page" if kind == "text/html" else "a non-JSON body"
    if isinstance(body, dict) and body.get("error_description"):
        return str(body["error_description"]).splitlines()[0].strip()
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    return "a JSON body without an error"


class IdentityHttpSession(requests.Session):
    """The requests session MSAL sends through: MSAL's defaults plus bounded retries.

    Like the session MSAL builds itself (msal 1.39 ``ClientApplication.__init__``): a 30 s
    timeout and one retry of a failed connection. Added: transient answers are retried after
    :data:`RETRY`'s waits, honouring ``Retry-After``.
    """

    def __init__(self, policy: RetryPolicy = RETRY) -> None:
        super().__init__()
        self.policy = policy
        adapter = requests.adapters.HTTPAdapter(max_retries=1)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send the request; retry a transient answer within the policy's bounds."""
        kwargs.setdefault("timeout", 30)
        verb = method.decode() if isinstance(method, bytes) else method
        policy, waited = self.policy, 0.0
        for attempt in range(1, policy.attempts + 1):
            response = super().request(verb, url, *args, **kwargs)
            if response.status_code not in _TRANSIENT:
                _last.failure = None
                return response
            asked = _retry_after(response)
            wait = asked if asked is not None else policy.first_delay * 2 ** (attempt - 1)
            last = attempt == policy.attempts
            if last or wait > policy.max_wait or waited + wait > policy.total_wait:
                text = url.decode() if isinstance(url, bytes) else url
                _last.failure = _Failure(
                    response.status_code,
                    urlsplit(text).path,
                    attempt,
                    waited,
                    _detail(response),
                    asked,
                )
                return response
            response.close()
            time.sleep(wait)
            waited += wait
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover


class SandboxHttpSession(IdentityHttpSession):
    """A requests session for MSAL's ``http_client=`` that can reach the sandbox.

    It fixes two things an unmodified MSAL meets against a server on a non-default port:
    ``verify`` is pinned so ``REQUESTS_CA_BUNDLE`` cannot replace it (requests lets that
    variable win over ``Session.verify``, and Debian images set it), and URLs for the sandbox
    host *without* a port are sent to the sandbox's port, because MSAL's user realm discovery
    before ROPC builds its URL from the authority's host name only (msal 1.39
    ``Authority.user_realm_discovery``).
    """

    def __init__(self, ca_file: str | None, base_url: str, policy: RetryPolicy = RETRY) -> None:
        super().__init__(policy)
        self.verify = ca_file or True
        parts = urlsplit(base_url)
        self._host = parts.hostname
        self._netloc = parts.netloc

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send the request with the pinned ``verify`` and the sandbox port filled in."""
        text = url.decode() if isinstance(url, bytes) else url
        parts = urlsplit(text)
        if parts.scheme == "https" and parts.hostname == self._host and parts.port is None:
            text = urlunsplit(parts._replace(netloc=self._netloc))
        if kwargs.get("verify") is None:
            kwargs["verify"] = self.verify
        verb = method.decode() if isinstance(method, bytes) else method
        return super().request(verb, text, *args, **kwargs)


def _app_options(cloud: Cloud, cache: msal.SerializableTokenCache) -> dict[str, Any]:
    options: dict[str, Any] = {"token_cache": cache, "http_client": IdentityHttpSession()}
    if cloud.is_sandbox:
        # The sandbox is not a Microsoft host: skip instance discovery, which would ask the
        # real login.microsoftonline.com, and trust the sandbox's own CA.
        options["instance_discovery"] = False
        options["http_client"] = SandboxHttpSession(cloud.ca_file, cloud.authority_base)
    return options


def build_confidential_app(
    cloud: Cloud,
    tenant: str,
    client_id: str,
    credential: str | dict[str, str],
    cache: msal.SerializableTokenCache,
) -> msal.ConfidentialClientApplication:
    with msal_errors(tenant):
        return msal.ConfidentialClientApplication(
            client_id,
            authority=cloud.authority(tenant),
            client_credential=credential,
            **_app_options(cloud, cache),
        )


def build_public_app(
    cloud: Cloud, tenant: str, client_id: str, cache: msal.SerializableTokenCache
) -> msal.PublicClientApplication:
    with msal_errors(tenant):
        return msal.PublicClientApplication(
            client_id, authority=cloud.authority(tenant), **_app_options(cloud, cache)
        )


def _discovery_error(exc: ValueError, tenant: str) -> MailgateError:
    texts = [str(exc), str(exc.__context__ or "")]
    for text in texts:
        match = _JSON_IN_TEXT.search(text)
        if match:
            try:
                body = json.loads(match.group(0))
            except ValueError:
                continue
            if isinstance(body, dict) and ("error_codes" in body or "error" in body):
                return error_from_result(body)
    if "tenant" in texts[0].lower() or "authority" in texts[0].lower():
        return TenantNotFoundError(
            f"the tenant {tenant!r} was not found by the identity platform.",
            "use the 'Directory (tenant) ID' GUID from the app's Overview page, or choose the "
            "right cloud (--cloud usgov / china).",
            code=90002,
        )
    return ConfigurationError(f"MSAL refused the settings: {texts[0]}", "check the credential.")


def _what(path: str) -> str:
    if path.endswith("/token"):
        return "the token request"
    if path.endswith("/openid-configuration"):
        return "the tenant discovery request"
    if path.endswith("/devicecode"):
        return "the device code request"
    return f"the request for {path}"


def _service_error(exc: msal.exceptions.MsalServiceError) -> MailgateError:
    """The error for MSAL's exception about an HTTP error answer (which names only a status)."""
    failure: _Failure | None = getattr(_last, "failure", None)
    _last.failure = None
    if failure is None:
        return AuthenticationError(
            f"the identity platform answered with an error: {exc}.",
            "try again; if it persists, check the credential's cloud and tenant.",
        )
    try:
        reason = HTTPStatus(failure.status).phrase
    except ValueError:
        reason = "error"
    tries = "once" if failure.attempts == 1 else f"{failure.attempts} times"
    over = f" over {failure.waited:.1f} s" if failure.waited else ""
    if failure.retry_after is not None:
        over += f", then asked for {failure.retry_after:.0f} s more"
    return IdentityUnavailableError(
        f"the identity platform failed {_what(failure.path)} {tries}{over}: HTTP "
        f"{failure.status} {reason} ({failure.detail}).",
        "this is a fault on Microsoft's side that usually passes: run the command again in a "
        "few minutes; if it persists, check the service health in the Microsoft 365 admin "
        "center (or status.cloud.microsoft).",
        status=failure.status,
        attempts=failure.attempts,
    )


@contextmanager
def msal_errors(tenant: str) -> Iterator[None]:
    """Convert MSAL's and requests' exceptions into mailgate errors."""
    try:
        yield
    except msal.exceptions.MsalServiceError as exc:
        raise _service_error(exc) from exc
    except requests.exceptions.SSLError as exc:
        raise TransportError(
            f"TLS to the identity platform failed: {exc.__class__.__name__}.",
            "check the system's CA certificates and any TLS-inspecting proxy "
            "(set REQUESTS_CA_BUNDLE to its CA).",
        ) from exc
    except requests.exceptions.RequestException as exc:
        raise TransportError(
            f"the identity platform could not be reached ({exc.__class__.__name__}).",
            "check the network, proxy settings (HTTPS_PROXY) and the cloud of the credential.",
        ) from exc
    except ValueError as exc:
        raise _discovery_error(exc, tenant) from exc


def check_result(result: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """The MSAL result if it holds a token; otherwise the typed error for it."""
    if not result:
        raise AuthenticationError(f"{what}: the identity platform returned no token.", "try again.")
    if "access_token" not in result:
        raise error_from_result(result)
    return dict(result)


def call(fn: Callable[..., Any], tenant: str, *args: Any, **kwargs: Any) -> Any:
    """Call an MSAL method with its exceptions converted."""
    with msal_errors(tenant):
        return fn(*args, **kwargs)
