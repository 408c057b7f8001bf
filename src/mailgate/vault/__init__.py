"""The credential vault: profiles in clear, secrets AES-GCM encrypted under a master key."""

from mailgate.vault._certificates import LoadedCertificate, load_certificate
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
