"""Loading client certificates (PEM or PFX) and computing their thumbprints."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from mailgate.errors import InvalidInputError
from mailgate.secret import Secret
from mailgate.vault._profiles import CertificateInfo

__all__ = ["LoadedCertificate", "load_certificate", "x5t"]

_FORM = (
    "a PEM file holding an RSA private key and its certificate, or a PFX/P12 file "
    "(with --cert-password-env or --cert-password-stdin if it has a password)"
)


@dataclass(frozen=True)
class LoadedCertificate:
    """A certificate's public facts plus its private key (PEM, unencrypted, as a Secret)."""

    info: CertificateInfo
    private_key_pem: Secret


def _thumbprints(cert: x509.Certificate) -> tuple[str, str]:
    return (
        cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's x5t is SHA-1
        cert.fingerprint(hashes.SHA256()).hex().upper(),
    )


def _from_pem(data: bytes, password: bytes | None, field: str) -> tuple[object, x509.Certificate]:
    if b"PRIVATE KEY" not in data or b"CERTIFICATE" not in data:
        raise InvalidInputError(field, _FORM)
    try:
        key = serialization.load_pem_private_key(data, password)
        cert = x509.load_pem_x509_certificates(data)[0]
    except TypeError as exc:
        raise InvalidInputError(
            field, "the password of the encrypted private key (--cert-password-env)"
        ) from exc
    except ValueError as exc:
        raise InvalidInputError(field, _FORM + " (the PEM could not be parsed)") from exc
    return key, cert


def _from_pfx(data: bytes, password: bytes | None, field: str) -> tuple[object, x509.Certificate]:
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError as exc:
        raise InvalidInputError(
            field, _FORM + " (the PFX could not be opened: wrong password or not a PFX)"
        ) from exc
    if key is None or cert is None:
        raise InvalidInputError(field, _FORM + " (the PFX lacks the key or the certificate)")
    return key, cert


def load_certificate(
    data: bytes, password: Secret | None = None, field: str = "certificate file"
) -> LoadedCertificate:
    """Parse PEM or PFX bytes. Raises :class:`InvalidInputError` naming ``field`` on bad input."""
    raw_password = password.reveal().encode("utf-8") if password else None
    if data.lstrip().startswith(b"-----BEGIN"):
        key, cert = _from_pem(data, raw_password, field)
    else:
        key, cert = _from_pfx(data, raw_password, field)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidInputError(field, "an RSA key (Entra ID signs client assertions with RSA)")
    cert_key = cert.public_key()
    if not isinstance(cert_key, rsa.RSAPublicKey) or (
        cert_key.public_numbers() != key.public_key().public_numbers()
    ):
        raise InvalidInputError(field, "a private key that belongs to the certificate")
    sha1, sha256 = _thumbprints(cert)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    info = CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        thumbprint_sha1=sha1,
        thumbprint_sha256=sha256,
        not_after=cert.not_valid_after_utc,
        certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )
    return LoadedCertificate(info, Secret(key_pem))


def x5t(thumbprint_hex: str) -> str:
    """The base64url form of a hex thumbprint, as JWT headers carry it."""
    return base64.urlsafe_b64encode(bytes.fromhex(thumbprint_hex)).rstrip(b"=").decode("ascii")
