"""Objects the CLI commands share: the vault and token provider of the data directory.

Imported by every command module, so it imports the identity and vault code on use only.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from mailgate.cli._output import warn_once
from mailgate.paths import data_dir

if TYPE_CHECKING:
    from mailgate.identity.tokens import TokenProvider
    from mailgate.vault import CredentialProfile, Vault

__all__ = ["open_provider", "open_vault", "warn_expiring"]


def open_vault() -> Vault:
    from mailgate.vault import Vault

    return Vault(data_dir())


def open_provider(interactive: bool | None = None) -> TokenProvider:
    from mailgate.identity.interaction import ConsoleInteraction
    from mailgate.identity.tokens import TokenProvider

    vault = open_vault()
    if interactive is None:
        interactive = sys.stdin.isatty()
    return TokenProvider(vault, interaction=ConsoleInteraction() if interactive else None)


def warn_expiring(profile: CredentialProfile) -> None:
    """Say so when the secret or certificate in use expires within 14 days or has expired."""
    message = profile.expiry_warning()
    if message:
        warn_once(message)
