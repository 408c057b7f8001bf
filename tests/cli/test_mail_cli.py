"""``mailgate test``, ``get`` and ``send`` end to end against the sandbox's five mail endpoints."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailgate.testing import SandboxController
from tests.conftest import Cli, add_sandbox_credential, assert_no_traceback

DOMAIN = "contoso.onmicrosoft.com"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("mail-idp")) as controller:
        yield controller


@pytest.fixture
def mcli(cli: Cli, idp: SandboxController) -> Cli:
    tenant = idp.tenant("contoso")["id"]
    for name, app in (
        ("daemon", "mailgate-daemon"),
        ("nosp", "mailgate-nosp"),
        ("wrongsp", "mailgate-wrongsp"),
    ):
        add_sandbox_credential(cli, idp, name, app)
    alice = idp.user("alice")
    result = cli(
        "creds",
        "add",
        "alice",
        "--kind",
        "password",
        "--cloud",
        "sandbox",
        "--tenant",
        tenant,
        "--client-id",
        idp.app("mailgate-public")["client_id"],
        "--username",
        alice["upn"],
        "--secret-stdin",
        input=alice["password"] + "\n",
    )
    assert result.code == 0, result.text
    return cli


def _mailbox(cli: Cli, name: str, credential: str, protocol: str, user: str) -> None:
    result = cli(
        "mailbox",
        "add",
        name,
        "--credential",
        credential,
        "--protocol",
        protocol,
        "--address",
        f"{user}@{DOMAIN}",
    )
    assert result.code == 0, result.text


@pytest.mark.parametrize(
    ("credential", "protocol", "user"),
    [
        ("daemon", "imap", "approvals"),
        ("daemon", "pop", "approvals"),
        ("daemon", "graph", "approvals"),
        ("daemon", "ews", "servicedesk"),
        ("alice", "imap", "alice"),
        ("alice", "graph", "alice"),
    ],
)
def test_connection_successful(mcli: Cli, credential: str, protocol: str, user: str) -> None:
    _mailbox(mcli, "m", credential, protocol, user)
    result = mcli("test", "m")
    assert result.code == 0, result.text
    assert result.out.strip().endswith("Connection successful")
    for step in ("endpoint", "token", "token claims", "authentication", "mailbox access"):
        assert f"✔ {step}:" in result.out


def test_send_test_mail_over_smtp(mcli: Cli) -> None:
    _mailbox(mcli, "out", "daemon", "smtp", "approvals")
    result = mcli("test", "out", "--send-test-mail", f"servicedesk@{DOMAIN}", "--json")
    report = json.loads(result.out)
    assert result.code == 0 and report["ok"], result.text
    assert [s["name"] for s in report["steps"]][-1] == "test mail"


CASES = {
    # (credential, protocol, mailbox) -> (failed step, words, PowerShell start)
    "not-connected": (
        ("daemon", "imap", "bob"),
        "mailbox access",
        "user=",
        "Add-MailboxPermission -Identity bob@",
    ),
    "sp-not-registered": (
        ("nosp", "imap", "approvals"),
        "authentication",
        "service principal",
        "New-ServicePrincipal -AppId ",
    ),
    "wrong-sp-object-id": (
        ("wrongsp", "pop", "approvals"),
        "authentication",
        "enterprise",
        "New-ServicePrincipal -AppId ",
    ),
    "access-policy": (
        ("daemon", "ews", "alice"),
        "mailbox access",
        "application access policy",
        "Test-ApplicationAccessPolicy -Identity alice@",
    ),
    "graph-access-policy": (
        ("daemon", "graph", "alice"),
        "mailbox access",
        "application access policy",
        "Test-ApplicationAccessPolicy",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_failures_name_step_cause_and_fix(mcli: Cli, case: str) -> None:
    (credential, protocol, user), step, words, command = CASES[case]
    _mailbox(mcli, "m", credential, protocol, user)
    result = mcli("test", "m")
    assert result.code == 1, result.text
    assert f"Connection failed at step '{step}'" in result.out
    assert f"✘ {step}:" in result.out
    assert words in result.out, result.out
    assert "fix:" in result.out
    if command:
        assert command in result.out, result.out
    assert "eyJ" not in result.text  # no JWT (access token) in any output
    assert_no_traceback(result)


def test_smtp_auth_disabled(mcli: Cli) -> None:
    _mailbox(mcli, "nr", "daemon", "smtp", "noreply")
    result = mcli("test", "nr", "--send-test-mail", f"alice@{DOMAIN}")
    assert result.code == 1
    assert "Set-CASMailbox -Identity noreply@" in result.out


def test_send_then_get_save_with_attachment(mcli: Cli, tmp_path: Path) -> None:
    _mailbox(mcli, "out", "daemon", "smtp", "approvals")
    _mailbox(mcli, "in", "daemon", "imap", "servicedesk")
    _mailbox(mcli, "in-graph", "daemon", "graph", "servicedesk")
    attachment = tmp_path / "../invoice 4711.pdf"
    attachment.write_bytes(b"%PDF-1.4 fake invoice")
    sent = mcli(
        "send",
        "out",
        "--to",
        f"servicedesk@{DOMAIN}",
        "--subject",
        "PO 4711 approval",
        "--text",
        "Please approve.",
        "--attach",
        str(attachment),
    )
    assert sent.code == 0, sent.text
    for name in ("in", "in-graph"):
        listed = json.loads(mcli("get", name, "--subject", "PO 4711", "--json").out)
        assert [row["subject"] for row in listed] == ["PO 4711 approval"]
        out = tmp_path / f"saved-{name}"
        saved = mcli("get", name, "--subject", "PO 4711", "--save", str(out), "--json")
        assert saved.code == 0, saved.text
        row = json.loads(saved.out)[0]
        assert Path(row["eml"]).read_bytes().count(b"PO 4711 approval") >= 1
        assert [Path(a).name for a in row["attachments"]] == ["invoice 4711.pdf"]
        assert Path(row["attachments"][0]).read_bytes() == b"%PDF-1.4 fake invoice"
        assert all(Path(a).resolve().is_relative_to(out.resolve()) for a in row["attachments"])


@pytest.mark.parametrize("count", ["0", "9"])
def test_get_connections_out_of_range_is_a_usage_error(
    mcli: Cli, tmp_path: Path, count: str
) -> None:
    result = mcli("get", "in", "--save", str(tmp_path / "out"), "--connections", count)
    assert result.code == 2 and "--connections" in result.err
    assert not (tmp_path / "out").exists()
    assert_no_traceback(result)


def test_pop_cannot_move_says_so(mcli: Cli) -> None:
    _mailbox(mcli, "p", "daemon", "pop", "approvals")
    result = mcli("send", "p", "--to", f"alice@{DOMAIN}", "--subject", "x", "--text", "y")
    assert result.code == 2
    assert "POP cannot send" in result.err and "SMTP" in result.err
    assert_no_traceback(result)


def test_unreachable_server_is_the_endpoint_step(mcli: Cli) -> None:
    result = mcli(
        "mailbox",
        "add",
        "dead",
        "--credential",
        "daemon",
        "--protocol",
        "imap",
        "--address",
        f"approvals@{DOMAIN}",
        "--server",
        "127.0.0.1:9",
    )
    assert result.code == 0
    tested = mcli("test", "dead")
    assert tested.code == 1 and "Connection failed at step 'endpoint'" in tested.out
    assert "check the server name and port" in tested.out


@pytest.mark.parametrize(
    ("protocol", "user", "inbox"),
    [
        ("imap", "approvals", "INBOX"),
        ("graph", "approvals", "Inbox"),
        ("ews", "servicedesk", "Inbox"),
        ("pop", "approvals", "INBOX"),
    ],
)
def test_folders_with_counts(mcli: Cli, protocol: str, user: str, inbox: str) -> None:
    _mailbox(mcli, "m", "daemon", protocol, user)
    result = mcli("folders", "m", "--json")
    assert result.code == 0, result.text
    rows = {row["name"]: row for row in json.loads(result.out)}
    assert isinstance(rows[inbox]["total"], int) and rows[inbox]["special_use"] == "\\Inbox"
    if protocol == "pop":
        assert list(rows) == ["INBOX"] and rows[inbox]["unread"] is None  # no read flag
    else:
        assert "Sent Items" in rows and "Deleted Items" in rows
        assert all(isinstance(row["unread"], int) for row in rows.values()), rows
        assert all(line.startswith('  {"name": ') for line in result.out.splitlines()[1:-1])
    table = mcli("folders", "m")
    assert table.code == 0 and inbox in table.out and "unread" in table.out


def test_folders_counts_follow_the_mail(mcli: Cli) -> None:
    _mailbox(mcli, "out", "daemon", "smtp", "approvals")
    _mailbox(mcli, "m", "daemon", "imap", "alice")

    def inbox() -> tuple[int, int]:
        rows = {r["name"]: r for r in json.loads(mcli("folders", "m", "--json").out)}
        return rows["INBOX"]["total"], rows["INBOX"]["unread"]

    total, unread = inbox()
    sent = mcli("send", "out", "--to", f"alice@{DOMAIN}", "--subject", "count me", "--text", "x")
    assert sent.code == 0, sent.text
    assert inbox() == (total + 1, unread + 1)


def test_folders_over_smtp_says_it_only_sends(mcli: Cli) -> None:
    _mailbox(mcli, "out", "daemon", "smtp", "approvals")
    result = mcli("folders", "out")
    assert result.code == 2, result.text
    assert "SMTP cannot list folders" in result.err and "imap, ews or graph" in result.err
    assert_no_traceback(result)


@pytest.mark.parametrize("protocol", ["imap", "graph", "ews"])
def test_missing_folder_advice_names_a_command_that_exists(mcli: Cli, protocol: str) -> None:
    _mailbox(mcli, "m", "daemon", protocol, "servicedesk")
    result = mcli("get", "m", "--folder", "NoSuchFolder")
    assert result.code in (1, 2), result.text
    assert_no_traceback(result)
    for command in re.findall(r"`mailgate ([a-z-]+)", result.err):
        helped = mcli(command, "--help")
        assert helped.code == 0, f"advice names `mailgate {command}`: {helped.text}"
    if protocol == "imap":  # the others list the folders in the message itself
        assert "`mailgate folders <mailbox>`" in result.err
        assert mcli("folders", "m").code == 0


def test_http_error_keeps_the_port_of_the_server(mcli: Cli) -> None:
    result = mcli(
        "mailbox", "add", "closed", "--credential", "daemon", "--protocol", "graph",
        "--address", f"approvals@{DOMAIN}", "--server", "https://127.0.0.1:1/v1.0",
    )  # fmt: skip
    assert result.code == 0, result.text
    for args in (("get", "closed"), ("folders", "closed")):
        failed = mcli(*args)
        assert failed.code == 1, failed.text
        assert "https://127.0.0.1:1/v1.0/" in failed.err, failed.err
        assert_no_traceback(failed)


def test_send_now_with_json(mcli: Cli) -> None:
    _mailbox(mcli, "out", "daemon", "smtp", "approvals")
    result = mcli(
        "send", "out", "--to", f"servicedesk@{DOMAIN}", "--bcc", f"alice@{DOMAIN}",
        "--subject", "json please", "--text", "x", "--json",
    )  # fmt: skip
    assert result.code == 0, result.text
    doc = json.loads(result.out)
    assert doc["mailbox"] == "out" and doc["queued"] is False and doc["outbox_id"] is None
    assert doc["recipients"] == [f"servicedesk@{DOMAIN}", f"alice@{DOMAIN}"]
    assert doc["message_id"].startswith("<") and doc["message_id"].endswith(">")
    assert "Sent" not in result.out
