"""``mailgate setup apply`` and ``creds rotate-secret`` end to end: the real CLI in a subprocess,
the admin's device code approved through the sandbox, Graph's directory in the sandbox."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailgate.testing import SandboxController
from tests.conftest import Cli, CliResult, assert_no_traceback

DOMAIN = "contoso.onmicrosoft.com"
_CODE = re.compile(r"enter the code ([A-Z0-9]+)")


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("apply-idp")) as controller:
        yield controller


@pytest.fixture
def scli(cli: Cli, idp: SandboxController) -> Cli:
    cli.env["MAILGATE_SANDBOX"] = str(Path(idp.state_dir) / "sandbox.json")
    return cli


def signed_in(
    cli: Cli, idp: SandboxController, *args: str, user: str = "admin", approve: bool = True
) -> CliResult:
    """Run the CLI; when it shows a device code, the sandbox user approves (or declines) it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailgate", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
    )
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:
        seen.append(line)
        match = _CODE.search(line)
        if match:
            idp.answer_device_code(match.group(1), user, approve=approve)
            break
    out, err = proc.communicate(timeout=120)
    return CliResult(proc.returncode, out, "".join(seen) + err)


def _apply(cli: Cli, idp: SandboxController, *extra: str, user: str = "admin") -> CliResult:
    return signed_in(
        cli,
        idp,
        "setup", "apply", "--protocol", "imap", "--flow", "client-credentials",
        "--tenant", idp.tenant("contoso")["id"], "--cloud", "sandbox", *extra,
        user=user,
    )  # fmt: skip


def test_apply_then_exchange_steps_then_connection_successful(
    scli: Cli, idp: SandboxController
) -> None:
    mailbox = f"servicedesk@{DOMAIN}"
    result = _apply(
        scli, idp, "--mailbox", mailbox, "--credential", "bizagi", "--name", "Bizagi", "--json"
    )
    assert result.code == 0, result.text
    assert_no_traceback(result)
    data = json.loads(result.out)
    assert data["credential"] == "bizagi" and data["consented"] == ["IMAP.AccessAsApp"]
    (report,) = data["mailboxes"]
    assert report["name"] == "servicedesk" and report["test"]["ok"] is False, "PowerShell pending"

    shown = scli("creds", "show", "bizagi", "--json")
    profile = json.loads(shown.out)
    assert profile["client_id"] == data["app_id"]
    assert profile["app_object_id"] == data["application_id"]
    assert profile["secret_key_id"] == data["secret_key_id"]
    assert profile["secret_expires"].startswith(data["secret_expires"][:10])
    secret = next(s for s in idp.app(data["app_id"])["secrets"])["value"]
    assert secret not in result.text + shown.text, "the secret is never printed"

    lines = [
        line for block in data["powershell"] if not block["optional"] for line in block["lines"]
    ]
    assert any(line.startswith("New-ServicePrincipal") for line in lines)
    idp.exchange_powershell("\n".join(lines))
    tested = scli("test", "servicedesk")
    assert tested.code == 0, tested.text
    assert "Connection successful" in tested.out


def test_text_output_names_ids_and_prints_the_powershell(scli: Cli, idp: SandboxController) -> None:
    result = _apply(scli, idp, "--protocol", "graph", "--credential", "graph-app")
    assert result.code == 0, result.text
    assert "Admin consent granted: Mail.ReadWrite, Mail.Send." in result.out
    assert "Stored credential 'graph-app'." in result.out
    token = scli("token", "graph-app", "--json")
    assert sorted(json.loads(token.out)["roles"]) == ["Mail.ReadWrite", "Mail.Send"]


def test_non_admin_half_done_names_what_exists_and_keeps_the_secret(
    scli: Cli, idp: SandboxController
) -> None:
    # Members may register apps (Entra's default) but only admins grant consent.
    result = _apply(scli, idp, "--credential", "half", "--name", "Half", user="alice")
    assert result.code == 1, result.text
    assert_no_traceback(result)
    err = " ".join(result.err.split())
    assert "setup apply stopped at 'grant admin consent to IMAP.AccessAsApp" in err
    assert "HTTP 403 Authorization_RequestDenied" in err
    assert "Created so far: the application 'Half' (application id" in err
    assert "a client secret (key id" in err
    assert "The secret is stored in credential 'half'." in err
    assert "Global Administrator" in err
    assert "DELETE https://127.0.0.1:" in err and "/v1.0/applications/" in err
    app = next(a for a in idp.tenant("contoso")["apps"] if a["name"] == "Half")
    assert app["secrets"][0]["value"] not in result.text
    shown = json.loads(scli("creds", "show", "half", "--json").out)
    assert shown["client_id"] == app["client_id"]


def test_declined_sign_in_changes_nothing(scli: Cli, idp: SandboxController) -> None:
    before = len(idp.tenant("contoso")["apps"])
    result = signed_in(
        scli,
        idp,
        "setup", "apply", "--protocol", "pop", "--flow", "client-credentials",
        "--tenant", DOMAIN, "--cloud", "sandbox",
        approve=False,
    )  # fmt: skip
    assert result.code == 1, result.text
    assert_no_traceback(result)
    assert "AADSTS70020" in result.err or "declined" in result.err.lower()
    assert len(idp.tenant("contoso")["apps"]) == before


