"""The credential vault: profiles in clear, secrets AES-GCM encrypted under a master key.

Certificate loading (``load_certificate``, ``LoadedCertificate``) loads on first use: it pulls
in cryptography's X.509 and PKCS#12 code, which reading the vault does not need.
"""

from typing import TYPE_CHECKING, Any

from mailgate.vault._crypto import ENV_MASTER_KEY, MasterKey, generate_key_text, load_master_key
from mailgate.vault._profiles import (
    EXPIRY_WARNING_DAYS,
    CertificateInfo,
    CredentialKind,
    CredentialProfile,
    DelegatedFlow,
    SecretField,
)
from mailgate.vault._store import Vault, load_master_key_file

if TYPE_CHECKING:
    from mailgate.vault._certificates import LoadedCertificate, load_certificate

__all__ = [
    "ENV_MASTER_KEY",
    "EXPIRY_WARNING_DAYS",
    "CertificateInfo",
    "CredentialKind",
    "CredentialProfile",
    "DelegatedFlow",
    "LoadedCertificate",
    "MasterKey",
    "SecretField",
    "Vault",
    "generate_key_text",
    "load_certificate",
    "load_master_key",
    "load_master_key_file",
]


def __getattr__(name: str) -> Any:
    if name in ("LoadedCertificate", "load_certificate"):
        from mailgate.vault import _certificates

        value = getattr(_certificates, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
