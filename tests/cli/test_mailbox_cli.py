"""``mailgate mailbox`` profiles and the input checks of ``get``/``send`` (no server needed)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import Cli, assert_no_traceback

TID = "0a1b2c3d-0000-4000-8000-00000000abcd"
CID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def with_cred(cli: Cli) -> Cli:
    result = cli(
        "creds",
        "add",
        "app",
        "--kind",
        "client-secret",
        "--tenant",
        TID,
        "--client-id",
        CID,
        "--secret-stdin",
        input="s3cret\n",
    )
    assert result.code == 0, result.text
    return cli


def test_add_list_rm(with_cred: Cli) -> None:
    cli = with_cred
    added = cli(
        "mailbox",
        "add",
        "approvals",
        "--credential",
        "app",
        "--protocol",
        "imap",
        "--address",
        "Approvals@Contoso.com",
        "--folder",
        "Inbox/Approvals",
    )
    assert added.code == 0, added.text
    listed = json.loads(cli("mailbox", "list", "--json").out)
    assert listed[0]["address"] == "approvals@contoso.com"
    assert listed[0]["default_folder"] == "Inbox/Approvals"
    assert cli("mailbox", "rm", "approvals").code == 0
    assert json.loads(cli("mailbox", "list", "--json").out) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--address", "not-an-address"], "--address: expected an e-mail address"),
        (["--address", "a@contoso.com", "--server", "imaps://x:993"], "server: expected host"),
        (["--address", "a@contoso.com", "--server", "x:port"], "numeric port"),
        (["--address", "a@contoso.com", "--folder", "In\r\nbox"], "folder: expected a single"),
    ],
)
def test_bad_profiles_exit_2(with_cred: Cli, args: list[str], needle: str) -> None:
    result = with_cred("mailbox", "add", "m", "--credential", "app", "--protocol", "imap", *args)
    assert result.code == 2, result.text
    assert needle in result.err
    assert_no_traceback(result)


def test_unknown_credential_and_mailbox(with_cred: Cli) -> None:
    result = with_cred(
        "mailbox",
        "add",
        "m",
        "--credential",
        "nope",
        "--protocol",
        "imap",
        "--address",
        "a@contoso.com",
    )
    assert result.code == 2 and "no credential named 'nope'" in result.err
    for args in (["test", "ghost"], ["get", "ghost"], ["send", "ghost", "--to", "a@b.com"]):
        missing = with_cred(*args)
        assert missing.code == 2 and "no mailbox named 'ghost'" in missing.err
        assert_no_traceback(missing)


def test_send_refuses_header_injection_before_connecting(with_cred: Cli) -> None:
    cli = with_cred
    assert (
        cli(
            "mailbox",
            "add",
            "out",
            "--credential",
            "app",
            "--protocol",
            "smtp",
            "--address",
            "desk@contoso.com",
        ).code
        == 0
    )
    result = cli("send", "out", "--to", "a@example.com", "--subject", "hi\r\nBcc: x@evil.com")
    assert result.code == 2 and "subject: expected a single line" in result.err
    no_rcpt = cli("send", "out", "--subject", "x")
    assert no_rcpt.code == 2 and "at least one recipient" in no_rcpt.err
    bad_date = cli("get", "out", "--since", "yesterday")
    assert bad_date.code == 2 and "--since: expected a date" in bad_date.err


def test_markup_like_text_is_shown_verbatim(with_cred: Cli) -> None:
    cli = with_cred
    result = cli(
        "mailbox",
        "add",
        "[/]",
        "--credential",
        "app",
        "--protocol",
        "imap",
        "--address",
        "a@contoso.com",
    )
    assert result.code == 2 and "[/]" in result.err  # the name's pattern error quotes it
    assert_no_traceback(result)
    bad = cli("get", "[/bold]")
    assert bad.code == 2 and "no mailbox named '[/bold]'" in bad.err
    assert_no_traceback(bad)
