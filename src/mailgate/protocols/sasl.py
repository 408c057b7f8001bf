"""SASL XOAUTH2 and OAUTHBEARER for IMAP, POP3 and SMTP: pure functions over bytes.

XOAUTH2 (Google's and Microsoft's)::  "user=" user "\\x01auth=Bearer " token "\\x01\\x01"
OAUTHBEARER (RFC 7628)::              "n,a=" user "," "\\x01auth=Bearer " token "\\x01\\x01"
(``host``/``port`` key-values may follow the GS2 header in OAUTHBEARER; mailgate sends none.)

On failure Dovecot (and Gmail) first send a base64 JSON challenge and expect an empty client
response before the final failure reply; Exchange Online sends the failure at once. Both are
handled by the callers with :func:`parse_failure_challenge`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

__all__ = [
    "OAuthChallenge",
    "SaslCredentials",
    "b64",
    "oauthbearer_initial_response",
    "parse_failure_challenge",
    "parse_initial_response",
    "xoauth2_initial_response",
]


def _check(user: str, token: str) -> None:
    if not user or any(c in user for c in "\x01\r\n,"):
        raise ValueError("the SASL user must be a non-empty address without control characters")
    if not token or any(c in token for c in "\x01\r\n "):
        raise ValueError("the bearer token must be non-empty and contain no whitespace")


def xoauth2_initial_response(user: str, token: str) -> bytes:
    """The raw (not base64) XOAUTH2 client response."""
    _check(user, token)
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer_initial_response(user: str, token: str) -> bytes:
    """The raw (not base64) OAUTHBEARER client response (RFC 7628 section 3.1)."""
    _check(user, token)
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01".encode()


def b64(data: bytes) -> str:
    """Base64 as it goes on the wire (no line breaks)."""
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, repr=False)
class SaslCredentials:
    """What a server learns from an XOAUTH2/OAUTHBEARER response. ``repr`` hides the token."""

    mechanism: str
    user: str
    token: str

    def __repr__(self) -> str:
        return f"SaslCredentials(mechanism={self.mechanism!r}, user={self.user!r}, token='...')"


def parse_initial_response(mechanism: str, data: bytes) -> SaslCredentials:
    """Decode a client response (raw bytes, already base64-decoded); ValueError if malformed."""
    mech = mechanism.upper()
    text = data.decode("utf-8")
    if mech == "XOAUTH2":
        fields = text.split("\x01")
        if len(fields) < 3 or fields[-2:] != ["", ""]:
            raise ValueError("XOAUTH2 response must end with two \\x01")
        values = dict(f.split("=", 1) for f in fields[:-2] if "=" in f)
        user = values.get("user", "")
    elif mech == "OAUTHBEARER":
        gs2, _, rest = text.partition("\x01")
        parts = gs2.split(",")
        if len(parts) < 2 or (parts[0] not in ("n", "y") and not parts[0].startswith("p=")):
            raise ValueError("OAUTHBEARER response lacks a GS2 header")
        user = next((p[2:] for p in parts[1:] if p.startswith("a=")), "")
        fields = rest.split("\x01")
        if len(fields) < 2 or fields[-2:] != ["", ""]:
            raise ValueError("OAUTHBEARER response must end with two \\x01")
        values = dict(f.split("=", 1) for f in fields[:-2] if "=" in f)
    else:
        raise ValueError(f"unsupported SASL mechanism {mechanism!r}")
    auth = values.get("auth", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ValueError("the auth field must be 'Bearer <token>'")
    return SaslCredentials(mech, user, token)


@dataclass(frozen=True)
class OAuthChallenge:
    """A server's JSON failure challenge (Dovecot, Gmail): ``status``, ``schemes``, ``scope``."""

    status: str
    schemes: str = ""
    scope: str = ""


def parse_failure_challenge(payload: str | bytes) -> OAuthChallenge | None:
    """Decode a base64 JSON challenge; None if the payload is not one."""
    try:
        raw = base64.b64decode(payload, validate=True) if payload else b""
        data = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(data, dict) or "status" not in data:
        return None
    return OAuthChallenge(
        str(data["status"]), str(data.get("schemes", "")), str(data.get("scope", ""))
    )
