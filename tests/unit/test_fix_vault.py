"""Review fixes in the vault and token caches: rotation under the lock, key handling, damage."""

from __future__ import annotations

import base64
import json
import logging
import threading
from pathlib import Path

import msal
import pytest

from mailgate.errors import InvalidInputError, MasterKeyError, VaultError
from mailgate.identity.cache import TokenCacheStore
from mailgate.identity.inputs import parse_redirect_uri
from mailgate.identity.profiles import CredentialRequest, build_profile
from mailgate.secret import Secret
from mailgate.vault import (
    CredentialKind,
    CredentialProfile,
    MasterKey,
    SecretField,
    Vault,
    generate_key_text,
    load_master_key,
    load_master_key_file,
)

SECRET = "Xy7~super.secret-value_0123456789"
CID = "0a1b2c3d-0000-4000-8000-00000000abcd"


def _profile(name: str = "daemon") -> CredentialProfile:
    return CredentialProfile(
        name=name,
        kind=CredentialKind.CLIENT_SECRET,
        tenant="contoso.onmicrosoft.com",
        client_id=CID,
        scopes=("https://outlook.office365.com/.default",),
    )


def _new_key() -> MasterKey:
    return MasterKey(base64.urlsafe_b64decode(generate_key_text()), "test")


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILGATE_MASTER_KEY", raising=False)


def _stored_vault(tmp_path: Path) -> Vault:
    vault = Vault(tmp_path)
    vault.add(_profile(), {SecretField.CLIENT_SECRET: Secret(SECRET)})
    return vault


# -- 1. rotation and a second process -----------------------------------------------------


def test_process_starting_mid_rotation_does_not_lose_the_new_key(tmp_path: Path) -> None:
    vault = _stored_vault(tmp_path)
    seen: list[str] = []

    def other_process_starts(old: MasterKey, new: MasterKey) -> int:
        # Another process loads the key while the rotation is under way.
        worker = threading.Thread(target=lambda: seen.append(Vault(tmp_path).key.key_id))
        worker.start()
        worker.join(timeout=1)
        return 0

    vault.rotate_key(None, other_process_starts)
    assert Vault(tmp_path).secret("daemon", SecretField.CLIENT_SECRET) == Secret(SECRET)
    assert not (tmp_path / "master.key.new").exists()


def test_key_load_waits_for_the_rotation_lock(tmp_path: Path) -> None:
    vault = _stored_vault(tmp_path)
    new = _new_key()
    ids: list[str] = []
    worker = threading.Thread(target=lambda: ids.append(Vault(tmp_path).key.key_id))

    class Spy(MasterKey):
        def encrypt(self, plaintext: bytes, context: str) -> str:
            if not worker.is_alive() and not ids:
                worker.start()
                worker.join(timeout=0.3)
            return super().encrypt(plaintext, context)

    vault.rotate_key(Spy(new.raw, "spy"))
    worker.join()
    # The loader started mid-rotation waited for it and got the new key, not a half state.
    assert ids == [new.key_id]
    assert Vault(tmp_path).secret("daemon", SecretField.CLIENT_SECRET) == Secret(SECRET)
    assert load_master_key(tmp_path).key_id == new.key_id


def test_pending_key_replaced_mid_rotation_stops_before_the_vault_is_written(
    tmp_path: Path,
) -> None:
    vault = _stored_vault(tmp_path)
    before = vault.path.read_bytes()
    pending = tmp_path / "master.key.new"

    class Saboteur(MasterKey):
        def encrypt(self, plaintext: bytes, context: str) -> str:
            pending.write_text(generate_key_text() + "\n")
            return super().encrypt(plaintext, context)

    with pytest.raises(MasterKeyError, match="no longer holds"):
        vault.rotate_key(Saboteur(_new_key().raw, "saboteur"))
    assert vault.path.read_bytes() == before


# -- 2. --new-key-file with the key file --------------------------------------------------


def test_given_new_key_replaces_master_key_file(tmp_path: Path) -> None:
    vault = _stored_vault(tmp_path)
    new = _new_key()
    vault.rotate_key(new)
    assert load_master_key(tmp_path).key_id == new.key_id
    assert Vault(tmp_path).secret("daemon", SecretField.CLIENT_SECRET) == Secret(SECRET)


# -- 3./4. token caches ---------------------------------------------------------------------


def test_caches_are_reencrypted_after_vault_and_key_are_committed(tmp_path: Path) -> None:
    vault = _stored_vault(tmp_path)
    committed: list[bool] = []

    def check(old: MasterKey, new: MasterKey) -> int:
        stored = json.loads(vault.path.read_text())["key_id"]
        committed.append(stored == new.key_id == load_master_key(tmp_path).key_id)
        return 0

    vault.rotate_key(None, check)
    assert committed == [True]


def _cache_with_state(store: TokenCacheStore, name: str) -> None:
    with store.open(name) as cache:
        cache.add(
            {
                "client_id": CID,
                "scope": ["s"],
                "token_endpoint": "https://login.example/t/oauth2/v2.0/token",
                "response": {"access_token": "at", "expires_in": 3600, "token_type": "Bearer"},
            }
        )


