"""Objects the CLI commands share: the vault and token provider of the data directory."""

from __future__ import annotations

import sys

from mailgate.cli._output import warn_once
from mailgate.identity import ConsoleInteraction, TokenProvider
from mailgate.paths import data_dir
from mailgate.vault import CredentialProfile, Vault

__all__ = ["open_provider", "open_vault", "warn_expiring"]


def open_vault() -> Vault:
    return Vault(data_dir())


def open_provider(interactive: bool | None = None) -> TokenProvider:
    vault = open_vault()
    if interactive is None:
        interactive = sys.stdin.isatty()
    return TokenProvider(vault, interaction=ConsoleInteraction() if interactive else None)


def warn_expiring(profile: CredentialProfile) -> None:
    """Say so when the secret or certificate in use expires within 14 days or has expired."""
    message = profile.expiry_warning()
    if message:
        warn_once(message)
