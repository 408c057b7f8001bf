"""MSAL's token cache, persisted per credential and encrypted with the vault's master key.

MSAL's ``SerializableTokenCache`` persists nothing by itself; this module loads it before a token
call and saves it after, under an exclusive file lock. Holding the lock across the call also
means two processes that need a token for the same credential at once make one request, not two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import msal

from mailgate.fileio import exclusive_lock, write_private_file
from mailgate.vault import MasterKey

__all__ = ["TokenCacheStore"]


class TokenCacheStore:
    """Encrypted MSAL token caches under ``<data dir>/token-cache/<credential>.bin``."""

    def __init__(self, directory: Path, key: MasterKey) -> None:
        self.directory = directory
        self.key = key

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.bin"

    @staticmethod
    def _context(name: str) -> str:
        return f"token cache {name!r}"

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[msal.SerializableTokenCache]:
        """Yield the credential's cache; write it back (encrypted) if MSAL changed it."""
        with exclusive_lock(self.directory / f"{name}.lock"):
            cache = msal.SerializableTokenCache()
            path = self.path(name)
            if path.exists():
                blob = path.read_text("ascii")
                cache.deserialize(self.key.decrypt(blob, self._context(name)).decode("utf-8"))
            yield cache
            if cache.has_state_changed:
                blob = self.key.encrypt(cache.serialize().encode("utf-8"), self._context(name))
                write_private_file(path, blob.encode("ascii"))

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
        (self.directory / f"{name}.lock").unlink(missing_ok=True)

    def reencrypt(self, old: MasterKey, new: MasterKey) -> int:
        """Re-encrypt every cache file from ``old`` to ``new`` (vault key rotation)."""
        count = 0
        if not self.directory.exists():
            return 0
        for path in sorted(self.directory.glob("*.bin")):
            context = self._context(path.stem)
            clear = old.decrypt(path.read_text("ascii"), context)
            write_private_file(path, new.encrypt(clear, context).encode("ascii"))
            count += 1
        self.key = new
        return count
