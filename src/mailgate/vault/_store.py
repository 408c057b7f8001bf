"""The vault file: credential profiles in clear, their secrets AES-GCM encrypted, mode 0600.

Layout of ``vault.json``::

    {"version": 1, "key_id": "<id of the master key>",
     "credentials": {"<name>": {"profile": {...}, "secrets": {"client_secret": "v1.<id>.<b64>"}}}}

Writes take an exclusive lock on ``vault.lock`` and replace the file atomically, so two
processes adding credentials at once do not lose either. Key rotation writes the new key to
``master.key.new`` under that lock and renames it last; a crash in between is finished (also
under the lock) by the next process that loads the key.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mailgate.errors import (
    CredentialNotFoundError,
    InvalidInputError,
    MailgateError,
    MasterKeyError,
    VaultError,
)
from mailgate.fileio import exclusive_lock, write_private_file
from mailgate.secret import Secret
from mailgate.vault._crypto import (
    ENV_MASTER_KEY,
    MasterKey,
    _parse_key_text,
    generate_key_text,
    load_master_key,
)
from mailgate.vault._profiles import CredentialProfile, SecretField

__all__ = ["Vault", "load_master_key_file"]

_FORMAT_VERSION = 1


class Vault:
    """Credential profiles and their encrypted secrets in one data directory."""

    def __init__(self, directory: Path, key: MasterKey | None = None) -> None:
        self.directory = directory
        self.path = directory / "vault.json"
        self._key = key

    # -- key handling -----------------------------------------------------------------------

    @property
    def key(self) -> MasterKey:
        if self._key is None:
            with self._locked():
                self._load_key_locked()
        assert self._key is not None
        return self._key

    def _load_key_locked(self) -> MasterKey:
        """Finish a crashed rotation, then load the key; the caller holds ``vault.lock``.

        A vault that already names a key never gets a freshly generated one: that would only
        hide the real problem (a lost key file) behind an integrity error later.
        """
        if self._key is None:
            self._finish_interrupted_rotation()
            stored_id = self._read().get("key_id")
            self._key = load_master_key(self.directory, create=not stored_id)
        return self._key

    def _finish_interrupted_rotation(self) -> None:
        """Under the lock: rename ``master.key.new`` if the vault was written with it, else drop it.

        Only a pending key that is neither the vault's nor the current one is left alone: it
        may be an operator's, and deleting it could lose the only copy.
        """
        pending = self.directory / "master.key.new"
        if not pending.exists() or os.environ.get(ENV_MASTER_KEY):
            return
        stored_id = self._read().get("key_id")
        candidate = load_master_key_file(pending)
        current = self.directory / "master.key"
        if stored_id == candidate.key_id:
            os.replace(pending, current)
        elif current.exists() and stored_id == load_master_key_file(current).key_id:
            pending.unlink()

    # -- file I/O ---------------------------------------------------------------------------

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self.directory / "vault.lock")

    def _damaged(self, what: str) -> VaultError:
        return VaultError(
            f"the vault file {self.path} is damaged ({what}).",
            "restore it from a backup; mailgate never writes a partial vault file.",
        )

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"version": _FORMAT_VERSION, "credentials": {}}
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise self._damaged("not UTF-8 text") from exc
        except ValueError as exc:
            raise VaultError(
                f"the vault file {self.path} is not valid JSON ({exc}).",
                "restore it from a backup; mailgate never writes a partial vault file.",
            ) from exc
        if not isinstance(data, dict) or data.get("version") != _FORMAT_VERSION:
            raise VaultError(
                f"the vault file {self.path} has an unknown format.",
                "restore it from a backup or use the mailgate version that wrote it.",
            )
        self._validate(data)
        return data

    def _validate(self, data: dict[str, Any]) -> None:
        """Check the shape the rest of this class relies on, so damage is a VaultError."""
        if not isinstance(data.get("key_id", ""), str):
            raise self._damaged("key_id is not a string")
        credentials = data.get("credentials")
        if not isinstance(credentials, dict):
            raise self._damaged("'credentials' is missing or not an object")
        for name, entry in credentials.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("profile"), dict):
                raise self._damaged(f"entry {name!r} has no profile object")
            secrets = entry.get("secrets", {})
            if not isinstance(secrets, dict) or not all(
                isinstance(v, str) for v in secrets.values()
            ):
                raise self._damaged(f"the secrets of entry {name!r} are not strings")

    def _write(self, data: dict[str, Any], key_id: str | None) -> None:
        """Write ``data``; ``key_id`` only when this write encrypted something with that key.

        A write that encrypts nothing (``rm``) keeps the stored id, so it never claims the
        vault for whichever key the current process happens to hold.
        """
        if key_id is not None:
            data["key_id"] = key_id
        write_private_file(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def _check_key(self, data: dict[str, Any], key: MasterKey) -> None:
        stored = data.get("key_id")
        if stored and data.get("credentials") and stored != key.key_id:
            raise MasterKeyError(
                f"the vault was encrypted with another master key (key id {stored}, this one is "
                f"{key.key_id} from {key.source}).",
                f"set {ENV_MASTER_KEY} to the key the vault was created with.",
            )

    @staticmethod
    def _context(name: str, field: str) -> str:
        return f"credential {name!r} field {field}"

    # -- public API -------------------------------------------------------------------------

    def list(self) -> list[CredentialProfile]:
        data = self._read()
        return [self._profile(name, entry) for name, entry in sorted(data["credentials"].items())]

    def _profile(self, name: str, entry: dict[str, Any]) -> CredentialProfile:
        try:
            return CredentialProfile.model_validate(entry["profile"])
        except (KeyError, ValidationError) as exc:
            raise VaultError(
                f"the vault entry {name!r} is damaged.",
                f"remove it with `mailgate creds rm {name}` and add it again.",
            ) from exc

    def get(self, name: str) -> CredentialProfile:
        entry = self._read()["credentials"].get(name)
        if entry is None:
            raise CredentialNotFoundError(
                f"no credential named {name!r}.", "list them with `mailgate creds list`."
            )
        return self._profile(name, entry)

    def secret_fields(self, name: str) -> tuple[str, ...]:
        """Which secrets credential ``name`` holds (names only; nothing is decrypted)."""
        self.get(name)
        return tuple(sorted(self._read()["credentials"][name].get("secrets", {})))

    def secret(self, name: str, field: SecretField) -> Secret | None:
        """The decrypted secret ``field`` of credential ``name``, or None if it has none."""
        data = self._read()
        entry = data["credentials"].get(name)
        if entry is None:
            raise CredentialNotFoundError(
                f"no credential named {name!r}.", "list them with `mailgate creds list`."
            )
        blob = entry.get("secrets", {}).get(str(field))
        if blob is None:
            return None
        key = self.key
        self._check_key(data, key)
        return Secret(key.decrypt(blob, self._context(name, str(field))).decode("utf-8"))

    def add(
        self,
        profile: CredentialProfile,
        secrets: dict[SecretField, Secret],
        *,
        replace: bool = False,
    ) -> None:
        with self._locked():
            key = self._load_key_locked()
            data = self._read()
            self._check_key(data, key)
            if profile.name in data["credentials"] and not replace:
                raise VaultError(
                    f"a credential named {profile.name!r} exists already.",
                    "choose another name, or pass --replace to overwrite it.",
                )
            data["credentials"][profile.name] = {
                "profile": profile.model_dump(mode="json"),
                "secrets": {
                    str(field): key.encrypt(
                        value.reveal().encode("utf-8"), self._context(profile.name, str(field))
                    )
                    for field, value in secrets.items()
                },
            }
            self._write(data, key.key_id)

    def set_secret(
        self,
        name: str,
        field: SecretField,
        value: Secret,
        expires: datetime | None = None,
        *,
        secret_key_id: str | None = None,
        app_object_id: str | None = None,
    ) -> CredentialProfile:
        """Replace one secret (e.g. a new client secret value), its expiry date and key id.

        A new secret without a ``secret_key_id`` clears the stored one: it belonged to the old
        secret, and removing by it later would remove the wrong one.
        """
        with self._locked():
            key = self._load_key_locked()
            data = self._read()
            self._check_key(data, key)
            entry = data["credentials"].get(name)
            if entry is None:
                raise CredentialNotFoundError(
                    f"no credential named {name!r}.", "list them with `mailgate creds list`."
                )
            entry.setdefault("secrets", {})[str(field)] = key.encrypt(
                value.reveal().encode("utf-8"), self._context(name, str(field))
            )
            profile = self._profile(name, entry)
            updates: dict[str, Any] = {}
            if expires is not None:
                updates["secret_expires"] = expires
            if field is SecretField.CLIENT_SECRET:
                updates["secret_key_id"] = secret_key_id
            if app_object_id is not None:
                updates["app_object_id"] = app_object_id
            if updates:
                profile = profile.model_copy(update=updates)
                entry["profile"] = profile.model_dump(mode="json")
            self._write(data, key.key_id)
            return profile

    def remove(self, name: str) -> None:
        """Drop credential ``name``; needs no master key (nothing is decrypted or encrypted)."""
        with self._locked():
            data = self._read()
            if data["credentials"].pop(name, None) is None:
                raise CredentialNotFoundError(
                    f"no credential named {name!r}.", "list them with `mailgate creds list`."
                )
            self._write(data, None)

    def rotate_key(
        self,
        new_key: MasterKey | None = None,
        reencrypt_others: Callable[[MasterKey, MasterKey], int] | None = None,
    ) -> int:
        """Re-encrypt every secret under a new master key; returns how many were re-encrypted.

        Without ``new_key`` a key is generated (only possible when the key comes from the key
        file, not from ``MAILGATE_MASTER_KEY``). With the key file, the new key goes to
        ``master.key.new`` under the vault lock and is renamed to ``master.key`` only after the
        vault is written, so a crash at any point leaves a key that opens the vault. With
        ``MAILGATE_MASTER_KEY`` only the vault changes; the caller sets the variable afterwards.
        ``reencrypt_others`` re-encrypts files outside the vault (token caches); it runs after
        the vault and key are committed, because those files are expendable and the vault is not.
        """
        from_env = bool(os.environ.get(ENV_MASTER_KEY))
        if new_key is None and from_env:
            raise MasterKeyError(
                f"the master key comes from {ENV_MASTER_KEY}, so mailgate cannot replace it.",
                "create a key with `mailgate creds new-key --out FILE`, run "
                "`mailgate creds rotate-key --new-key-file FILE`, then set "
                f"{ENV_MASTER_KEY} to the new key.",
            )
        if new_key is None:
            new_key = MasterKey(_parse_key_text(generate_key_text(), "new key"), "new key")
        pending = self.directory / "master.key.new"
        current = self.directory / "master.key"
        count = 0
        with self._locked():
            old = self._load_key_locked()
            data = self._read()
            self._check_key(data, old)
            if not from_env:
                key_text = base64.urlsafe_b64encode(new_key.raw).decode("ascii") + "\n"
                write_private_file(pending, key_text.encode("ascii"))
            for name, entry in data["credentials"].items():
                for field, blob in entry.get("secrets", {}).items():
                    context = self._context(name, field)
                    entry["secrets"][field] = new_key.encrypt(old.decrypt(blob, context), context)
                    count += 1
            if not from_env:
                self._check_pending(pending, new_key)
                self._write(data, new_key.key_id)
                os.replace(pending, current)
                self._key = MasterKey(new_key.raw, str(current))
            else:
                self._write(data, new_key.key_id)
                self._key = new_key
        if reencrypt_others is not None:
            count += reencrypt_others(old, self._key)
        return count

    @staticmethod
    def _check_pending(pending: Path, new_key: MasterKey) -> None:
        """Refuse to commit a vault whose key file is not (still) in place."""
        try:
            found = load_master_key_file(pending).key_id
        except (OSError, MailgateError):
            found = None
        if found != new_key.key_id:
            raise MasterKeyError(
                f"{pending} no longer holds the new master key; the rotation was stopped "
                "and the vault is unchanged.",
                "make sure no other program edits the data directory, then run "
                "`mailgate creds rotate-key` again.",
            )


def load_master_key_file(path: Path) -> MasterKey:
    """A key from a specific file (used for rotation), checked like the main key file."""
    try:
        text = path.read_text("ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            "key file", "a readable file made by `mailgate creds new-key`", str(path)
        ) from exc
    return MasterKey(_parse_key_text(text, str(path)), str(path))
