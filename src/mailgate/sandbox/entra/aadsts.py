"""Server-side AADSTS error responses, shaped like the Microsoft identity platform's.

Pure functions only: :func:`error_body` turns an :class:`AadstsError` plus a clock and two ids
into the JSON Entra returns. The catalogue :data:`CATALOGUE` holds, per AADSTS code, the OAuth
``error`` string, the HTTP status, an optional ``suberror`` and the message text. Texts follow
Microsoft's wording where the fact sheet (design/microsoft-facts.md §7) or real payloads give
it; ``{placeholders}`` are filled from the keyword arguments of :func:`aadsts`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["CATALOGUE", "AadstsError", "CatalogueEntry", "aadsts", "error_body"]


@dataclass(frozen=True)
class CatalogueEntry:
    """How one AADSTS code is reported: OAuth error string, HTTP status, message template."""

    error: str
    text: str
    status: int = 400
    suberror: str | None = None


_INVALID_CLIENT = 401

CATALOGUE: dict[int, CatalogueEntry] = {
    50011: CatalogueEntry(
        "invalid_request",
        "The redirect URI '{redirect_uri}' specified in the request does not match the redirect"
        " URIs configured for the application '{client_id}'. Make sure the redirect URI sent in"
        " the request matches one added to your application in the Azure portal. Navigate to"
        " https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
    ),
    50027: CatalogueEntry(
        "invalid_client",
        "JWT token is invalid or malformed. {reason}",
        _INVALID_CLIENT,
    ),
    50034: CatalogueEntry(
        "invalid_grant",
        "The user account {{EUII Hidden}} does not exist in the {tenant_id} directory. To sign"
        " into this application, the account must be added to the directory.",
    ),
    50053: CatalogueEntry(
        "invalid_grant",
        "Your account is locked because you've tried to sign in too many times with an"
        " incorrect user ID or password.",
    ),
    50055: CatalogueEntry("invalid_grant", "The password is expired."),
    50057: CatalogueEntry(
        "invalid_grant",
        "The user account is disabled. The account has been disabled by an administrator.",
    ),
    50058: CatalogueEntry(
        "login_required", "A silent sign-in request was sent but no user is signed in."
    ),
    50059: CatalogueEntry(
        "invalid_request",
        "No tenant-identifying information found in either the request or implied by any"
        " provided credentials.",
    ),
    50076: CatalogueEntry(
        "invalid_grant",
        "Due to a configuration change made by your administrator, or because you moved to a"
        " new location, you must use multi-factor authentication to access '{resource}'.",
        suberror="basic_action",
    ),
    50079: CatalogueEntry(
        "interaction_required",
        "Due to a configuration change made by your administrator, or because you moved to a"
        " new location, you must enroll in multi-factor authentication to access '{resource}'.",
    ),
    50126: CatalogueEntry(
        "invalid_grant", "Error validating credentials due to invalid username or password."
    ),
    50158: CatalogueEntry("interaction_required", "External security challenge was not satisfied."),
    50173: CatalogueEntry(
        "invalid_grant",
        "The provided grant has expired due to it being revoked, a fresh auth token is needed."
        " The user might have changed or reset their password. The grant was issued on"
        " '{issued}' and the TokensValidFrom date (before which tokens are not valid) for this"
        " user is '{valid_from}'.",
    ),
    53003: CatalogueEntry(
        "invalid_grant",
        "Access has been blocked by Conditional Access policies. The access policy does not"
        " allow token issuance.",
    ),
    54005: CatalogueEntry(
        "invalid_grant",
        "OAuth2 Authorization code was already redeemed, please retry with a new valid code or"
        " use an existing refresh token.",
    ),
    65001: CatalogueEntry(
        "invalid_grant",
        "The user or administrator has not consented to use the application with ID"
        " '{client_id}' named '{app_name}'. Send an interactive authorization request for this"
        " user and resource.",
        suberror="consent_required",
    ),
    70000: CatalogueEntry("invalid_grant", "Provided grant is invalid or malformed. {reason}"),
    70008: CatalogueEntry(
        "invalid_grant",
        "The provided authorization code or refresh token has expired due to inactivity. Send a"
        " new interactive authorization request for this user and resource.",
    ),
    70011: CatalogueEntry(
        "invalid_scope",
        "The provided value for the input parameter 'scope' is not valid. {reason}",
    ),
    70016: CatalogueEntry(
        "authorization_pending",
        "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
    ),
    70018: CatalogueEntry(
        "bad_verification_code", "Invalid verification code entered or device code not found."
    ),
    70019: CatalogueEntry("expired_token", "Verification code expired."),
    70020: CatalogueEntry(
        "authorization_declined", "The end user declined the authorization request."
    ),
    90002: CatalogueEntry(
        "invalid_tenant",
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are"
        " signing into the correct cloud. Check with your subscription administrator, this may"
        " happen if there are no active subscriptions for the tenant.",
    ),
    90014: CatalogueEntry(
        "invalid_request",
        "The required field '{field}' is missing from the credential. Ensure that you have all"
        " the necessary parameters for the login request.",
    ),
    500011: CatalogueEntry(
        "invalid_resource",
        "The resource principal named {resource} was not found in the tenant named"
        " {tenant_name}. This can happen if the application has not been installed by the"
        " administrator of the tenant or consented to by any user in the tenant. You might"
        " have sent your authentication request to the wrong tenant.",
    ),
    501481: CatalogueEntry(
        "invalid_grant",
        "The Code_Verifier does not match the code_challenge supplied in the authorization"
        " request.",
    ),
    700016: CatalogueEntry(
        "unauthorized_client",
        "Application with identifier '{client_id}' was not found in the directory"
        " '{tenant_name}'. This can happen if the application has not been installed by the"
        " administrator of the tenant or consented to by any user in the tenant. You may have"
        " sent your authentication request to the wrong tenant.",
    ),
    700021: CatalogueEntry(
        "invalid_client",
        "Client assertion application identifier doesn't match 'client_id' parameter.",
        _INVALID_CLIENT,
    ),
    700024: CatalogueEntry(
        "invalid_client",
        "Client assertion is not within its valid time range. Current time: {now}, assertion"
        " valid from {nbf}, expiry time of assertion {exp}.",
        _INVALID_CLIENT,
    ),
    700025: CatalogueEntry(
        "invalid_client",
        "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        _INVALID_CLIENT,
    ),
    700027: CatalogueEntry(
        "invalid_client",
        "Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key"
        " used by client: '{thumbprint}']",
        _INVALID_CLIENT,
    ),
    900023: CatalogueEntry(
        "invalid_request",
        "Specified tenant identifier '{tenant}' is neither a valid DirectoryId nor a valid"
        " external domain.",
    ),
    900144: CatalogueEntry(
        "invalid_request",
        "The request body must contain the following parameter: '{field}'.",
    ),
    7000215: CatalogueEntry(
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the"
        " client secret value, not the client secret ID, for a secret added to app"
        " '{client_id}'.",
        _INVALID_CLIENT,
    ),
    7000218: CatalogueEntry(
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or"
        " 'client_secret'.",
        _INVALID_CLIENT,
    ),
    7000222: CatalogueEntry(
        "invalid_client",
        "The provided client secret keys for app '{client_id}' are expired. Visit the Azure"
        " portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider"
        " using certificate credentials for added security: https://aka.ms/certCreds.",
        _INVALID_CLIENT,
    ),
    7000229: CatalogueEntry(
        "invalid_client",
        "The client application {client_id} is missing service principal in the tenant {tenant}.",
        _INVALID_CLIENT,
    ),
    9001023: CatalogueEntry(
        "invalid_request",
        "The grant type is not supported over the /common or /consumers endpoints. Please use"
        " the /organizations or tenant-specific endpoint.",
    ),
    9002313: CatalogueEntry(
        "invalid_grant", "Invalid request. Request is malformed or invalid. {reason}"
    ),
    70003: CatalogueEntry(
        "unsupported_grant_type", "The app requested an unsupported grant type '{grant_type}'."
    ),
}


class _Blank(dict[str, Any]):
    """Format mapping that leaves unknown placeholders empty instead of raising KeyError."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass
class AadstsError(Exception):
    """An AADSTS refusal raised by the sandbox's protocol logic and rendered by the web layer."""

    code: int
    message: str
    error: str
    status: int = 400
    suberror: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"AADSTS{self.code}: {self.message}"


def aadsts(code: int, **values: Any) -> AadstsError:
    """Build the :class:`AadstsError` for ``code`` with the catalogue's text filled in."""
    entry = CATALOGUE[code]
    text = entry.text.format_map(_Blank(values)).strip()
    return AadstsError(code, text, entry.error, entry.status, entry.suberror)


def error_body(
    err: AadstsError,
    *,
    now: datetime | None = None,
    trace_id: str | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """Return the JSON object Entra sends for ``err`` (HTTP status is ``err.status``)."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    trace = trace_id or str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    stamp = moment.strftime("%Y-%m-%d %H:%M:%SZ")
    body: dict[str, Any] = {
        "error": err.error,
        "error_description": (
            f"AADSTS{err.code}: {err.message}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [err.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
    }
    if err.suberror:
        body["suberror"] = err.suberror
    body.update(err.extra)
    return body
