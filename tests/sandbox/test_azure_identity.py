"""azure-identity credentials, unmodified, against the sandbox.

azure-identity takes ``authority`` as a host (``127.0.0.1:PORT``) and appends the tenant id
itself; ``connection_verify`` reaches its requests transport.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import msal.authority
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientSecretCredential

from mailgate.testing import SandboxController
from tests.sandbox.helpers import EXCHANGE_DEFAULT, decode

pytestmark = pytest.mark.sandbox


def _options(sandbox: SandboxController) -> dict[str, Any]:
    return {
        "authority": sandbox.authority_host,
        "disable_instance_discovery": True,
        "connection_verify": sandbox.ca_file,
    }


def test_client_secret_credential(sandbox: SandboxController, contoso: dict[str, Any]) -> None:
    app = sandbox.app("mailgate-daemon")
    credential = ClientSecretCredential(
        contoso["id"], app["client_id"], app["secrets"][0]["value"], **_options(sandbox)
    )
    token = credential.get_token(EXCHANGE_DEFAULT)
    claims = decode(sandbox, token.token, "https://outlook.office365.com")
    assert claims["appid"] == app["client_id"] and "IMAP.AccessAsApp" in claims["roles"]
    assert token.expires_on == claims["exp"]


def test_client_secret_credential_reports_aadsts(
    sandbox: SandboxController, contoso: dict[str, Any]
) -> None:
    app = sandbox.app("mailgate-daemon")
    expired = next(s["value"] for s in app["secrets"] if s["expired"])
    credential = ClientSecretCredential(
        contoso["id"], app["client_id"], expired, **_options(sandbox)
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000222"):
        credential.get_token(EXCHANGE_DEFAULT)


def test_certificate_credential(
    sandbox: SandboxController, contoso: dict[str, Any], tmp_path: Path
) -> None:
    app = sandbox.app("mailgate-daemon")
    cert = app["certificates"][0]
    combined = tmp_path / "daemon-combined.pem"
    combined.write_text(Path(cert["key_file"]).read_text() + Path(cert["cert_file"]).read_text())
    credential = CertificateCredential(
        contoso["id"], app["client_id"], certificate_path=str(combined), **_options(sandbox)
    )
    token = credential.get_token("https://graph.microsoft.com/.default")
    claims = decode(sandbox, token.token, "https://graph.microsoft.com")
    assert claims["appidacr"] == "2" and "Mail.Send" in claims["roles"]


def test_certificate_credential_from_pfx(
    sandbox: SandboxController, contoso: dict[str, Any]
) -> None:
    app = sandbox.app("mailgate-daemon")
    cert = app["certificates"][0]
    credential = CertificateCredential(
        contoso["id"],
        app["client_id"],
        certificate_path=cert["pfx_file"],
        password=cert["pfx_password"],
        **_options(sandbox),
    )
    assert credential.get_token(EXCHANGE_DEFAULT).token


def test_username_password_credential(
    sandbox: SandboxController, contoso: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    azure_identity = pytest.importorskip("azure.identity")
    if not hasattr(azure_identity, "UsernamePasswordCredential"):
        pytest.skip("this azure-identity no longer has UsernamePasswordCredential")
    # MSAL's pre-ROPC realm lookup drops the authority's port, and azure-identity gives no
    # http_client seam to route it; tell MSAL the host has no realm endpoint instead.
    monkeypatch.setattr(
        msal.authority.Authority, "_domains_without_user_realm_discovery", {"127.0.0.1"}
    )
    alice = sandbox.user("alice")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        credential = azure_identity.UsernamePasswordCredential(
            sandbox.app("mailgate-public")["client_id"],
            alice["upn"],
            alice["password"],
            tenant_id=contoso["id"],
            **_options(sandbox),
        )
        token = credential.get_token("https://outlook.office.com/SMTP.Send")
    claims = decode(sandbox, token.token, "https://outlook.office.com")
    assert claims["upn"] == alice["upn"] and claims["scp"] == "SMTP.Send"
