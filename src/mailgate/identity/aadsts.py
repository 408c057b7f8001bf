"""The AADSTS catalogue: an identity-platform error becomes a typed exception with a remedy.

Pure functions over MSAL's result dicts (``{"error": ..., "error_description": "AADSTSnnnn: ...",
"error_codes": [...], "trace_id": ..., "correlation_id": ...}``). Codes and meanings from
../shared/design/microsoft-facts.md section 7. Unknown codes still keep the code, Microsoft's
own description (first line only), and the trace and correlation ids support asks for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailgate.errors import (
    AccountBlockedError,
    ApplicationNotFoundError,
    ClientCredentialError,
    ConsentRequiredError,
    InteractionRequiredError,
    InvalidScopeError,
    PublicClientFlowsDisabledError,
    ResourceNotFoundError,
    TenantNotFoundError,
    TokenRequestError,
    UserCredentialError,
)

__all__ = ["CATALOGUE", "Diagnosis", "error_from_result", "parse_aadsts_code"]


@dataclass(frozen=True)
class Diagnosis:
    """What one AADSTS code means for the user, and what the admin does about it."""

    kind: type[TokenRequestError]
    message: str
    remedy: str


_PORTAL = "Entra admin center > App registrations > your app"

CATALOGUE: dict[int, Diagnosis] = {
    50034: Diagnosis(
        UserCredentialError,
        "the user account does not exist in this tenant.",
        "check the user name (UPN) for typos and that the tenant is the one the user belongs to.",
    ),
    50053: Diagnosis(
        AccountBlockedError,
        "the account is locked: too many wrong passwords, or sign-in from a blocked IP address.",
        "wait for the lockout to end or have an admin unblock it; check the sign-in logs.",
    ),
    50055: Diagnosis(
        AccountBlockedError,
        "the user's password has expired.",
        "sign in once interactively to set a new password, then store it with "
        "`mailgate creds set-secret`.",
    ),
    50057: Diagnosis(
        AccountBlockedError,
        "the user account is disabled.",
        "an admin must enable the account (Entra admin center > Users > Account enabled).",
    ),
    50076: Diagnosis(
        InteractionRequiredError,
        "multi-factor authentication is required for this user, and a password-only sign-in "
        "(ROPC) cannot do MFA.",
        "use a delegated sign-in with device code or authorization code "
        "(`mailgate creds add --kind delegated`), or an app-only credential (client secret "
        "or certificate) instead of a user password.",
    ),
    50079: Diagnosis(
        InteractionRequiredError,
        "the user must register for multi-factor authentication first.",
        "sign in once interactively to register MFA, then use a device-code or "
        "authorization-code sign-in; ROPC cannot do MFA.",
    ),
    50126: Diagnosis(
        UserCredentialError,
        "the user name or password is wrong.",
        "check the password (no leading or trailing spaces) and store it again with "
        "`mailgate creds set-secret`.",
    ),
    50158: Diagnosis(
        InteractionRequiredError,
        "an external security challenge (third-party MFA or Conditional Access) was not satisfied.",
        "use an interactive sign-in (device code or authorization code).",
    ),
    50173: Diagnosis(
        InteractionRequiredError,
        "the saved sign-in was revoked (password changed or sessions revoked by an admin).",
        "sign in again with `mailgate creds login`.",
    ),
    53003: Diagnosis(
        InteractionRequiredError,
        "a Conditional Access policy blocked the sign-in.",
        "ask the admin to check the sign-in log for the policy that applied and exclude this "
        "app or location, or use an app-only credential.",
    ),
    65001: Diagnosis(
        ConsentRequiredError,
        "nobody has consented to the permissions this app asks for.",
        f"in the {_PORTAL} > API permissions, click 'Grant admin consent' "
        "(or run `mailgate creds login` once to consent as the user).",
    ),
    70011: Diagnosis(
        InvalidScopeError,
        "the scope was refused as invalid.",
        "use https://outlook.office365.com/.default for app-only credentials, or named "
        "permissions of one resource (e.g. https://outlook.office.com/IMAP.AccessAsUser.All) "
        "for delegated ones.",
    ),
    700016: Diagnosis(
        ApplicationNotFoundError,
        "no application with this client ID exists in the tenant.",
        "copy the 'Application (client) ID' from the app's Overview page, and check the tenant "
        "is the one where the app is registered (or that a multi-tenant app was consented here).",
    ),
    700024: Diagnosis(
        ClientCredentialError,
        "the client assertion is outside its valid time range.",
        "check this machine's clock (use NTP); assertions are valid for about 10 minutes.",
    ),
    700025: Diagnosis(
        ClientCredentialError,
        "a client secret was sent for a public client app.",
        "remove the secret from this credential, or turn off 'Allow public client flows'.",
    ),
    700027: Diagnosis(
        ClientCredentialError,
        "the certificate's signature was not accepted.",
        f"upload this certificate's public part in the {_PORTAL} > Certificates & secrets, "
        "and check the private key belongs to it.",
    ),
    7000215: Diagnosis(
        ClientCredentialError,
        "the client secret is wrong. Often the secret ID was pasted instead of the secret value.",
        f"in the {_PORTAL} > Certificates & secrets, copy the secret's Value (not the Secret "
        "ID); if it is no longer shown, create a new secret, then run "
        "`mailgate creds set-secret`.",
    ),
    7000218: Diagnosis(
        PublicClientFlowsDisabledError,
        "the app is not allowed to use public client flows (password or device code) without "
        "a client secret.",
        f"in the {_PORTAL} > Authentication > Advanced settings, set 'Allow public client "
        "flows' to Yes.",
    ),
    7000222: Diagnosis(
        ClientCredentialError,
        "the client secret has expired.",
        f"create a new client secret in the {_PORTAL} > Certificates & secrets and store it "
        "with `mailgate creds set-secret --expires <date>` (or switch to a certificate).",
    ),
    90002: Diagnosis(
        TenantNotFoundError,
        "the tenant was not found.",
        "use the 'Directory (tenant) ID' GUID from the app's Overview page or a verified "
        "domain; if the tenant is in US Government or China, choose that cloud (--cloud).",
    ),
    900023: Diagnosis(
        TenantNotFoundError,
        "the tenant identifier is neither a directory ID nor a domain.",
        "use the 'Directory (tenant) ID' GUID or a verified domain such as "
        "contoso.onmicrosoft.com.",
    ),
    500011: Diagnosis(
        ResourceNotFoundError,
        "the resource in the scope does not exist in the tenant.",
        "check the resource URI in the scope (https://outlook.office365.com for Exchange, "
        "https://graph.microsoft.com for Graph) and that the tenant has Exchange Online.",
    ),
    50011: Diagnosis(
        ClientCredentialError,
        "the redirect URI does not match the ones registered on the app.",
        f"add it in the {_PORTAL} > Authentication (platform 'Mobile and desktop "
        "applications', http://localhost).",
    ),
    54005: Diagnosis(
        InteractionRequiredError,
        "the authorization code was already used.",
        "sign in again with `mailgate creds login`.",
    ),
    700082: Diagnosis(
        InteractionRequiredError,
        "the saved sign-in expired after a long time without use.",
        "sign in again with `mailgate creds login`.",
    ),
    70008: Diagnosis(
        InteractionRequiredError,
        "the saved sign-in has expired.",
        "sign in again with `mailgate creds login`.",
    ),
    90094: Diagnosis(
        ConsentRequiredError,
        "an administrator must consent to this app's permissions.",
        f"in the {_PORTAL} > API permissions, click 'Grant admin consent'.",
    ),
}

_DEVICE_FLOW = {
    "authorization_declined": Diagnosis(
        InteractionRequiredError,
        "the sign-in was declined on the device-code page.",
        "run `mailgate creds login` again and approve the request.",
    ),
    "expired_token": Diagnosis(
        InteractionRequiredError,
        "the device code expired before anyone signed in.",
        "run `mailgate creds login` again and enter the code within 15 minutes.",
    ),
    "bad_verification_code": Diagnosis(
        InteractionRequiredError,
        "the device code was not recognised.",
        "run `mailgate creds login` again.",
    ),
}

_CODE = re.compile(r"AADSTS(\d+)")


def parse_aadsts_code(result: Mapping[str, Any]) -> int:
    """The AADSTS number of an error result: ``error_codes[0]``, else from the description."""
    codes = result.get("error_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], int):
        return codes[0]
    match = _CODE.search(str(result.get("error_description", "")))
    return int(match.group(1)) if match else 0


def _first_line(description: str) -> str:
    text = _CODE.sub("", description.split("\r\n")[0].split("\n")[0], count=1)
    return text.lstrip(": ").strip()


def error_from_result(result: Mapping[str, Any]) -> TokenRequestError:
    """The typed exception for an MSAL error result."""
    code = parse_aadsts_code(result)
    error = str(result.get("error", ""))
    description = str(result.get("error_description", ""))
    diagnosis = CATALOGUE.get(code) or _DEVICE_FLOW.get(error)
    trace_id = str(result.get("trace_id") or "")
    correlation_id = str(result.get("correlation_id") or "")
    prefix = f"AADSTS{code}: " if code else ""
    if diagnosis is not None:
        return diagnosis.kind(
            prefix + diagnosis.message[0].upper() + diagnosis.message[1:],
            diagnosis.remedy,
            code=code,
            error=error,
            description=description,
            trace_id=trace_id,
            correlation_id=correlation_id,
        )
    detail = _first_line(description) or error or "unknown error"
    label = f"AADSTS{code}" if code else (error or "token error")
    return TokenRequestError(
        f"{label}: the identity platform refused the token request: {detail}",
        "look the code up at https://login.microsoftonline.com/error?code="
        f"{code} and give the trace and correlation ids to your admin."
        if code
        else "check the credential's settings with `mailgate creds show`.",
        code=code,
        error=error,
        description=description,
        trace_id=trace_id,
        correlation_id=correlation_id,
    )
