"""Regression corpus: bad local input and a failing identity platform through the real CLI.

Each case once ended in exit 70 ("internal error") or a traceback. Each must now give its exit
code (2 bad input, 1 operation failed), one ``error:`` line naming what is wrong and a ``fix:``
line, and neither a traceback nor "internal error".
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailgate.testing import SandboxController
from tests.conftest import Cli, CliResult, add_sandbox_credential, assert_no_traceback

EXO = "https://outlook.office365.com"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("corpus-idp")) as controller:
        yield controller


@pytest.fixture
def faults(idp: SandboxController) -> Iterator[SandboxController]:
    """The sandbox, with its injected token failures switched off again after the test."""
    yield idp
    idp.fail_token_requests(count=0)


def _sandbox(cli: Cli, *args: str) -> CliResult:
    return cli("sandbox", "--port", "0", *args)


def home_is_a_file(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    (tmp / "home-file").write_text("")
    return cli("creds", "list", MAILGATE_HOME=str(tmp / "home-file"))


def home_under_a_file(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    (tmp / "home-file").write_text("")
    return cli("creds", "list", MAILGATE_HOME=str(tmp / "home-file" / "mailgate"))


def sandbox_port_in_use(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        return cli("sandbox", "--port", str(port), "--state-dir", str(tmp / "sb"))


def sandbox_port_out_of_range(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    return cli("sandbox", "--port", "70000", "--state-dir", str(tmp / "sb"))


def sandbox_negative_port(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    return cli("sandbox", "--port=-1", "--state-dir", str(tmp / "sb"))


def sandbox_state_dir_is_a_file(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    (tmp / "sb").write_text("")
    return _sandbox(cli, "--state-dir", str(tmp / "sb"))


def sandbox_tenant_file_does_not_parse(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    (tmp / "tenant.toml").write_text("tenants = [\n")
    return _sandbox(cli, "--state-dir", str(tmp / "sb"), "--tenant-file", str(tmp / "tenant.toml"))


def sandbox_tenant_file_is_not_a_tenant(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    (tmp / "tenant.toml").write_text('tenants = [{name = "x"}]\n')
    return _sandbox(cli, "--state-dir", str(tmp / "sb"), "--tenant-file", str(tmp / "tenant.toml"))


def sandbox_tenant_file_missing(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    return _sandbox(cli, "--state-dir", str(tmp / "sb"), "--tenant-file", str(tmp / "no.toml"))


def second_sandbox_on_a_state_dir(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    before = (idp.state_dir / "sandbox.json").read_text()
    result = _sandbox(cli, "--state-dir", str(idp.state_dir))
    assert (idp.state_dir / "sandbox.json").read_text() == before, "description was rewritten"
    return result


def approve_without_a_sandbox(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    return cli(
        "sandbox", "approve", "ABCD", "--user", "alice", MAILGATE_SANDBOX=str(tmp / "sandbox.json")
    )


def approve_on_a_killed_sandbox(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    # What a SIGKILLed sandbox leaves: its description, and its lock file that nobody holds.
    (tmp / "sandbox.json").write_text((idp.state_dir / "sandbox.json").read_text())
    (tmp / "sandbox.lock").write_text("")
    return cli(
        "sandbox", "approve", "ABCD", "--user", "alice", MAILGATE_SANDBOX=str(tmp / "sandbox.json")
    )


def _token_failing(body: str, status: int) -> Callable[[Cli, Path, SandboxController], CliResult]:
    def case(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
        add_sandbox_credential(cli, idp, "d")
        idp.fail_token_requests(count=50, status=status, body=body)
        return cli("token", "d", "--scope", f"{EXO}/.default")

    return case


def get_with_identity_failing(cli: Cli, tmp: Path, idp: SandboxController) -> CliResult:
    add_sandbox_credential(cli, idp, "d")
    added = cli(
        "mailbox",
        "add",
        "m",
        "--credential",
        "d",
        "--protocol",
        "imap",
        "--address",
        "approvals@contoso.onmicrosoft.com",
    )
    assert added.code == 0, added.text
    idp.fail_token_requests(count=50, status=503, body="json")
    return cli("get", "m")


CASES: dict[str, tuple[Callable[[Cli, Path, SandboxController], CliResult], int, str]] = {
    # name: (run it, exit code, words the error line must hold)
    "home-is-a-file": (home_is_a_file, 2, "home-file is a file"),
    "home-under-a-file": (home_under_a_file, 2, "home-file is a file"),
    "sandbox-port-in-use": (sandbox_port_in_use, 2, "already in use"),
    "sandbox-port-out-of-range": (sandbox_port_out_of_range, 2, "port 70000 is out of range"),
    "sandbox-negative-port": (sandbox_negative_port, 2, "port -1 is out of range"),
    "sandbox-state-dir-is-a-file": (sandbox_state_dir_is_a_file, 2, "a file is in the way"),
    "sandbox-tenant-toml-does-not-parse": (
        sandbox_tenant_file_does_not_parse,
        2,
        "tenant.toml is not a valid tenant",
    ),
    "sandbox-tenant-toml-not-a-tenant": (
        sandbox_tenant_file_is_not_a_tenant,
        2,
        "tenant.toml is not a valid tenant",
    ),
    "sandbox-tenant-file-missing": (sandbox_tenant_file_missing, 2, "no.toml cannot be read"),
    "second-sandbox-on-a-state-dir": (second_sandbox_on_a_state_dir, 2, "already running"),
    "approve-without-a-sandbox": (approve_without_a_sandbox, 2, "no sandbox is running"),
    "approve-on-a-killed-sandbox": (approve_on_a_killed_sandbox, 2, "was killed"),
    "token-identity-html-500": (
        _token_failing("html", 500),
        1,
        "HTTP 500 Internal Server Error (an HTML error page)",
    ),
    "token-identity-json-503": (
        _token_failing("json", 503),
        1,
        "HTTP 503 Service Unavailable (AADSTS90033",
    ),
    "get-identity-json-503": (get_with_identity_failing, 1, "failed the token request 3 times"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_corpus(cli: Cli, tmp_path: Path, faults: SandboxController, case: str) -> None:
    run, code, words = CASES[case]
    result = run(cli, tmp_path, faults)
    assert result.code == code, result.text
    assert_no_traceback(result)
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.text
    assert words in errors[0], result.text
    assert "fix:" in result.err, result.text


def test_debug_adds_the_traceback_and_keeps_the_exit_code(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "home-file").write_text("")
    bad_input = cli("creds", "list", MAILGATE_HOME=str(tmp_path / "home-file"), MAILGATE_DEBUG="1")
    assert bad_input.code == 2, bad_input.text
    assert "Traceback" in bad_input.err and "error: the data directory" in bad_input.err
    # A bug (here: a command that raises something no MailgateError) stays 70 under debug.
    bug = (
        "import sys, mailgate.cli as c\n"
        "def broken(args):\n"
        "    raise RuntimeError('a bug')\n"
        "c._app_for = broken\n"
        "sys.argv = ['mailgate', 'creds', 'list']\n"
        "c.main()\n"
    )
    for debug, traceback in (("1", True), ("", False)):
        proc = subprocess.run(
            [sys.executable, "-c", bug],
            capture_output=True,
            text=True,
            env={**cli.env, "MAILGATE_DEBUG": debug},
            timeout=60,
        )
        assert proc.returncode == 70, proc.stderr
        assert "internal error: RuntimeError" in proc.stderr
        assert ("Traceback" in proc.stderr) is traceback, proc.stderr


def test_transient_identity_failures_are_retried(cli: Cli, faults: SandboxController) -> None:
    add_sandbox_credential(cli, faults, "d")
    faults.reset_stats()
    faults.fail_token_requests(count=2, status=503, body="json", retry_after=1)
    result = cli("token", "d", "--scope", f"{EXO}/.default", "--json")
    assert result.code == 0, result.text
    assert json.loads(result.out)["source"] == "identity platform"
    stats = faults.stats()
    assert stats["token_faults"] == 2 and stats["token"] == {"client_credentials": 1}


def test_connection_test_names_the_token_step(cli: Cli, faults: SandboxController) -> None:
    add_sandbox_credential(cli, faults, "d")
    added = cli(
        "mailbox",
        "add",
        "m",
        "--credential",
        "d",
        "--protocol",
        "graph",
        "--address",
        "approvals@contoso.onmicrosoft.com",
    )
    assert added.code == 0, added.text
    faults.fail_token_requests(count=50, status=500, body="html")
    result = cli("test", "m")
    assert result.code == 1, result.text
    assert "Connection failed at step 'token'" in result.out, result.text
    assert "HTTP 500" in result.out and "fix:" in result.out
    assert_no_traceback(result)
