"""``mailgate get`` with hostile mail in the sandbox: control characters in a Subject and
attachment names that differ only in case, over EWS, Graph and IMAP."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailgate.testing import SandboxController
from tests.conftest import Cli, add_sandbox_credential, assert_no_traceback

DOMAIN = "contoso.onmicrosoft.com"
USER = "servicedesk"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("hostile-idp")) as controller:
        yield controller


@pytest.fixture
def mcli(cli: Cli, idp: SandboxController) -> Cli:
    add_sandbox_credential(cli, idp)
    for protocol in ("ews", "graph", "imap"):
        result = cli(
            "mailbox", "add", protocol, "--credential", "daemon", "--protocol", protocol,
            "--address", f"{USER}@{DOMAIN}",
        )  # fmt: skip
        assert result.code == 0, result.text
    return cli


def _deliver(idp: SandboxController, subject: bytes, body: bytes = b"hello\r\n") -> None:
    raw = (
        b"From: Mallory \x1b[5m <mallory@evil.example>\r\nTo: " + f"{USER}@{DOMAIN}".encode()
        + b"\r\nSubject: " + subject + b"\r\nDate: Mon, 02 Nov 2026 08:00:00 +0000\r\n"
        + b"Message-ID: <" + secrets.token_hex(8).encode() + b"@evil.example>\r\n" + body
    )  # fmt: skip
    assert idp.deliver(raw, f"{USER}@{DOMAIN}")


@pytest.mark.parametrize("protocol", ["ews", "graph", "imap"])
def test_get_lists_every_message_and_shows_controls_not_runs_them(
    mcli: Cli, idp: SandboxController, protocol: str
) -> None:
    tag = f"tag{secrets.token_hex(4)}"
    _deliver(idp, b"Pay \x1b[31mnow\x1b[0m\x07\x7f \x1b]52;c;ZXZpbA==\x07 " + tag.encode())
    _deliver(idp, b"normal " + tag.encode())
    table = mcli("get", protocol, "--subject", tag)
    assert table.code == 0, table.text
    assert_no_traceback(table)
    assert "\x1b" not in table.out and "\x07" not in table.out and "\x7f" not in table.out
    assert f"normal {tag}" in table.out
    # Recognisable: EWS replies lose the controls XML forbids; the others show each one.
    shown = "Pay [31mnow[0m\\x7f ]52;c;ZXZpbA==" if protocol == "ews" else "Pay \\x1b[31mnow"
    assert shown in table.out, table.out
    listed = json.loads(mcli("get", protocol, "--subject", tag, "--json").out)
    subjects = sorted(row["subject"] for row in listed)
    assert len(subjects) == 2 and subjects[1] == f"normal {tag}"
    if protocol != "ews":  # --json stays exact
        assert subjects[0] == f"Pay \x1b[31mnow\x1b[0m\x07\x7f \x1b]52;c;ZXZpbA==\x07 {tag}"


@pytest.mark.parametrize("protocol", ["ews", "graph", "imap"])
def test_get_save_attachment_names_differ_in_more_than_case(
    mcli: Cli, idp: SandboxController, tmp_path: Path, protocol: str
) -> None:
    tag = f"case{secrets.token_hex(4)}"
    parts = b"".join(
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="
        + name + b"\r\n\r\n" + name + b"\r\n"
        for name in (b"invoice.pdf", b"INVOICE.pdf", b"Invoice.PDF")
    )  # fmt: skip
    _deliver(
        idp,
        tag.encode() + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b",
        b"\r\n" + parts + b"--b--\r\n",
    )
    saved = mcli("get", protocol, "--subject", tag, "--save", str(tmp_path), "--json")
    assert saved.code == 0, saved.text
    (row,) = json.loads(saved.out)
    names = sorted(Path(a).name for a in row["attachments"])
    assert names == ["INVOICE-2.pdf", "Invoice-3.PDF", "invoice.pdf"]
    assert sorted(Path(a).read_bytes() for a in row["attachments"]) == [
        b"INVOICE.pdf", b"Invoice.PDF", b"invoice.pdf"
    ]  # fmt: skip
