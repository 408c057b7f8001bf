"""``mailgate creds`` through the real command line: secrets never shown, bad input exit 2."""

from __future__ import annotations

import json
import stat

import pytest

from tests.conftest import Cli, assert_no_traceback

TID = "0a1b2c3d-0000-4000-8000-00000000abcd"
CID = "11111111-2222-4333-8444-555555555555"
SECRET = "Q~8secret.VALUE_never-printed"


def _add_secret(cli: Cli, name: str = "daemon", *extra: str) -> None:
    result = cli(
        "creds",
        "add",
        name,
        "--kind",
        "client-secret",
        "--tenant",
        TID,
        "--client-id",
        CID,
        "--secret-stdin",
        *extra,
        input=SECRET + "\n",
    )
    assert result.code == 0, result.text


def test_add_list_show_rm_never_print_the_secret(cli: Cli) -> None:
    _add_secret(cli, "daemon", "--secret-expires", "2099-01-01")
    listed = cli("creds", "list")
    shown = cli("creds", "show", "daemon", "--json")
    as_json = cli("creds", "list", "--json")
    for result in (listed, shown, as_json):
        assert result.code == 0, result.text
        assert SECRET not in result.text
    view = json.loads(shown.out)
    assert view["tenant"] == TID and view["client_id"] == CID
    assert view["stored_secrets"] == ["client_secret"]
    assert "daemon" in listed.out
    for path in cli.home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes()
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    assert cli("creds", "rm", "daemon").code == 0
    assert json.loads(cli("creds", "list", "--json").out) == []


def test_secret_from_environment(cli: Cli) -> None:
    result = cli(
        "creds",
        "add",
        "envsecret",
        "--kind",
        "client-secret",
        "--tenant",
        TID,
        "--client-id",
        CID,
        "--secret-env",
        "MY_SECRET",
        MY_SECRET=SECRET,
    )
    assert result.code == 0, result.text
    assert SECRET not in result.text


def test_no_secret_source_without_terminal_is_a_clear_error(cli: Cli) -> None:
    result = cli(
        "creds", "add", "x", "--kind", "client-secret", "--tenant", TID, "--client-id", CID
    )
    assert result.code == 2
    assert "client secret" in result.err and "--secret-stdin" in result.err
    assert_no_traceback(result)


def test_token_uri_and_workflowgen_scope_are_normalised(cli: Cli) -> None:
    result = cli(
        "creds",
        "add",
        "wfg",
        "--kind",
        "client-secret",
        "--client-id",
        CID,
        "--token-uri",
        f"https://login.microsoftonline.com/{TID}/oauth2/v2.0/token",
        "--scope",
        "https://outlook.office365.com/.default&grant_type=client_credentials",
        "--secret-stdin",
        input=SECRET + "\n",
    )
    assert result.code == 0, result.text
    assert "warning" in result.err and "grant_type" in result.err
    view = json.loads(cli("creds", "show", "wfg", "--json").out)
    assert view["scopes"] == ["https://outlook.office365.com/.default"]
    assert view["tenant"] == TID and view["cloud"] == "global"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--tenant", "not a tenant", "--client-id", CID], "tenant"),
        (["--tenant", TID, "--client-id", "1234"], "client ID"),
        (
            [
                "--token-uri",
                "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
                "--client-id",
                CID,
            ],
            "tenant in the access token URI",
        ),
        (["--token-uri", "ftp://x/y", "--client-id", CID], "access token URI"),
        (
            [
                "--tenant",
                TID,
                "--client-id",
                CID,
                "--scope",
                "https://a/.default https://b/.default",
            ],
            "scope",
        ),
        (
            ["--tenant", TID, "--client-id", CID, "--secret-expires", "next tuesday"],
            "secret expiry",
        ),
        (["--tenant", TID, "--client-id", CID, "--cloud", "mars"], "cloud"),
    ],
)
def test_malformed_input_names_field_and_form_exit_2(cli: Cli, args: list[str], field: str) -> None:
    result = cli(
        "creds",
        "add",
        "bad",
        "--kind",
        "client-secret",
        *args,
        "--secret-stdin",
        input=SECRET + "\n",
    )
    assert result.code == 2, result.text
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"error: {field}: expected ")
    assert SECRET not in result.text
    assert_no_traceback(result)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        b"\x30\x82garbage-pfx",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ],
)
def test_malformed_pem_or_pfx_is_one_line_exit_2(cli: Cli, tmp_path, content: bytes) -> None:
    path = tmp_path / "cert.pem"
    path.write_bytes(content)
    result = cli(
        "creds",
        "add",
        "cert",
        "--kind",
        "certificate",
        "--tenant",
        TID,
        "--client-id",
        CID,
        "--cert",
        str(path),
    )
    assert result.code == 2, result.text
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: certificate file: expected "), result.err
    assert_no_traceback(result)


