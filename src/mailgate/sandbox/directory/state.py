"""Directory changes made while the sandbox runs, kept across restarts.

Graph's application endpoints and the emulated Exchange PowerShell change apps, service
principals, Exchange registrations and mailbox permissions. :class:`DirectoryState` writes those
parts of every tenant to ``state_dir/directory.json`` (mode 0600: it holds the new secrets)
after each change, and lays them over the tenant file at the next start, so an app created
through ``setup apply`` still signs in after ``mailgate sandbox`` restarts, like the random
secrets and GUIDs of the tenant file do. The file remembers the SHA-256 of the tenant file it
was made from: after the TOML is edited, the saved changes no longer apply and are ignored
(with a warning), because they may name apps or mailboxes that are gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mailgate.sandbox.directory.exchange_settings import ExchangeSettings
from mailgate.sandbox.directory.tenant import App, TenantFile

__all__ = ["STATE_FILE", "DirectoryState"]

STATE_FILE = "directory.json"
_VERSION = 1
_log = logging.getLogger(__name__)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class DirectoryState:
    """Saves and restores the changeable part of the directory of one sandbox."""

    def __init__(self, state_dir: Path, tenant_file: Path) -> None:
        self.path = state_dir / STATE_FILE
        self.tenant_file = tenant_file
        self.certificate_dir = state_dir / "certs" / "graph"

    def snapshot(self, directory: TenantFile) -> dict[str, Any]:
        """The JSON document for the current state of ``directory``."""
        return {
            "version": _VERSION,
            "tenant_file_sha256": _digest(self.tenant_file),
            "tenants": {
                tenant.id: {
                    "apps": [a.model_dump(mode="json") for a in tenant.apps],
                    "exchange": tenant.exchange.model_dump(mode="json"),
                    "mailboxes": {
                        m.address: {
                            "full_access": list(m.full_access),
                            "send_as": list(m.send_as),
                            "smtp_auth_enabled": m.smtp_auth_enabled,
                        }
                        for m in tenant.mailboxes
                    },
                }
                for tenant in directory.tenants
            },
        }

    def save(self, directory: TenantFile) -> None:
        """Write the snapshot atomically (temporary file, then rename), mode 0600."""
        text = json.dumps(self.snapshot(directory), indent=2)
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, self.path)

    def restore(self, directory: TenantFile) -> bool:
        """Lay a saved snapshot over ``directory``; False when there is none that applies."""
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            _log.warning("ignoring %s: %s", self.path, exc)
            return False
        if data.get("version") != _VERSION:
            _log.warning("ignoring %s: unknown version", self.path)
            return False
        if data.get("tenant_file_sha256") != _digest(self.tenant_file):
            _log.warning(
                "ignoring %s: it was saved for another version of %s", self.path, self.tenant_file
            )
            return False
        # Validate everything first, so a damaged file changes nothing at all.
        pending = []
        try:
            for tenant in directory.tenants:
                saved = data["tenants"].get(tenant.id)
                if saved is not None:
                    apps = [App.model_validate(a) for a in saved["apps"]]
                    exchange = ExchangeSettings.model_validate(saved["exchange"])
                    rights = dict(saved["mailboxes"])
                    pending.append((tenant, apps, exchange, rights))
        except (KeyError, TypeError, AttributeError, ValidationError) as exc:
            _log.warning("ignoring %s: %s", self.path, exc)
            return False
        for tenant, apps, exchange, rights in pending:
            tenant.apps, tenant.exchange = apps, exchange
            for mailbox in tenant.mailboxes:
                saved_rights = rights.get(mailbox.address)
                if isinstance(saved_rights, dict):
                    mailbox.full_access = list(saved_rights.get("full_access", []))
                    mailbox.send_as = list(saved_rights.get("send_as", []))
                    mailbox.smtp_auth_enabled = bool(saved_rights.get("smtp_auth_enabled", True))
        return True