def test_dry_run_prints_requests_without_signing_in(cli: Cli) -> None:
    result = cli(
        "setup", "apply", "--protocol", "ews", "--flow", "client-credentials",
        "--mailbox", "robot@contoso.com", "--secret-days", "90", "--dry-run",
    )  # fmt: skip
    assert result.code == 0, result.text
    assert result.err == ""
    assert (
        "GET https://graph.microsoft.com/v1.0/servicePrincipals?$filter=appId eq "
        "'00000002-0000-0ff1-ce00-000000000000'" in result.out
    )
    assert "POST https://graph.microsoft.com/v1.0/applications\n" in result.out
    assert '"id": "dc890d15-9560-4a4c-9b7f-a736ec74ec40"' in result.out, "verified id is shown"
    assert "add a client secret valid for 90 days" in result.out
    assert "New-ApplicationAccessPolicy -AppId <application (client) id>" in result.out
    assert not (cli.home / "vault.json").exists() and not (cli.home / "master.key").exists()
    as_json = cli(
        "setup", "apply", "--protocol", "graph", "--flow", "device-code", "--dry-run", "--json"
    )
    data = json.loads(as_json.out)
    assert [r["method"] for r in data["requests"]] == ["GET", "POST", "POST", "POST", "PATCH"]
    assert data["requests"][3]["body"]["consentType"] == "AllPrincipals"
    assert data["requests"][4]["body"] == {"isFallbackPublicClient": True}


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--flow", "certificate"], "--certificate"),
        (["--flow", "client-credentials", "--certificate", "x.pem"], "--certificate"),
        (["--flow", "client-credentials", "--secret-days", "0"], "--secret-days"),
        (["--flow", "client-credentials", "--cloud", "mars"], "cloud"),
        (["--flow", "client-credentials", "--credential", "no spaces"], "--credential"),
    ],
)
def test_bad_input_exits_2(cli: Cli, args: list[str], field: str) -> None:
    result = cli("setup", "apply", "--protocol", "imap", *args, "--dry-run")
    assert result.code == 2, result.text
    assert_no_traceback(result)
    assert result.err.startswith(f"error: {field}"), result.err


def _secret_values(idp: SandboxController, app_id: str) -> list[str]:
    return [s["value"] for s in idp.app(app_id)["secrets"]]


def _token_answer(idp: SandboxController, app_id: str, secret: str) -> dict[str, object]:
    with idp.http() as client:
        response = client.post(
            idp.tenant("contoso")["token_endpoint"],
            data={
                "grant_type": "client_credentials",
                "client_id": app_id,
                "client_secret": secret,
                "scope": "https://outlook.office365.com/.default",
            },
        )
    return dict(response.json())


def _applied(scli: Cli, idp: SandboxController, credential: str) -> dict[str, str]:
    result = _apply(scli, idp, "--credential", credential, "--json")
    assert result.code == 0, result.text
    data: dict[str, str] = json.loads(result.out)
    return data


def test_rotate_secret_replaces_and_removes_the_old_one(scli: Cli, idp: SandboxController) -> None:
    data = _applied(scli, idp, "rot")
    (old,) = _secret_values(idp, data["app_id"])
    result = signed_in(scli, idp, "creds", "rotate-secret", "rot", "--days", "30")
    assert result.code == 0, result.text
    assert_no_traceback(result)
    assert f"Removed the old secret {data['secret_key_id']}." in result.out
    (new,) = _secret_values(idp, data["app_id"])
    assert new != old and new not in result.text and old not in result.text
    refused = _token_answer(idp, data["app_id"], old)
    assert refused["error_codes"] == [7000215], refused
    profile = json.loads(scli("creds", "show", "rot", "--json").out)
    assert profile["secret_key_id"] not in (None, data["secret_key_id"])
    token = scli("token", "rot", "--json")
    assert token.code == 0, token.text
    assert json.loads(token.out)["source"] == "identity platform", "old cached tokens dropped"


def test_rotate_secret_keeps_the_old_one_when_the_new_one_fails(
    scli: Cli, idp: SandboxController
) -> None:
    data = _applied(scli, idp, "keep")
    before = json.loads(scli("creds", "show", "keep", "--json").out)
    idp.delay_secret_propagation(1000)
    try:
        result = signed_in(scli, idp, "creds", "rotate-secret", "keep", "--wait", "0")
    finally:
        idp.delay_secret_propagation(0)
    assert result.code == 1, result.text
    assert_no_traceback(result)
    err = " ".join(result.err.split())
    assert "AADSTS7000215" in err or "7000215" in err
    assert "The new secret was removed again." in err
    assert "old secret was kept" in err
    (kept,) = _secret_values(idp, data["app_id"])
    assert "access_token" in _token_answer(idp, data["app_id"], kept)
    after = json.loads(scli("creds", "show", "keep", "--json").out)
    assert after == before, "the vault is unchanged"
    assert scli("token", "keep").code == 0


def test_rotate_secret_without_a_known_key_id_leaves_the_old_one(
    scli: Cli, idp: SandboxController
) -> None:
    data = _applied(scli, idp, "orig")
    (old,) = _secret_values(idp, data["app_id"])
    added = scli(
        "creds", "add", "byhand", "--kind", "client-secret", "--cloud", "sandbox",
        "--tenant", idp.tenant("contoso")["id"], "--client-id", data["app_id"], "--secret-stdin",
        input=old + "\n",
    )  # fmt: skip
    assert added.code == 0, added.text
    result = signed_in(scli, idp, "creds", "rotate-secret", "byhand")
    assert result.code == 0, result.text
    assert "is not known (it was added by hand), so it was left in place" in " ".join(
        result.err.split()
    )
    assert len(_secret_values(idp, data["app_id"])) == 2
    assert "access_token" in _token_answer(idp, data["app_id"], old)
