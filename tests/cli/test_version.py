"""``mailgate --version`` as a user and a bug report run it."""

from __future__ import annotations

import json
from importlib import metadata

import mailgate
from tests.conftest import Cli, assert_no_traceback


def test_version_prints_mailgates_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0, result.text
    assert result.out == f"mailgate {mailgate.__version__}\n"
    assert metadata.version("mailgate") == mailgate.__version__


def test_version_json_names_the_libraries_that_decide_behaviour(cli: Cli) -> None:
    result = cli("--version", "--json")
    assert result.code == 0, result.text
    report = json.loads(result.out)
    assert report["mailgate"] == mailgate.__version__
    assert report["python"].startswith("3.")
    assert report["openssl"].startswith("OpenSSL")
    for name in ("msal", "httpx", "cryptography", "sqlalchemy"):
        assert report["libraries"][name] == metadata.version(name), name


def test_version_options_before_a_command_are_refused_with_the_remedy(cli: Cli) -> None:
    result = cli("--json", "creds", "list")
    assert result.code == 2
    assert "put --json after the command: mailgate creds ... --json" in result.err
    assert_no_traceback(result)


def test_version_before_a_command_is_refused_with_its_own_remedy(cli: Cli) -> None:
    result = cli("--version", "creds", "list")
    assert result.code == 2
    assert "--version takes no command (creds was given)" in result.err
    assert "--json" not in result.err
    assert_no_traceback(result)


def test_json_alone_says_it_needs_version(cli: Cli) -> None:
    result = cli("--json")
    assert result.code == 2 and "--json needs --version" in result.err
    assert_no_traceback(result)


def test_no_command_shows_help(cli: Cli) -> None:
    result = cli()
    assert "Usage:" in result.text and "--version" in result.text
    assert_no_traceback(result)
