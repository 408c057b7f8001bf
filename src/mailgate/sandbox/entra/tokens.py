"""Token minting: access tokens (v1.0 JWTs, as Exchange and Graph receive them), id tokens,
``client_info`` and the JWKS that publishes the signing key.

Claims are built by pure functions from plain values, so unit tests can check them without a
key; :class:`TokenSigner` only turns a claims dict into an RS256 JWT with ``kid`` and ``x5t``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailgate.sandbox.directory.tenant import User
from mailgate.sandbox.pki import b64url, thumbprint_sha1

__all__ = [
    "ACR_CERTIFICATE",
    "ACR_PUBLIC",
    "ACR_SECRET",
    "TokenSigner",
    "access_token_claims",
    "client_info",
    "id_token_claims",
    "pairwise_subject",
]

ACR_PUBLIC = "0"
ACR_SECRET = "1"
ACR_CERTIFICATE = "2"


def pairwise_subject(client_id: str, object_id: str) -> str:
    """A stable ``sub`` per (app, principal), like Entra's pairwise identifiers."""
    return b64url(hashlib.sha256(f"{client_id}:{object_id}".encode()).digest())


def client_info(user_oid: str, tenant_id: str) -> str:
    """Base64url JSON ``{"uid", "utid"}``; MSAL builds the account's home id from it."""
    return b64url(json.dumps({"uid": user_oid, "utid": tenant_id}).encode())


def access_token_claims(
    *,
    issuer_base: str,
    tenant_id: str,
    audience: str,
    client_id: str,
    acr: str,
    now: int,
    lifetime: int,
    app_object_id: str,
    roles: list[str] | None = None,
    user: User | None = None,
    scp: list[str] | None = None,
    mfa: bool = False,
) -> dict[str, Any]:
    """Claims of a v1.0 access token.

    App-only when ``user`` is None: ``oid``/``sub`` are the service principal and ``roles``
    appears only when non-empty (Entra issues role-less tokens when nothing is consented).
    Delegated otherwise: ``scp`` and the user's names.
    """
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": f"{issuer_base}/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tenant_id,
        "appid": client_id,
        "azp": client_id,
        "appidacr": acr,
        "azpacr": acr,
        "uti": b64url(uuid.uuid4().bytes),
        "ver": "1.0",
    }
    if user is None:
        claims.update(oid=app_object_id, sub=app_object_id, idtyp="app")
        if roles:
            claims["roles"] = list(roles)
        return claims
    given, _, family = user.display_name.partition(" ")
    claims.update(
        oid=user.object_id,
        sub=pairwise_subject(client_id, user.object_id),
        idtyp="user",
        scp=" ".join(scp or []),
        upn=user.upn,
        unique_name=user.upn,
        name=user.display_name,
        given_name=given,
        family_name=family,
        amr=["pwd", "mfa"] if mfa else ["pwd"],
    )
    return claims


def id_token_claims(
    *,
    issuer_base: str,
    tenant_id: str,
    client_id: str,
    user: User,
    now: int,
    lifetime: int = 3600,
    nonce: str | None = None,
    auth_time: int | None = None,
) -> dict[str, Any]:
    """Claims of a v2.0 id token; ``nonce`` is echoed exactly as the authorize request sent it."""
    claims: dict[str, Any] = {
        "aud": client_id,
        "iss": f"{issuer_base}/{tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "sub": pairwise_subject(client_id, user.object_id),
        "oid": user.object_id,
        "tid": tenant_id,
        "name": user.display_name,
        "preferred_username": user.upn,
        "ver": "2.0",
    }
    if nonce:
        claims["nonce"] = nonce
    if auth_time is not None:
        claims["auth_time"] = auth_time
    return claims


@dataclass(frozen=True)
class TokenSigner:
    """Signs tokens with the sandbox key and publishes it; ``kid`` equals ``x5t``."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def kid(self) -> str:
        """Base64url SHA-1 thumbprint of the signing certificate."""
        return b64url(thumbprint_sha1(self.cert))

    def sign(self, claims: dict[str, Any]) -> str:
        """Return ``claims`` as an RS256 JWT with ``typ``, ``kid`` and ``x5t`` headers."""
        headers = {"typ": "JWT", "kid": self.kid, "x5t": self.kid}
        return jwt.encode(claims, self.key, algorithm="RS256", headers=headers)

    def jwks(self) -> dict[str, Any]:
        """The JSON Web Key Set served at ``/discovery/v2.0/keys``."""
        numbers = self.key.public_key().public_numbers()

        def _int(value: int) -> str:
            return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))

        der = self.cert.public_bytes(serialization.Encoding.DER)
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _int(numbers.n),
                    "e": _int(numbers.e),
                    "x5c": [base64.b64encode(der).decode("ascii")],
                }
            ]
        }
