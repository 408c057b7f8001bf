"""The vault file: credential profiles in clear, their secrets AES-GCM encrypted, mode 0600.

Layout of ``vault.json``::

    {"version": 1, "key_id": "<id of the master key>",
     "credentials": {"<name>": {"profile": {...}, "secrets": {"client_secret": "v1.<id>.<b64>"}}}}

Writes take an exclusive lock on ``vault.lock`` and replace the file atomically, so two
processes adding credentials at once do not lose either. Key rotation writes the new key to
``master.key.new`` first and renames it last; a crash in between is finished on the next open.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mailgate.errors import CredentialNotFoundError, MasterKeyError, VaultError
from mailgate.fileio import exclusive_lock, write_private_file
from mailgate.secret import Secret
from mailgate.vault._crypto import ENV_MASTER_KEY, MasterKey, generate_key_text, load_master_key
from mailgate.vault._profiles import CredentialProfile, SecretField

__all__ = ["Vault"]

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
            self._key = load_master_key(self.directory)
            self._finish_interrupted_rotation()
        return self._key

    def _finish_interrupted_rotation(self) -> None:
        pending = self.directory / "master.key.new"
        if not pending.exists() or self._key is None or os.environ.get(ENV_MASTER_KEY):
            return
        stored_id = self._read().get("key_id")
        candidate = load_master_key_file(pending)
        if stored_id == candidate.key_id:
            os.replace(pending, self.directory / "master.key")
            self._key = candidate
        elif stored_id == self._key.key_id:
            pending.unlink()

    # -- file I/O ---------------------------------------------------------------------------

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self.directory / "vault.lock")

    def _read(self) -> dict[str, Any]:
        try:
            raw = self.path.read_text("utf-8")
        except FileNotFoundError:
            return {"version": _FORMAT_VERSION, "credentials": {}}
        try:
            data = json.loads(raw)
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
        return data

    def _write(self, data: dict[str, Any]) -> None:
        data["key_id"] = self.key.key_id
        write_private_file(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def _check_key(self, data: dict[str, Any]) -> None:
        stored = data.get("key_id")
        if stored and data.get("credentials") and stored != self.key.key_id:
            raise MasterKeyError(
                f"the vault was encrypted with another master key (key id {stored}, this one is "
                f"{self.key.key_id} from {self.key.source}).",
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
        self._check_key(data)
        return Secret(self.key.decrypt(blob, self._context(name, str(field))).decode("utf-8"))

    def add(
        self,
        profile: CredentialProfile,
        secrets: dict[SecretField, Secret],
        *,
        replace: bool = False,
    ) -> None:
        with self._locked():
            data = self._read()
            self._check_key(data)
            if profile.name in data["credentials"] and not replace:
                raise VaultError(
                    f"a credential named {profile.name!r} exists already.",
                    "choose another name, or pass --replace to overwrite it.",
                )
            data["credentials"][profile.name] = {
                "profile": profile.model_dump(mode="json"),
                "secrets": {
                    str(field): self.key.encrypt(
                        value.reveal().encode("utf-8"), self._context(profile.name, str(field))
                    )
                    for field, value in secrets.items()
                },
            }
            self._write(data)

    def set_secret(
        self, name: str, field: SecretField, value: Secret, expires: datetime | None = None
    ) -> CredentialProfile:
        """Replace one secret (e.g. a new client secret value) and its expiry date."""
        with self._locked():
            data = self._read()
            self._check_key(data)
            entry = data["credentials"].get(name)
            if entry is None:
                raise CredentialNotFoundError(
                    f"no credential named {name!r}.", "list them with `mailgate creds list`."
                )
            entry.setdefault("secrets", {})[str(field)] = self.key.encrypt(
                value.reveal().encode("utf-8"), self._context(name, str(field))
            )
            profile = self._profile(name, entry)
            if expires is not None:
                profile = profile.model_copy(update={"secret_expires": expires})
                entry["profile"] = profile.model_dump(mode="json")
            self._write(data)
            return profile

    def remove(self, name: str) -> None:
        with self._locked():
            data = self._read()
            if data["credentials"].pop(name, None) is None:
                raise CredentialNotFoundError(
                    f"no credential named {name!r}.", "list them with `mailgate creds list`."
                )
            self._write(data)

    def rotate_key(
        self,
        new_key: MasterKey | None = None,
        reencrypt_others: Callable[[MasterKey, MasterKey], int] | None = None,
    ) -> int:
        """Re-encrypt every secret under a new master key; returns how many were re-encrypted.

        Without ``new_key`` a key is generated and written to the key file (only possible when
        the key comes from the key file, not from ``MAILGATE_MASTER_KEY``).
        ``reencrypt_others`` re-encrypts files outside the vault (token caches).
        """
        old = self.key
        pending = self.directory / "master.key.new"
        if new_key is None:
            if os.environ.get(ENV_MASTER_KEY):
                raise MasterKeyError(
                    f"the master key comes from {ENV_MASTER_KEY}, so mailgate cannot replace it.",
                    "create a key with `mailgate creds new-key --out FILE`, run "
                    "`mailgate creds rotate-key --new-key-file FILE`, then set "
                    f"{ENV_MASTER_KEY} to the new key.",
                )
            write_private_file(pending, (generate_key_text() + "\n").encode("ascii"))
            new_key = load_master_key_file(pending)
        count = 0
        with self._locked():
            data = self._read()
            self._check_key(data)
            for name, entry in data["credentials"].items():
                for field, blob in entry.get("secrets", {}).items():
                    context = self._context(name, field)
                    entry["secrets"][field] = new_key.encrypt(old.decrypt(blob, context), context)
                    count += 1
            if reencrypt_others is not None:
                count += reencrypt_others(old, new_key)
            self._key = new_key
            self._write(data)
            if pending.exists():
                os.replace(pending, self.directory / "master.key")
        return count


def load_master_key_file(path: Path) -> MasterKey:
    """A key from a specific file (used for rotation), checked like the main key file."""
    from mailgate.vault._crypto import _parse_key_text

    return MasterKey(_parse_key_text(path.read_text("ascii"), str(path)), str(path))
