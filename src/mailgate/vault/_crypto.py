"""AES-256-GCM encryption of secrets under the master key.

Blobs look like ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The key id (first 8 bytes
of SHA-256 of the key, hex) lets us say "this vault was written with another master key" instead
of a bare authentication failure. The associated data binds each blob to the place it belongs
(credential name + field), so a blob copied onto another credential does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailgate.errors import InvalidInputError, MasterKeyError

__all__ = ["ENV_MASTER_KEY", "MasterKey", "generate_key_text", "load_master_key"]

ENV_MASTER_KEY = "MAILGATE_MASTER_KEY"
_VERSION = "v1"
_NONCE_BYTES = 12


def generate_key_text() -> str:
    """A fresh 256-bit key in the text form ``MAILGATE_MASTER_KEY`` and the key file use."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def _parse_key_text(text: str, source: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 32:
        raise InvalidInputError(
            source, "a 32-byte key in URL-safe base64 (make one with `mailgate creds new-key`)"
        )
    return raw


@dataclass(frozen=True, repr=False)
class MasterKey:
    """The vault's AES-256 key. Its ``repr`` shows only the key id."""

    raw: bytes
    source: str

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"MasterKey(id={self.key_id}, source={self.source})"

    def encrypt(self, plaintext: bytes, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.raw).encrypt(nonce, plaintext, context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii")
        return f"{_VERSION}.{self.key_id}.{body}"

    def decrypt(self, blob: str, context: str) -> bytes:
        try:
            version, key_id, body = blob.split(".", 2)
            data = base64.urlsafe_b64decode(body.encode("ascii"))
        except (ValueError, binascii.Error) as exc:
            raise MasterKeyError(
                f"an encrypted value for {context} is damaged.",
                "restore the vault file from a backup or add the credential again.",
            ) from exc
        if version != _VERSION:
            raise MasterKeyError(
                f"the vault was written by a newer mailgate (format {version}).",
                "upgrade mailgate.",
            )
        if key_id != self.key_id:
            raise MasterKeyError(
                f"the vault was encrypted with another master key (key id {key_id}, "
                f"this one is {self.key_id} from {self.source}).",
                f"set {ENV_MASTER_KEY} to the key the vault was created with, "
                "or point MAILGATE_HOME at the matching data directory.",
            )
        try:
            return AESGCM(self.raw).decrypt(
                data[:_NONCE_BYTES], data[_NONCE_BYTES:], context.encode("utf-8")
            )
        except InvalidTag as exc:
            raise MasterKeyError(
                f"an encrypted value for {context} failed its integrity check.",
                "the vault file was altered; restore it from a backup or add the credential again.",
            ) from exc
        except ValueError as exc:
            # AESGCM rejects a nonce shorter than 12 bytes with ValueError: a truncated blob.
            raise MasterKeyError(
                f"an encrypted value for {context} is damaged.",
                "restore the vault file from a backup or add the credential again.",
            ) from exc


def _create_key_file(key_file: Path) -> None:
    """Create ``key_file`` with a new key unless another process wins the race to create it.

    The key is written complete to a temporary file and hard-linked into place: ``link`` fails
    if the name exists, so two processes starting at once agree on one key (the loser reads the
    winner's) instead of each encrypting under its own and one of them being overwritten.
    """
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".master.key.", dir=key_file.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write((generate_key_text() + "\n").encode("ascii"))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, key_file)
    finally:
        Path(tmp).unlink(missing_ok=True)
    dir_fd = os.open(key_file.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_master_key(data_dir: Path, *, create: bool = True) -> MasterKey:
    """The key from ``$MAILGATE_MASTER_KEY``, else from ``data_dir/master.key`` (created 0600)."""
    env_value = os.environ.get(ENV_MASTER_KEY)
    if env_value:
        return MasterKey(_parse_key_text(env_value, ENV_MASTER_KEY), ENV_MASTER_KEY)
    key_file = data_dir / "master.key"
    if not key_file.exists():
        if not create:
            raise MasterKeyError(
                f"no master key: {ENV_MASTER_KEY} is not set and {key_file} does not exist.",
                f"set {ENV_MASTER_KEY} or restore the key file.",
            )
        _create_key_file(key_file)
    mode = stat.S_IMODE(key_file.stat().st_mode)
    if mode & 0o077:
        raise MasterKeyError(
            f"the master key file {key_file} is readable by other users (mode {mode:o}).",
            f"run `chmod 600 {key_file}`, then rotate the key (`mailgate creds rotate-key`).",
        )
    # Undecodable bytes must end as "not a key", not as an internal error.
    text = key_file.read_bytes().decode("ascii", errors="replace")
    return MasterKey(_parse_key_text(text, str(key_file)), str(key_file))
