"""A sandbox for identity tests and a vault/provider bound to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailgate.identity import TokenProvider
from mailgate.identity.profiles import CredentialRequest, build_profile
from mailgate.secret import Secret
from mailgate.testing import SandboxController
from mailgate.vault import CredentialKind, DelegatedFlow, SecretField, Vault


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("idp")) as controller:
        yield controller


@pytest.fixture
def vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Vault:
    monkeypatch.delenv("MAILGATE_MASTER_KEY", raising=False)
    return Vault(tmp_path / "home")


def add_credential(
    vault: Vault,
    idp: SandboxController,
    name: str,
    kind: CredentialKind,
    app: str,
    secrets: dict[SecretField, Secret] | None = None,
    **fields: Any,
) -> None:
    certificate = fields.pop("certificate", None)
    request = CredentialRequest(
        name=name,
        kind=kind,
        client_id=idp.app(app)["client_id"],
        cloud="sandbox",
        tenant=idp.tenant("contoso")["id"],
        **fields,
    )
    profile, _ = build_profile(request, certificate)
    vault.add(profile, secrets or {}, replace=True)


def provider_for(vault: Vault, idp: SandboxController, interaction: Any = None) -> TokenProvider:
    return TokenProvider(
        vault, interaction=interaction, sandbox_file=Path(idp.state_dir) / "sandbox.json"
    )


def daemon_secret(idp: SandboxController, expired: bool = False) -> dict[str, Any]:
    return next(s for s in idp.app("mailgate-daemon")["secrets"] if s["expired"] is expired)


__all__ = ["CredentialKind", "DelegatedFlow", "SecretField", "add_credential", "provider_for"]
