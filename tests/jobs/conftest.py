"""Fixtures for import jobs: a sandbox, a CLI with a daemon credential and mailbox profiles,
and helpers to fill and inspect sandbox mailboxes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailgate.sandbox.exchange.store import StoredMailbox
from mailgate.testing import SandboxController
from tests.conftest import Cli, add_sandbox_credential

DOMAIN = "contoso.onmicrosoft.com"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("import-idp")) as controller:
        yield controller


def make_message(i: int, *, size: int = 0, attachment: bool = False, tag: str = "t") -> bytes:
    """A small distinct message (``size`` pads the body; ``attachment`` adds a PDF part)."""
    body = f"Message {i} of the import test.\r\n".encode() + b"x" * size + b"\r\n"
    head = (
        f"From: Vendor <vendor{i % 7}@example.com>\r\nTo: someone@{DOMAIN}\r\n"
        f"Subject: Invoice {tag}-{i}\r\nDate: Mon, 01 Jan 2024 10:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <import-{tag}-{i}@example.com>\r\nMIME-Version: 1.0\r\n"
    ).encode()
    if not attachment:
        return head + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    return (
        head
        + b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + body
        + b'--B\r\nContent-Type: application/pdf; name="invoice.pdf"\r\n'
        + b'Content-Disposition: attachment; filename="invoice.pdf"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQgZmFrZQ==\r\n--B--\r\n"
    )


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Sandboxed:
    """The sandbox plus a CLI set up with the daemon credential."""

    idp: SandboxController
    cli: Cli

    def box(self, user: str) -> StoredMailbox:
        return self.idp.mailstore.mailbox(f"{user}@{DOMAIN}")

    def clear(self, user: str) -> None:
        box = self.box(user)
        for folder in box.folders():
            for message in box.messages(folder.folder_id):
                box.remove(message.item_id)

    def fill(self, user: str, messages: list[bytes]) -> None:
        for raw in messages:
            assert self.idp.deliver(raw, f"{user}@{DOMAIN}")

    def hashes(self, user: str, folder: str) -> list[str]:
        return [sha(m.raw) for m in self.box(user).messages(folder)]

    def mailbox(self, name: str, protocol: str, user: str) -> None:
        result = self.cli(
            "mailbox",
            "add",
            name,
            "--credential",
            "daemon",
            "--protocol",
            protocol,
            "--address",
            f"{user}@{DOMAIN}",
            "--replace",
        )
        assert result.code == 0, result.text


def eml_hashes(directory: Path) -> list[str]:
    """sha256 of every published .eml under ``directory`` (temporary files excluded)."""
    return [sha(p.read_bytes()) for p in sorted(directory.glob("*.eml"))]


@pytest.fixture
def sandboxed(cli: Cli, idp: SandboxController) -> Sandboxed:
    add_sandbox_credential(cli, idp)
    return Sandboxed(idp, cli)


Filler = Callable[[int], list[bytes]]
