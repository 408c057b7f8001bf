"""Mailbox profiles: which credential, protocol, address and server reach one mailbox.

A profile is the seeds' "Email Account settings" (server type, server, credential, user
account): ``mailgate mailbox add`` stores it in ``mailboxes.json`` in the data directory. It holds
no secret; the credential it names lives in the vault.

Defaults per protocol follow Microsoft's published settings (microsoft-facts.md section 3-5):
IMAP ``outlook.office365.com:993`` TLS, POP3 ``:995`` TLS, SMTP ``smtp.office365.com:587``
STARTTLS, EWS ``https://outlook.office365.com/EWS/Exchange.asmx``, Graph
``https://graph.microsoft.com/v1.0``, each for the credential's cloud. For the sandbox they come
from ``sandbox.json``.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailgate.errors import ConfigurationError, InvalidInputError
from mailgate.fileio import exclusive_lock, write_private_file
from mailgate.protocols.base import Protocol, Security

__all__ = [
    "DEFAULT_PORTS",
    "MailboxProfile",
    "MailboxStore",
    "Security",
    "parse_address",
    "parse_profile_name",
]

_ADDRESS = re.compile(r"^[^@\s<>\"(),;:\\\[\]]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


DEFAULT_PORTS = {
    (Protocol.IMAP, Security.TLS): 993,
    (Protocol.IMAP, Security.STARTTLS): 143,
    (Protocol.IMAP, Security.PLAIN): 143,
    (Protocol.POP3, Security.TLS): 995,
    (Protocol.POP3, Security.STARTTLS): 110,
    (Protocol.POP3, Security.PLAIN): 110,
    (Protocol.SMTP, Security.TLS): 465,
    (Protocol.SMTP, Security.STARTTLS): 587,
    (Protocol.SMTP, Security.PLAIN): 25,
}


def parse_profile_name(value: str) -> str:
    """A mailbox profile name, or an error naming the allowed form."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise InvalidInputError(
            "name", "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", value
        )
    return value


def parse_address(value: str, field_name: str = "address") -> str:
    """An e-mail address in lower case, or an error naming the field."""
    text = value.strip()
    if not _ADDRESS.match(text):
        raise InvalidInputError(field_name, "an e-mail address such as inbox@contoso.com", value)
    return text.lower()


class MailboxProfile(BaseModel):
    """One mailbox reached through one protocol with one credential."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    credential: str
    protocol: Protocol
    address: str
    server: str | None = None  # host[:port] for IMAP/POP3/SMTP, base URL for EWS/Graph
    security: Security | None = None
    default_folder: str = "INBOX"
    ca_file: str | None = None  # extra CA to trust (private servers, the sandbox)


class MailboxStore:
    """``mailboxes.json``: profiles by name, written atomically under a lock."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "mailboxes.json"

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive_lock(self.directory / "mailboxes.lock")

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {"version": 1, "mailboxes": {}}
        except ValueError as exc:
            raise ConfigurationError(
                f"{self.path} is not valid JSON ({exc}).", "restore it from a backup."
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("mailboxes"), dict):
            raise ConfigurationError(f"{self.path} has an unknown format.", "restore it.")
        return data

    def list(self) -> list[MailboxProfile]:
        return [self._profile(n, e) for n, e in sorted(self._read()["mailboxes"].items())]

    def _profile(self, name: str, entry: Any) -> MailboxProfile:
        try:
            return MailboxProfile.model_validate(entry)
        except ValidationError as exc:
            raise ConfigurationError(
                f"the mailbox profile {name!r} in {self.path} is damaged.",
                f"remove it with `mailgate mailbox rm {name}` and add it again.",
            ) from exc

    def get(self, name: str) -> MailboxProfile:
        entry = self._read()["mailboxes"].get(name)
        if entry is None:
            raise ConfigurationError(
                f"no mailbox named {name!r}.", "list them with `mailgate mailbox list`."
            )
        return self._profile(name, entry)

    def add(self, profile: MailboxProfile, *, replace: bool = False) -> None:
        with self._locked():
            data = self._read()
            if profile.name in data["mailboxes"] and not replace:
                raise ConfigurationError(
                    f"a mailbox named {profile.name!r} exists already.",
                    "choose another name, or pass --replace.",
                )
            data["mailboxes"][profile.name] = profile.model_dump(mode="json")
            write_private_file(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def remove(self, name: str) -> None:
        with self._locked():
            data = self._read()
            if data["mailboxes"].pop(name, None) is None:
                raise ConfigurationError(
                    f"no mailbox named {name!r}.", "list them with `mailgate mailbox list`."
                )
            write_private_file(self.path, json.dumps(data, indent=2, sort_keys=True).encode())
