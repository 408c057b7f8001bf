"""Every AADSTS case provoked through ``mailgate token`` against the sandbox; cache across runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailgate.testing import SandboxController
from tests.conftest import Cli, assert_no_traceback

EXO = "https://outlook.office365.com"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("cli-idp")) as controller:
        yield controller


@pytest.fixture
def scli(cli: Cli, idp: SandboxController) -> Cli:
    cli.env["MAILGATE_SANDBOX"] = str(Path(idp.state_dir) / "sandbox.json")
    return cli


def _add(
    cli: Cli,
    idp: SandboxController,
    name: str,
    kind: str,
    app: str,
    secret: str | None,
    *extra: str,
    tenant: str | None = None,
    client_id: str | None = None,
) -> None:
    args = [
        "creds",
        "add",
        name,
        "--kind",
        kind,
        "--cloud",
        "sandbox",
        "--tenant",
        tenant or idp.tenant("contoso")["id"],
        "--client-id",
        client_id or idp.app(app)["client_id"],
        *extra,
    ]
    if secret is not None:
        args.append("--secret-stdin")
    result = cli(*args, input=(secret or "") + "\n")
    assert result.code == 0, result.text


def _user(idp: SandboxController, name: str) -> tuple[str, str]:
    user = idp.user(name)
    return user["upn"], user["password"]


def _valid_secret(idp: SandboxController, expired: bool = False) -> dict[str, str]:
    return next(s for s in idp.app("mailgate-daemon")["secrets"] if s["expired"] is expired)


def test_token_then_cache_across_processes(scli: Cli, idp: SandboxController) -> None:
    _add(scli, idp, "d", "client-secret", "mailgate-daemon", _valid_secret(idp)["value"])
    idp.reset_stats()
    first = scli("token", "d", "--json")
    second = scli("token", "d", "--json")
    third = scli("token", "d")
    assert first.code == second.code == third.code == 0, first.text + second.text
    assert json.loads(first.out)["source"] == "identity platform"
    assert json.loads(second.out)["source"] == "cache"
    assert "IMAP.AccessAsApp" in json.loads(first.out)["roles"]
    assert idp.stats()["token"] == {"client_credentials": 1}
    assert _valid_secret(idp)["value"] not in first.text + second.text + third.text
    assert "eyJ" not in first.text + third.text  # no JWT printed


def _ropc(
    cli: Cli,
    idp: SandboxController,
    name: str,
    user: str,
    password: str | None = None,
    app: str = "mailgate-public",
    *extra: str,
) -> None:
    upn, real = _user(idp, user)
    _add(cli, idp, name, "password", app, password or real, "--username", upn, *extra)


CASES = {
    # name: (setup, expected code, words the message or remedy must contain)
    "50034": (
        lambda c, i: _add(
            c,
            i,
            "x",
            "password",
            "mailgate-public",
            "pw",
            "--username",
            "nobody@contoso.onmicrosoft.com",
        ),
        50034,
        "does not exist",
    ),
    "50053": (lambda c, i: _ropc(c, i, "x", "carol"), 50053, "locked"),
    "50055": (lambda c, i: _ropc(c, i, "x", "erin"), 50055, "expired"),
    "50057": (lambda c, i: _ropc(c, i, "x", "dave"), 50057, "disabled"),
    "50076": (lambda c, i: _ropc(c, i, "x", "bob"), 50076, "device code"),
    "50079": (lambda c, i: _ropc(c, i, "x", "frank"), 50079, "register"),
    "50126": (lambda c, i: _ropc(c, i, "x", "alice", "not-the-password"), 50126, "wrong"),
    "50158": (lambda c, i: _ropc(c, i, "x", "heidi"), 50158, "external security"),
    "53003": (lambda c, i: _ropc(c, i, "x", "grace"), 53003, "Conditional Access"),
    "65001": (
        lambda c, i: _ropc(c, i, "x", "alice", None, "mailgate-noconsent"),
        65001,
        "Grant admin consent",
    ),
    "700016": (
        lambda c, i: _add(
            c, i, "x", "client-secret", "", "s", client_id="0a1b2c3d-0000-4000-8000-00000000abcd"
        ),
        700016,
        "Application (client) ID",
    ),
    "7000215": (
        lambda c, i: _add(
            c, i, "x", "client-secret", "mailgate-daemon", _valid_secret(i)["key_id"]
        ),
        7000215,
        "not the Secret ID",
    ),
    "7000218": (
        lambda c, i: _ropc(c, i, "x", "alice", None, "mailgate-daemon"),
        7000218,
        "Allow public client flows",
    ),
    "7000222": (
        lambda c, i: _add(
            c, i, "x", "client-secret", "mailgate-daemon", _valid_secret(i, expired=True)["value"]
        ),
        7000222,
        "new client secret",
    ),
    "90002": (
        lambda c, i: _add(
            c,
            i,
            "x",
            "client-secret",
            "mailgate-daemon",
            "s",
            tenant="nosuchtenant.onmicrosoft.com",
        ),
        90002,
        "tenant",
    ),
    "500011": (
        lambda c, i: _add(
            c,
            i,
            "x",
            "client-secret",
            "mailgate-daemon",
            _valid_secret(i)["value"],
            "--scope",
            "https://unknown-api.example.com/.default",
        ),
        500011,
        "resource",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_aadsts_case_through_cli(scli: Cli, idp: SandboxController, case: str) -> None:
    setup, code, words = CASES[case]
    setup(scli, idp)
    result = scli("token", "x")
    assert result.code == 1, result.text
    assert f"error: AADSTS{code}:" in result.err, result.err
    assert "fix:" in result.err and words in result.err, result.err
    assert "trace id" in result.err
    assert_no_traceback(result)
    for user in idp.tenant("contoso")["users"]:
        assert user["password"] not in result.text


def test_malformed_tenant_never_reaches_the_network(scli: Cli, idp: SandboxController) -> None:
    idp.reset_stats()
    result = scli(
        "creds",
        "add",
        "x",
        "--kind",
        "client-secret",
        "--cloud",
        "sandbox",
        "--tenant",
        "contoso_corp!",
        "--client-id",
        idp.app("mailgate-daemon")["client_id"],
        "--secret-stdin",
        input="s\n",
    )
    assert result.code == 2 and "tenant: expected" in result.err
    assert idp.stats().get("token", {}) == {}


def test_sandbox_not_running_is_explained(cli: Cli, tmp_path: Path) -> None:
    cli.env["MAILGATE_SANDBOX"] = str(tmp_path / "missing.json")
    _args = [
        "creds",
        "add",
        "x",
        "--kind",
        "client-secret",
        "--cloud",
        "sandbox",
        "--tenant",
        "contoso.onmicrosoft.com",
        "--client-id",
        "0a1b2c3d-0000-4000-8000-00000000abcd",
        "--secret-stdin",
    ]
    assert cli(*_args, input="s\n").code == 0
    result = cli("token", "x")
    assert result.code == 2 and "mailgate sandbox" in result.err
    assert_no_traceback(result)


def test_an_expiring_secret_is_warned_about_once(scli: Cli, idp: SandboxController) -> None:
    secret = _valid_secret(idp)["value"]
    _add(scli, idp, "soon", "client-secret", "mailgate-daemon", secret, "--secret-expires", "3d")
    result = scli("token", "soon")
    assert result.code == 0, result.text
    warnings = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.err
    assert "'soon' expires in 2 days" in warnings[0]
    assert "mailgate creds rotate-secret soon" in result.err
