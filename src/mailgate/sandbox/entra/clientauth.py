"""Client authentication at the token endpoint: secrets (body or HTTP Basic) and JWT-bearer
client assertions signed with a registered certificate.

MSAL signs assertions either with RS256 and an ``x5t`` header (SHA-1 thumbprint) or with PS256
and ``x5t#S256`` (SHA-256); both are accepted. Pure: no sockets, the clock is an argument.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

import jwt
from cryptography import x509

from mailgate.sandbox.directory.tenant import App
from mailgate.sandbox.entra.aadsts import aadsts
from mailgate.sandbox.entra.tokens import ACR_CERTIFICATE, ACR_PUBLIC, ACR_SECRET
from mailgate.sandbox.pki import b64url, thumbprint_sha1, thumbprint_sha256

__all__ = [
    "ASSERTION_TYPE",
    "CLOCK_SKEW",
    "ClientCredentials",
    "authenticate_client",
    "check_assertion",
    "check_secret",
    "read_client_credentials",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 300
_ALGORITHMS = ("RS256", "PS256")


@dataclass(frozen=True)
class ClientCredentials:
    """How the request tried to authenticate its client (all fields may be empty)."""

    client_id: str
    secret: str = ""
    assertion: str = ""
    assertion_type: str = ""

    @property
    def presented(self) -> bool:
        """True when a secret or an assertion was sent."""
        return bool(self.secret or self.assertion)


def read_client_credentials(
    form: Mapping[str, str], authorization: str | None
) -> ClientCredentials:
    """Collect ``client_id`` and the credential from the body and the Authorization header."""
    client_id = form.get("client_id", "")
    secret = form.get("client_secret", "")
    if authorization and authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(authorization[6:].strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        user, sep, password = decoded.partition(":")
        if sep:
            # RFC 6749 §2.3.1: both parts are form-urlencoded before the Basic encoding.
            client_id = client_id or unquote_plus(user)
            secret = secret or unquote_plus(password)
    return ClientCredentials(
        client_id=client_id.strip(),
        secret=secret,
        assertion=form.get("client_assertion", ""),
        assertion_type=form.get("client_assertion_type", ""),
    )


def check_secret(app: App, secret: str, now: datetime) -> None:
    """Raise 7000215 for a wrong secret (or its ID), 7000222 when the matching one expired."""
    for entry in app.secrets:
        if entry.value == secret:
            if entry.expired(now):
                raise aadsts(7000222, client_id=app.client_id)
            return
    raise aadsts(7000215, client_id=app.client_id)


def _hex(b64: str) -> str:
    try:
        return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex().upper()
    except (binascii.Error, ValueError):
        return b64


def _find_certificate(
    header: Mapping[str, Any], certificates: list[x509.Certificate]
) -> tuple[x509.Certificate | None, str]:
    # MSAL sends x5t with base64 padding, other clients without: compare unpadded.
    if "x5t#S256" in header:
        wanted = str(header["x5t#S256"]).rstrip("=")
        found = next((c for c in certificates if b64url(thumbprint_sha256(c)) == wanted), None)
    else:
        wanted = str(header.get("x5t", "")).rstrip("=")
        found = next((c for c in certificates if b64url(thumbprint_sha1(c)) == wanted), None)
    return found, _hex(wanted)


def check_assertion(
    app: App,
    assertion: str,
    *,
    certificates: list[x509.Certificate],
    audiences: set[str],
    now: datetime,
) -> None:
    """Verify a client assertion: signature, ``iss``/``sub``, ``aud`` and validity window."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.DecodeError as exc:
        raise aadsts(50027, reason=f"The client assertion is not a JWT ({exc}).") from exc
    algorithm = str(header.get("alg", ""))
    if algorithm not in _ALGORITHMS:
        raise aadsts(50027, reason=f"The signing algorithm '{algorithm}' is not supported.")
    cert, thumbprint = _find_certificate(header, certificates)
    if cert is None:
        raise aadsts(700027, reason="The key was not found.", thumbprint=thumbprint)
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            cert.public_key(),  # type: ignore[arg-type]
            algorithms=[algorithm],
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise aadsts(700027, reason="The signature is invalid.", thumbprint=thumbprint) from exc
    except jwt.PyJWTError as exc:
        raise aadsts(50027, reason=f"The client assertion is malformed ({exc}).") from exc
    if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
        raise aadsts(700021)
    aud = claims.get("aud")
    given = set(aud) if isinstance(aud, list) else {str(aud)}
    if not given & audiences:
        raise aadsts(50027, reason=f"The audience '{aud}' is not this token endpoint.")
    moment = int(now.timestamp())
    exp = claims.get("exp")
    if not isinstance(exp, int | float):
        raise aadsts(50027, reason="The client assertion has no 'exp' claim.")
    nbf = claims.get("nbf", claims.get("iat", moment))
    if moment > exp + CLOCK_SKEW or (isinstance(nbf, int | float) and nbf > moment + CLOCK_SKEW):
        raise aadsts(700024, now=moment, nbf=nbf, exp=exp)


def authenticate_client(
    app: App,
    creds: ClientCredentials,
    *,
    credential_required: bool,
    certificates: list[x509.Certificate],
    audiences: set[str],
    now: datetime,
) -> str:
    """Authenticate the client and return its ``appidacr``: "0" public, "1" secret, "2" cert.

    ``credential_required`` is true for client credentials and for apps that do not allow
    public client flows; without a credential those get AADSTS7000218.
    """
    if not creds.presented:
        if credential_required:
            raise aadsts(7000218)
        return ACR_PUBLIC
    if not app.has_credentials:
        raise aadsts(700025)
    if creds.secret:
        check_secret(app, creds.secret, now)
        return ACR_SECRET
    if creds.assertion_type != ASSERTION_TYPE:
        raise aadsts(50027, reason=f"client_assertion_type must be '{ASSERTION_TYPE}'.")
    check_assertion(app, creds.assertion, certificates=certificates, audiences=audiences, now=now)
    return ACR_CERTIFICATE