def test_expiring_and_expired_secrets_are_flagged(cli: Cli) -> None:
    _add_secret(cli, "soon", "--secret-expires", "5d")
    _add_secret(cli, "old", "--secret-expires", "2020-01-01")
    _add_secret(cli, "fine", "--secret-expires", "400d")
    rows = {r["name"]: r["expiry_status"] for r in json.loads(cli("creds", "list", "--json").out)}
    assert rows["old"] == "expired"
    assert rows["soon"].startswith("expires in ")
    assert rows["fine"] == "ok"
    text = cli("creds", "list").out
    assert "EXPIRED" in text and "expires in" in text


def test_unknown_credential_is_exit_2_with_remedy(cli: Cli) -> None:
    result = cli("creds", "show", "ghost")
    assert result.code == 2
    assert "no credential named 'ghost'" in result.err and "mailgate creds list" in result.err
    assert_no_traceback(result)


def test_wrong_master_key_is_reported_without_secret(cli: Cli) -> None:
    _add_secret(cli)
    result = cli(
        "creds",
        "set-secret",
        "daemon",
        "--secret-stdin",
        input="new\n",
        MAILGATE_MASTER_KEY="A" * 43 + "=",
    )
    assert result.code == 1
    assert "another master key" in result.err
    bad = cli(
        "creds",
        "set-secret",
        "daemon",
        "--secret-stdin",
        input="new\n",
        MAILGATE_MASTER_KEY="short",
    )
    assert bad.code == 2 and "MAILGATE_MASTER_KEY" in bad.err
    assert_no_traceback(result)


def test_rotate_key_keeps_secrets_usable(cli: Cli) -> None:
    _add_secret(cli)
    before = (cli.home / "master.key").read_text()
    result = cli("creds", "rotate-key")
    assert result.code == 0, result.text
    assert (cli.home / "master.key").read_text() != before
    assert cli("creds", "set-secret", "daemon", "--secret-stdin", input="v2\n").code == 0


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["creds", "add", "x"], "Missing option '--kind'"),
        (["creds"], "Missing command"),
        (["nosuch"], "No such command"),
        (["creds", "add", "x", "--kind", "nonsense", "--client-id", CID], "Invalid value"),
    ],
)
def test_usage_errors_print_usage_not_internal_error(
    cli: Cli, args: list[str], needle: str
) -> None:
    result = cli(*args)
    assert result.code == 2, result.text
    assert needle in result.err
    assert_no_traceback(result)


def test_creds_expiring_for_monitoring(cli: Cli) -> None:
    _add_secret(cli, "soon", "--secret-expires", "10d")
    _add_secret(cli, "old", "--secret-expires", "2020-01-01")
    _add_secret(cli, "later", "--secret-expires", "200d")
    _add_secret(cli, "unknown")
    result = cli("creds", "expiring", "--json")
    assert result.code == 1
    rows = {r["name"]: r for r in json.loads(result.out)}
    assert set(rows) == {"soon", "old"}
    assert rows["old"]["expired"] and not rows["soon"]["expired"]
    assert "later" in cli("creds", "expiring", "--within", "365d").out
    assert "EXPIRED" in cli("creds", "expiring").out
    bad = cli("creds", "expiring", "--within", "soon")
    assert bad.code == 2 and "--within: expected a number of days" in bad.err


def test_creds_expiring_none_exits_0(cli: Cli) -> None:
    _add_secret(cli, "later", "--secret-expires", "200d")
    result = cli("creds", "expiring")
    assert result.code == 0 and "No secret or certificate expires within 30 days" in result.out
