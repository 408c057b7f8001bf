"""Key material of the sandbox: a local CA, the HTTPS server certificate, the token signing
key, and demo client certificates.

Everything is generated once and kept in the state directory, so tokens and trust survive a
restart. Private keys are written with mode 0600. Layout under ``state_dir/pki``::

    ca.pem  ca-key.pem            the CA clients trust (``verify=ca.pem``)
    server.pem  server-key.pem    leaf for 127.0.0.1 and localhost, signed by the CA
    signing.pem  signing-key.pem  self-signed; signs access and id tokens (kid = x5t)
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ClientCertificate",
    "SandboxPki",
    "b64url",
    "create_client_certificate",
    "ensure_pki",
    "load_certificate",
    "thumbprint_sha1",
    "thumbprint_sha256",
]

_KEY_MODE = 0o600


def b64url(data: bytes) -> str:
    """Base64url without padding, the encoding JOSE uses for thumbprints and key numbers."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint_sha1(cert: x509.Certificate) -> bytes:
    """SHA-1 of the DER certificate: what the portal shows and what ``x5t`` carries."""
    return cert.fingerprint(hashes.SHA1())  # noqa: S303 - the protocol defines x5t as SHA-1


def thumbprint_sha256(cert: x509.Certificate) -> bytes:
    """SHA-256 of the DER certificate: what ``x5t#S256`` carries."""
    return cert.fingerprint(hashes.SHA256())


def load_certificate(path: Path) -> x509.Certificate:
    """Read the first PEM certificate of ``path``."""
    return x509.load_pem_x509_certificate(path.read_bytes())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        # Create with 0600 from the start so the key is never readable by others, even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _KEY_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(path, _KEY_MODE)
    else:
        path.write_bytes(data)


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mailgate sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: str, issuer: x509.Name, key: rsa.RSAPrivateKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def _self_signed(common_name: str, key: rsa.RSAPrivateKey, days: int) -> x509.Certificate:
    builder = _builder(common_name, _name(common_name), key, days).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), True
    )
    return builder.sign(key, hashes.SHA256())


@dataclass(frozen=True)
class SandboxPki:
    """Paths of the generated material; :attr:`signing_key` and :attr:`signing_cert` loaded."""

    ca_file: Path
    server_cert_file: Path
    server_key_file: Path
    signing_cert_file: Path
    signing_key_file: Path

    @property
    def signing_key(self) -> rsa.RSAPrivateKey:
        """The RSA key that signs tokens."""
        key = serialization.load_pem_private_key(self.signing_key_file.read_bytes(), None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{self.signing_key_file} does not hold an RSA key")
        return key

    @property
    def signing_cert(self) -> x509.Certificate:
        """The certificate published in the JWKS as ``x5c``."""
        return load_certificate(self.signing_cert_file)


def _make_ca(directory: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = _new_key()
    subject = "mailgate sandbox CA"
    cert = (
        _builder(subject, _name(subject), key, 3650)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .sign(key, hashes.SHA256())
    )
    _write(directory / "ca-key.pem", _key_pem(key), private=True)
    _write(directory / "ca.pem", _cert_pem(cert))
    return cert, key


def _make_server_cert(
    directory: Path, ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey
) -> None:
    key = _new_key()
    san = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    cert = (
        _builder("127.0.0.1", ca_cert.subject, key, 825)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(san, False)
        .add_extension(aki, False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / "server-key.pem", _key_pem(key), private=True)
    _write(directory / "server.pem", _cert_pem(cert))


def ensure_pki(state_dir: Path) -> SandboxPki:
    """Create the CA, server certificate and signing key under ``state_dir/pki`` if missing."""
    directory = state_dir / "pki"
    pki = SandboxPki(
        ca_file=directory / "ca.pem",
        server_cert_file=directory / "server.pem",
        server_key_file=directory / "server-key.pem",
        signing_cert_file=directory / "signing.pem",
        signing_key_file=directory / "signing-key.pem",
    )
    if not (pki.ca_file.exists() and (directory / "ca-key.pem").exists()):
        ca_cert, ca_key = _make_ca(directory)
        _make_server_cert(directory, ca_cert, ca_key)
    elif not (pki.server_cert_file.exists() and pki.server_key_file.exists()):
        ca_cert = load_certificate(pki.ca_file)
        loaded = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        _make_server_cert(directory, ca_cert, loaded)
    if not (pki.signing_cert_file.exists() and pki.signing_key_file.exists()):
        key = _new_key()
        _write(pki.signing_key_file, _key_pem(key), private=True)
        _write(
            pki.signing_cert_file,
            _cert_pem(_self_signed("mailgate sandbox token signing", key, 3650)),
        )
    return pki


@dataclass(frozen=True)
class ClientCertificate:
    """A demo client certificate as a user would upload it to an app registration."""

    cert_file: Path
    key_file: Path
    pfx_file: Path
    pfx_password: str


def create_client_certificate(
    directory: Path, stem: str, common_name: str, pfx_password: str, days: int = 365
) -> ClientCertificate:
    """Write ``stem.pem`` (public), ``stem-key.pem`` and ``stem.pfx`` (both 0600)."""
    key = _new_key()
    cert = _self_signed(common_name, key, days)
    result = ClientCertificate(
        cert_file=directory / f"{stem}.pem",
        key_file=directory / f"{stem}-key.pem",
        pfx_file=directory / f"{stem}.pfx",
        pfx_password=pfx_password,
    )
    _write(result.cert_file, _cert_pem(cert))
    _write(result.key_file, _key_pem(key), private=True)
    pfx = pkcs12.serialize_key_and_certificates(
        common_name.encode(),
        key,
        cert,
        None,
        serialization.BestAvailableEncryption(pfx_password.encode()),
    )
    _write(result.pfx_file, pfx, private=True)
    return result
