"""MSAL's token cache, persisted per credential and encrypted with the vault's master key.

MSAL's ``SerializableTokenCache`` persists nothing by itself; this module loads it before a token
call and saves it after, under an exclusive file lock. Holding the lock across the call also
means two processes that need a token for the same credential at once make one request, not two.

A cache is only a cache: one that cannot be decrypted (written under another key, or damaged)
is treated as empty with a warning, so the credential signs in again instead of every token
call failing.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailgate.errors import MailgateError
from mailgate.fileio import exclusive_lock, write_private_file
from mailgate.vault import MasterKey

if TYPE_CHECKING:
    import msal

__all__ = ["TokenCacheStore", "remove_cache"]

_log = logging.getLogger(__name__)


def remove_cache(directory: Path, name: str) -> None:
    """Delete credential ``name``'s cache in ``directory``; needs no master key."""
    with exclusive_lock(directory / f"{name}.lock"):
        (directory / f"{name}.bin").unlink(missing_ok=True)
    (directory / f"{name}.lock").unlink(missing_ok=True)


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

    def _load(self, name: str, cache: msal.SerializableTokenCache) -> None:
        path = self.path(name)
        if not path.exists():
            return
        try:
            clear = self.key.decrypt(path.read_text("ascii"), self._context(name))
            cache.deserialize(clear.decode("utf-8"))
        except (MailgateError, ValueError) as exc:
            # ValueError covers non-ASCII files, bad UTF-8 and bad JSON alike.
            reason = exc.message if isinstance(exc, MailgateError) else "it is not a token cache"
            _log.warning(
                "the token cache of credential %r cannot be read (%s); it is ignored. "
                "App-only and password credentials sign in again by themselves; a delegated "
                "credential needs `mailgate creds login %s`.",
                name,
                reason,
                name,
            )

    def read(self, name: str) -> dict[str, Any] | None:
        """The credential's cache as MSAL wrote it (its JSON schema), read under the lock;
        None if there is none or it cannot be read (then :meth:`open` warns about it)."""
        path = self.path(name)
        with exclusive_lock(self.directory / f"{name}.lock"):
            try:
                text = path.read_text("ascii")
            except (OSError, ValueError):  # missing, unreadable or not ASCII
                return None
            try:
                data = json.loads(self.key.decrypt(text, self._context(name)).decode("utf-8"))
            except (MailgateError, ValueError):
                return None
        return data if isinstance(data, dict) else None

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[msal.SerializableTokenCache]:
        """Yield the credential's cache; write it back (encrypted) if MSAL changed it."""
        import msal  # on use: a token served by read() needs no MSAL

        with exclusive_lock(self.directory / f"{name}.lock"):
            cache = msal.SerializableTokenCache()
            self._load(name, cache)
            yield cache
            if cache.has_state_changed:
                blob = self.key.encrypt(cache.serialize().encode("utf-8"), self._context(name))
                write_private_file(self.path(name), blob.encode("ascii"))

    def remove(self, name: str) -> None:
        remove_cache(self.directory, name)

    def reencrypt(self, old: MasterKey, new: MasterKey) -> int:
        """Re-encrypt every cache file from ``old`` to ``new`` (after the vault's rotation).

        Each file is rewritten under its own lock, so a token call running meanwhile is not
        overwritten. A file ``old`` cannot decrypt is left as it is: :meth:`open` ignores it.
        """
        self.key = new
        count = 0
        if not self.directory.exists():
            return 0
        for path in sorted(self.directory.glob("*.bin")):
            name = path.stem
            context = self._context(name)
            with exclusive_lock(self.directory / f"{name}.lock"):
                try:
                    clear = old.decrypt(path.read_text("ascii"), context)
                except (MailgateError, OSError, ValueError):
                    continue
                write_private_file(path, new.encrypt(clear, context).encode("ascii"))
            count += 1
        return count
