"""``mailgate setup plan`` through the real CLI: the three formats and the exit-2 errors."""

from __future__ import annotations

import json
import shlex

import pytest

from tests.conftest import Cli, assert_no_traceback

CLIENT = "11111111-2222-3333-4444-555555555555"
SP = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
BASE = ["setup", "plan", "--protocol", "imap", "--flow", "client-credentials"]
IDS = ["--tenant", "contoso.com", "--client-id", CLIENT, "--sp-object-id", SP]


def test_text(cli: Cli) -> None:
    result = cli(*BASE, *IDS, "--mailbox", "scan@contoso.com")
    assert result.code == 0, result.text
    assert "Office 365 Exchange Online > Application > IMAP.AccessAsApp" in result.out
    assert f"https://login.microsoftonline.com/contoso.com/adminconsent?client_id={CLIENT}" in (
        result.out
    )
    assert f"New-ServicePrincipal -AppId {CLIENT} -ObjectId {SP}" in result.out
    assert f"Add-MailboxPermission -Identity 'scan@contoso.com' -User {SP}" in result.out
    assert "mailgate creds add imap-app --kind client-secret" in result.out
    assert result.err == ""


def test_markdown(cli: Cli) -> None:
    result = cli(*BASE, *IDS, "--format", "markdown")
    assert result.code == 0, result.text
    assert result.out.startswith("### Setup plan: IMAP with client-credentials")
    assert (
        "| Office 365 Exchange Online (00000002-0000-0ff1-ce00-000000000000) | Application |"
        in (result.out)
    )
    assert "```powershell" in result.out and "```sh" in result.out


def test_json(cli: Cli) -> None:
    result = cli(
        "setup", "plan", "--protocol", "graph", "--flow", "certificate", *IDS,
        "--mailbox", "a@contoso.com", "--mailbox", "b@contoso.com", "--format", "json",
    )  # fmt: skip
    assert result.code == 0, result.text
    data = json.loads(result.out)
    assert data["protocol"] == "graph" and data["app_only"] is True
    assert [p["name"] for p in data["permissions"]] == ["Mail.ReadWrite", "Mail.Send"]
    assert {p["resource_app_id"] for p in data["permissions"]} == {
        "00000003-0000-0000-c000-000000000000"
    }
    assert data["mailboxes"] == ["a@contoso.com", "b@contoso.com"]
    lines = [line for block in data["powershell"] for line in block["lines"]]
    assert any(line.startswith(f"New-ApplicationAccessPolicy -AppId {CLIENT}") for line in lines)
    assert data["platform_settings"] == []


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--protocol", "owa", "--flow", "ropc"], "--protocol"),
        (["--protocol", "imap", "--flow", "implicit"], "--flow"),
        (["--protocol", "imap", "--flow", "ropc", "--mailbox", "nobody"], "--mailbox"),
        (["--protocol", "imap", "--flow", "ropc", "--tenant", "{tenant}"], "--tenant"),
        (["--protocol", "imap", "--flow", "ropc", "--client-id", "abc"], "--client-id"),
        (["--protocol", "imap", "--flow", "ropc", "--cloud", "germany"], "--cloud"),
        (["--protocol", "imap", "--flow", "ropc", "--format", "yaml"], "--format"),
    ],
)
def test_invalid_input_exits_2(cli: Cli, args: list[str], field: str) -> None:
    result = cli("setup", "plan", *args)
    assert result.code == 2, result.text
    assert_no_traceback(result)
    assert result.out == ""
    assert result.err.strip().count("\n") == 0, "one error line"
    assert result.err.startswith(f"error: {field}: expected")


@pytest.mark.parametrize(
    ("protocol", "flow"),
    [
        ("graph", "client-credentials"),
        ("imap", "ropc"),
        ("ews", "auth-code"),
        ("smtp", "device-code"),
    ],
)
def test_printed_mailgate_commands_are_accepted(cli: Cli, protocol: str, flow: str) -> None:
    # The plan's last step must be runnable as printed: creds add, then mailbox add.
    plan = cli(
        "setup", "plan", "--protocol", protocol, "--flow", flow, *IDS,
        "--mailbox", "desk@contoso.com", "--format", "json",
    )  # fmt: skip
    assert plan.code == 0, plan.text
    commands = json.loads(plan.out)["mailgate_commands"]
    for command in commands:
        argv = shlex.split(command.replace("<user@domain>", "desk@contoso.com"))
        assert argv[0] == "mailgate"
        if argv[1] == "test" or argv[1:3] == ["creds", "login"]:
            continue  # these talk to Microsoft; covered by the creds and mail CLI tests
        result = cli(*argv[1:], input="s3cret-value\n")
        assert result.code == 0, (command, result.text)
