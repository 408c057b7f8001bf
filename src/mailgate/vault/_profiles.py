"""Credential profiles: the public (non-secret) part of a vault entry, validated by pydantic.

Secrets (client secret, user password, private key) are never fields of these models; they are
stored encrypted beside them and come back only as :class:`~mailgate.secret.Secret`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "NAME_PATTERN",
    "CertificateInfo",
    "CredentialKind",
    "CredentialProfile",
    "DelegatedFlow",
    "SecretField",
]

EXPIRY_WARNING_DAYS = 14
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class CredentialKind(StrEnum):
    """How the credential gets tokens."""

    CLIENT_SECRET = "client-secret"
    CERTIFICATE = "certificate"
    PASSWORD = "password"
    DELEGATED = "delegated"

    @property
    def app_only(self) -> bool:
        return self in (CredentialKind.CLIENT_SECRET, CredentialKind.CERTIFICATE)


class DelegatedFlow(StrEnum):
    """The interactive sign-in used once by a delegated credential; its refresh token is kept."""

    AUTH_CODE = "auth-code"
    DEVICE_CODE = "device-code"


class SecretField(StrEnum):
    """Names of the encrypted values a credential may hold."""

    CLIENT_SECRET = "client_secret"
    PASSWORD = "password"
    PRIVATE_KEY = "private_key"


class CertificateInfo(BaseModel):
    """Public facts about a client certificate, shown by ``creds show``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    thumbprint_sha1: str
    thumbprint_sha256: str
    not_after: datetime
    certificate_pem: str


class CredentialProfile(BaseModel):
    """One vault entry without its secrets."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: CredentialKind
    display_name: str = ""
    cloud: str = "global"
    tenant: str
    client_id: str
    username: str | None = None
    scopes: tuple[str, ...]
    flow: DelegatedFlow | None = None
    redirect_uri: str | None = None
    secret_expires: datetime | None = None
    # Known when mailgate created the app or secret itself (setup apply, creds rotate-secret):
    # rotate-secret finds the app registration and removes the old secret by these.
    app_object_id: str | None = None
    secret_key_id: str | None = None
    certificate: CertificateInfo | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def app_only(self) -> bool:
        return self.kind.app_only

    def expires_at(self) -> datetime | None:
        """When the secret or certificate in use stops working, if known."""
        if self.certificate is not None:
            return self.certificate.not_after
        return self.secret_expires

    def expiry_status(self, now: datetime | None = None) -> str:
        """``expired``, ``expires in N days`` (within 14 days), ``ok`` or ``unknown``."""
        expires = self.expires_at()
        if expires is None:
            return "unknown"
        moment = now or datetime.now(UTC)
        remaining = expires - moment
        if remaining.total_seconds() <= 0:
            return "expired"
        if remaining.days < EXPIRY_WARNING_DAYS:
            return f"expires in {remaining.days} days"
        return "ok"

    def expiry_warning(self, now: datetime | None = None) -> str | None:
        """What to tell the user when the secret in use expires soon or has expired."""
        status = self.expiry_status(now)
        expires = self.expires_at()
        if expires is None or status in ("ok", "unknown"):
            return None
        if status == "expired":
            return (
                f"the secret of credential {self.name!r} expired on {expires:%Y-%m-%d}; "
                f"create a new one with `mailgate creds rotate-secret {self.name}` or "
                f"`mailgate creds set-secret {self.name}`."
            )
        return (
            f"the secret of credential {self.name!r} {status} ({expires:%Y-%m-%d}); "
            f"rotate it before then with `mailgate creds rotate-secret {self.name}`."
        )
