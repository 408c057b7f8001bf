"""The one place MSAL is called and its failures become mailgate errors.

MSAL reports token errors as result dicts and raises ``ValueError`` when tenant discovery fails
(an unknown tenant answers the discovery request with HTTP 400 and an AADSTS body, which MSAL
folds into a generic message; the original is kept as the exception's context) and ``requests``
exceptions for network trouble. Everything leaves here as a :mod:`mailgate.errors` type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msal
import requests

from mailgate.errors import (
    AuthenticationError,
    ConfigurationError,
    MailgateError,
    TenantNotFoundError,
    TransportError,
)
from mailgate.identity.aadsts import error_from_result
from mailgate.identity.clouds import Cloud

__all__ = [
    "SandboxHttpSession",
    "build_confidential_app",
    "build_public_app",
    "call",
    "check_result",
    "msal_errors",
]

_JSON_IN_TEXT = re.compile(r"\{.*\}", re.S)


class SandboxHttpSession(requests.Session):
    """A requests session for MSAL's ``http_client=`` that can reach the sandbox.

    It fixes two things an unmodified MSAL meets against a server on a non-default port:
    ``verify`` is pinned so ``REQUESTS_CA_BUNDLE`` cannot replace it (requests lets that
    variable win over ``Session.verify``, and Debian images set it), and URLs for the sandbox
    host *without* a port are sent to the sandbox's port, because MSAL's user realm discovery
    before ROPC builds its URL from the authority's host name only (msal 1.39
    ``Authority.user_realm_discovery``).
    """

    def __init__(self, ca_file: str | None, base_url: str) -> None:
        super().__init__()
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
    options: dict[str, Any] = {"token_cache": cache, "timeout": 30}
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


@contextmanager
def msal_errors(tenant: str) -> Iterator[None]:
    """Convert MSAL's and requests' exceptions into mailgate errors."""
    try:
        yield
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