def test_undecryptable_cache_is_empty_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _cache_with_state(TokenCacheStore(tmp_path, _new_key()), "desk")
    other = TokenCacheStore(tmp_path, _new_key())
    with caplog.at_level(logging.WARNING), other.open("desk") as cache:
        assert isinstance(cache, msal.SerializableTokenCache)
        assert list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)) == []
    assert "mailgate creds login desk" in caplog.text
    (tmp_path / "desk.bin").write_bytes(b"\xff\xfe garbage")
    with other.open("desk") as cache:
        assert list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)) == []


def test_reencrypt_skips_caches_the_old_key_cannot_read(tmp_path: Path) -> None:
    old, new = _new_key(), _new_key()
    store = TokenCacheStore(tmp_path, old)
    _cache_with_state(store, "a")
    (tmp_path / "b.bin").write_text("v1.0000.damaged")
    assert store.reencrypt(old, new) == 1
    with TokenCacheStore(tmp_path, new).open("a") as cache:
        assert list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)) != []


# -- 5. writes that do not encrypt ---------------------------------------------------------


def test_remove_needs_no_key_and_keeps_the_stored_key_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = _stored_vault(tmp_path)
    vault.add(_profile("other"), {SecretField.CLIENT_SECRET: Secret(SECRET)})
    key_id = vault.key.key_id
    (tmp_path / "master.key").rename(tmp_path / "saved.key")
    Vault(tmp_path).remove("other")
    assert not (tmp_path / "master.key").exists()
    assert json.loads(vault.path.read_text())["key_id"] == key_id
    monkeypatch.setenv("MAILGATE_MASTER_KEY", generate_key_text())
    Vault(tmp_path).remove("daemon")
    assert json.loads(vault.path.read_text())["key_id"] == key_id


def test_missing_key_file_for_existing_vault_is_not_recreated(tmp_path: Path) -> None:
    _stored_vault(tmp_path)
    (tmp_path / "master.key").unlink()
    with pytest.raises(MasterKeyError, match="MAILGATE_MASTER_KEY"):
        Vault(tmp_path).secret("daemon", SecretField.CLIENT_SECRET)
    assert not (tmp_path / "master.key").exists()


# -- 6. malformed vault files --------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b'{"version": 1, "credentials": []}',
        b'{"version": 1, "credentials": {"x": "str"}}',
        b'{"version": 1}',
        b'{"version": 1, "credentials": {"x": {"profile": {}, "secrets": {"a": 1}}}}',
        b'{"version": 1, "key_id": 5, "credentials": {}}',
        b'{"version": 1, "credentials": {"\xff": 1}}',
    ],
)
def test_malformed_vault_is_a_vault_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "vault.json").write_bytes(content)
    with pytest.raises(VaultError, match="damaged"):
        Vault(tmp_path).list()


def test_short_blob_is_a_damaged_value(tmp_path: Path) -> None:
    key = _new_key()
    with pytest.raises(MasterKeyError, match="damaged"):
        key.decrypt(f"v1.{key.key_id}.AAAA", "ctx")


# -- 7. concurrent creation of master.key --------------------------------------------------


def test_first_start_race_keeps_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    winner = generate_key_text()
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_other_process_wins(*args: object, **kwargs: object) -> tuple[int, str]:
        result = real_mkstemp(*args, **kwargs)  # type: ignore[call-overload]
        if not (tmp_path / "master.key").exists():
            (tmp_path / "master.key").write_text(winner + "\n")
            (tmp_path / "master.key").chmod(0o600)
        return result  # type: ignore[no-any-return]

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp_then_other_process_wins)
    key = load_master_key(tmp_path)
    assert key.raw == base64.urlsafe_b64decode(winner)
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]


# -- 8. user mistakes ------------------------------------------------------------------------


def test_key_file_missing_or_not_ascii_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError):
        load_master_key_file(tmp_path / "missing.key")
    (tmp_path / "bad.key").write_bytes("schlüssel".encode())
    with pytest.raises(InvalidInputError):
        load_master_key_file(tmp_path / "bad.key")


@pytest.mark.parametrize(
    ("name", "username"), [("approvals\n", None), ("approvals", "alice@contoso.com\n")]
)
def test_trailing_newline_is_refused(name: str, username: str | None) -> None:
    request = CredentialRequest(
        name=name,
        kind=CredentialKind.DELEGATED,
        client_id=CID,
        tenant="contoso.onmicrosoft.com",
        username=username,
    )
    with pytest.raises(InvalidInputError):
        build_profile(request)


@pytest.mark.parametrize("uri", ["http://localhost:99999", "http://localhost:0"])
def test_redirect_port_out_of_range(uri: str) -> None:
    with pytest.raises(InvalidInputError, match="redirect URI"):
        parse_redirect_uri(uri)
    assert parse_redirect_uri("http://localhost:65535") == "http://localhost:65535"
