"""Start-up stays light: loading the command line imports no sign-in, admin or table code.

A bulk ``mailgate get --save`` is measured against a bare imaplib loop that runs in about a
second (bench/imap_import.py); these modules cost a third of that when imported up front.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import Cli, assert_no_traceback

HEAVY = [
    "click",  # typer ships its own copy
    "cryptography.x509",  # certificates: creds add only
    "http.server",  # the sign-in redirect listener
    "mailgate.admin",
    "mailgate.diagnose",
    "mailgate.jobs.send",
    "mailgate.mail.compose",
    "mailgate.sandbox",
    "msal",
    "requests",
    "rich.console",
    "rich.progress",
    "rich.table",
    "webbrowser",
]


def test_importing_the_cli_loads_nothing_heavy() -> None:
    code = (
        "import json, sys; import mailgate.cli; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []


def test_usage_errors_still_print_usage(cli: Cli) -> None:
    result = cli("get")
    assert result.code == 2 and "Missing argument" in result.text
    assert_no_traceback(result)
    result = cli("no-such-command")
    assert result.code == 2 and "No such command" in result.text


def test_an_import_to_a_directory_loads_no_http_client(tmp_path: object) -> None:
    # httpx (webhooks, alerts) is a tenth of an import's start-up; `--to DIR` never needs it.
    code = (
        "import json, sys\n"
        "from mailgate.cli import main\n"
        f"sys.argv = ['mailgate', 'import', 'nosuch', '--to', {str(tmp_path)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = ('httpx', 'mailgate.jobs.importing.webhook')\n"
        "print(json.dumps([m for m in loaded if m in sys.modules]))"
    )
    env = {"MAILGATE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert "no mailbox named 'nosuch'" in done.stderr, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_only_the_command_being_run_is_built() -> None:
    from mailgate.cli import _app_for, app

    only = _app_for(["get", "inbox", "--save", "x"])
    assert [c.callback.__name__ for c in only.registered_commands if c.callback] == ["get"]
    assert only.registered_groups == []
    group = _app_for(["creds", "list"])
    assert [g.name for g in group.registered_groups] == ["creds"]
    assert group.registered_commands == []
    for args in ([], ["--help"], ["no-such-command"], ["-x", "get"]):
        assert _app_for(args) is app
    assert len(app.registered_commands) > 3  # the app itself is left whole


def test_a_pruned_app_still_runs_a_single_command(cli: Cli) -> None:
    result = cli("mailbox", "list", "--json")
    assert result.code == 0 and json.loads(result.out) == []
    result = cli("get", "--help")
    assert result.code == 0 and "--save" in result.text
