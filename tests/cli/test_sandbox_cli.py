"""``mailgate sandbox``, ``mailgate creds login`` and ``mailgate demo`` as a user runs them."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import Cli, assert_no_traceback


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "sandbox did not start"
        time.sleep(0.1)


def test_sandbox_serves_then_login_by_device_code(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "sb"
    server = subprocess.Popen(
        [sys.executable, "-m", "mailgate", "sandbox", "--state-dir", str(state), "--port", "0"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(state / "sandbox.json", server)
        cli.env["MAILGATE_SANDBOX"] = str(state / "sandbox.json")
        from mailgate.testing import SandboxClient

        sandbox = SandboxClient.from_file(state / "sandbox.json")
        tenant = sandbox.tenant("contoso")
        config = httpx.get(
            f"{tenant['authority']}/v2.0/.well-known/openid-configuration",
            verify=sandbox.ssl_context(),
        ).json()
        assert config["token_endpoint"] == tenant["token_endpoint"]

        added = cli(
            "creds",
            "add",
            "dev",
            "--kind",
            "delegated",
            "--flow",
            "device-code",
            "--token-uri",
            tenant["token_endpoint"],
            "--client-id",
            sandbox.app("mailgate-public")["client_id"],
            "--username",
            sandbox.user("alice")["upn"],
        )
        assert added.code == 0, added.text
        assert "cloud sandbox" in added.out
        login = subprocess.Popen(
            [sys.executable, "-m", "mailgate", "creds", "login", "dev"],
            env=cli.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert login.stderr is not None
        line = login.stderr.readline()
        code = re.search(r"enter the code (\S+)", line)
        assert code, line
        approved = cli("sandbox", "approve", code.group(1), "--user", "alice")
        assert approved.code == 0, approved.text
        out, err = login.communicate(timeout=60)
        assert login.returncode == 0, err
        assert f"Signed in as {sandbox.user('alice')['upn']}" in out
        token = cli("token", "dev", "--json")
        assert token.code == 0 and '"source": "cache"' in token.out
        declined = cli("sandbox", "approve", "NOSUCHCODE", "--user", "alice")
        assert declined.code == 1 and "error:" in declined.err
        assert_no_traceback(declined)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert server.returncode == 0


def test_demo_runs_end_to_end(cli: Cli, tmp_path: Path) -> None:
    # As CI and a log read it: no terminal and no COLUMNS, where rich would wrap at 80 columns.
    result = cli("demo", "--dir", str(tmp_path / "demo"), COLUMNS="")
    assert result.code == 0, result.text
    assert result.out.rstrip("\n").splitlines()[-1] == (
        "Demo finished: every step worked as expected."
    )
    description = str(tmp_path / "demo" / "sandbox" / "sandbox.json")
    assert f"Description (endpoints, CA, demo apps and users): {description}\n" in result.out
    assert max(len(line) for line in result.out.splitlines()) > 100, "lines wrapped at 80"
    for expected in (
        "daemon-secret",
        "alice-device",
        "alice-browser",
        "AADSTS7000222",
        "AADSTS7000215",
        "AADSTS50076",
        "AADSTS7000218",
        "every step worked as expected",
    ):
        assert expected in result.out, expected
    assert re.search(r"5 of 5 tokens came from the encrypted cache", result.out)
    for profile in ("approvals-graph", "desk-ews", "desk-imap", "desk-pop", "approvals-smtp"):
        assert f"✔ {profile}: Connection successful" in result.out
    assert "✘ bob-imap: Connection failed at step 'mailbox access'" in result.out
    assert "Sent 'PO 4711 approval'" in result.out
    assert ".attachments/PO-4711.pdf" in result.out
    # the outbox step: one answer lost by the sandbox, found in Sent Items, not sent twice
    outbox = " ".join(result.out.split())
    assert "Sent 3, failed 0, throttling replies 0; 1 whose answer was lost was found" in outbox
    assert "(attempts 1): interrupted after submission; found in Sent Items" in outbox
    assert "PO 4714 approval (attempts 1)" in result.out
    assert_no_traceback(result)
