"""The running server: description file, discovery documents, admin endpoints, HTML pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mailgate.testing import SandboxClient, SandboxController

pytestmark = pytest.mark.sandbox


def test_description_file_matches_and_is_private(sandbox: SandboxController) -> None:
    path = sandbox.state_dir / "sandbox.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == sandbox.description
    assert SandboxClient.from_file(path).app("mailgate-daemon") == sandbox.app("mailgate-daemon")


def test_description_schema(sandbox: SandboxController) -> None:
    d = sandbox.description
    assert d["version"] == 1
    assert d["base_url"] == f"https://{d['authority_host']}"
    assert set(d["endpoints"]) == {"stats", "device_approve", "devicelogin"}
    assert d["resources"] == {
        "exchange": "https://outlook.office365.com",
        "graph": "https://graph.microsoft.com",
    }
    assert Path(d["ca_file"]).is_file() and Path(d["tenant_file"]).is_file()
    contoso = sandbox.tenant("contoso")
    assert contoso["token_endpoint"] == f"{contoso['authority']}/oauth2/v2.0/token"
    assert {a["name"] for a in contoso["apps"]} == {
        "mailgate-daemon",
        "mailgate-public",
        "mailgate-noconsent",
        "mailgate-nosp",
        "mailgate-wrongsp",
        "mailgate-imaponly",
        "Microsoft Graph Command Line Tools",
    }
    daemon = sandbox.app("mailgate-daemon")
    assert sorted(s["expired"] for s in daemon["secrets"]) == [False, True]
    (cert,) = daemon["certificates"]
    assert len(cert["thumbprint_sha1"]) == 40 and len(cert["thumbprint_sha256"]) == 64
    assert Path(cert["pfx_file"]).stat().st_mode & 0o777 == 0o600
    assert {u["upn"].split("@")[0]: u["state"] for u in contoso["users"]} == {
        "admin": "ok",
        "alice": "ok",
        "bob": "mfa_required",
        "carol": "locked",
        "dave": "disabled",
        "erin": "password_expired",
        "frank": "mfa_registration_required",
        "grace": "blocked_by_conditional_access",
        "heidi": "external_challenge",
    }
    assert sandbox.tenant("fabrikam")["domains"] == ["fabrikam.onmicrosoft.com"]


@pytest.mark.parametrize("segment", ["id", "contoso.onmicrosoft.com"])
def test_openid_configuration_uses_tenant_guid(sandbox: SandboxController, segment: str) -> None:
    contoso = sandbox.tenant("contoso")
    name = contoso["id"] if segment == "id" else segment
    with sandbox.http() as client:
        doc = client.get(f"/{name}/v2.0/.well-known/openid-configuration").json()
    assert doc["token_endpoint"] == contoso["token_endpoint"]
    assert doc["authorization_endpoint"] == contoso["authorize_endpoint"]
    assert doc["device_authorization_endpoint"] == contoso["devicecode_endpoint"]
    assert doc["issuer"] == f"{contoso['authority']}/v2.0"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]


@pytest.mark.parametrize(("segment", "code"), [("unknown.example", 90002), ("no_such", 900023)])
def test_discovery_errors(sandbox: SandboxController, segment: str, code: int) -> None:
    with sandbox.http() as client:
        response = client.get(f"/{segment}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 400
    assert response.json()["error_codes"] == [code]
    assert response.json()["error_description"].startswith(f"AADSTS{code}: ")


def test_jwks(sandbox: SandboxController) -> None:
    with sandbox.http() as client:
        (key,) = client.get(f"/{sandbox.tenant()['id']}/discovery/v2.0/keys").json()["keys"]
    assert {"kty", "use", "kid", "x5t", "n", "e", "x5c"} <= set(key)
    assert key["kty"] == "RSA" and key["use"] == "sig" and key["kid"] == key["x5t"]


def test_stats_count_endpoints_and_reset(sandbox: SandboxController) -> None:
    sandbox.reset_stats()
    with sandbox.http() as client:
        client.get(f"/{sandbox.tenant()['id']}/v2.0/.well-known/openid-configuration")
        client.post(f"/{sandbox.tenant()['id']}/oauth2/v2.0/token", data={"grant_type": "password"})
    stats = sandbox.stats()
    assert stats["openid_configuration"] == 1
    assert stats["token"] == {"password": 1} and stats["token_errors"] == {"password": 1}
    sandbox.reset_stats()
    assert sandbox.stats() == {"token": {}, "token_errors": {}}


def test_authorize_page_carries_parameters(sandbox: SandboxController) -> None:
    app = sandbox.app("mailgate-public")
    params = {
        "client_id": app["client_id"],
        "redirect_uri": "http://localhost:9",
        "state": "st8",
        "scope": "openid",
        "response_type": "code",
        "login_hint": "alice@contoso.onmicrosoft.com",
        "code_challenge": "abc",
        "code_challenge_method": "S256",
    }
    with sandbox.http() as client:
        page = client.get(f"/{sandbox.tenant()['id']}/oauth2/v2.0/authorize", params=params)
    assert page.status_code == 200
    for value in ("st8", "abc", "value='alice@contoso.onmicrosoft.com'", "name='password'"):
        assert value in page.text


def test_devicelogin_html_form_approves(sandbox: SandboxController) -> None:
    app = sandbox.app("mailgate-public")
    alice = sandbox.user("alice")
    with sandbox.http() as client:
        started = client.post(
            sandbox.tenant()["devicecode_endpoint"],
            data={"client_id": app["client_id"], "scope": "https://outlook.office.com/SMTP.Send"},
        ).json()
        assert "name='user_code'" in client.get("/devicelogin").text
        wrong = client.post(
            "/devicelogin",
            data={"user_code": started["user_code"], "username": alice["upn"], "password": "no"},
        )
        assert wrong.status_code == 400 and "AADSTS50126" in wrong.text
        ok = client.post(
            "/devicelogin",
            data={
                "user_code": started["user_code"].lower(),
                "username": alice["upn"],
                "password": alice["password"],
            },
        )
        assert ok.status_code == 200
        tokens = client.post(
            sandbox.tenant()["token_endpoint"],
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": app["client_id"],
                "device_code": started["device_code"],
            },
        ).json()
    assert tokens["token_type"] == "Bearer" and "client_info" in tokens


def test_user_state_can_change_at_runtime(sandbox: SandboxController) -> None:
    heidi = sandbox.user("heidi")
    assert sandbox.set_user_state(heidi["upn"], locked=True) == "locked"
    assert sandbox.set_user_state(heidi["upn"], locked=False) == "external_challenge"
    with sandbox.http() as client:
        assert (
            client.post(f"/_sandbox/users/{heidi['upn']}/state", json={"x": True}).status_code
            == 400
        )


def test_state_dir_is_reused(tmp_path: Path) -> None:
    with SandboxController(tmp_path) as first:
        app, url = first.app("mailgate-daemon"), first.base_url
    with SandboxController(tmp_path) as second:
        assert second.app("mailgate-daemon") == app
        assert second.base_url != url
    assert tmp_path.exists()  # a given directory is kept


def test_second_sandbox_on_a_state_dir_is_refused(sandbox: SandboxController) -> None:
    from mailgate.errors import ConfigurationError

    before = (sandbox.state_dir / "sandbox.json").read_text()
    with pytest.raises(ConfigurationError, match="already running"):
        SandboxController(sandbox.state_dir).start()
    # The refused one neither rewrote nor removed the running one's description.
    assert (sandbox.state_dir / "sandbox.json").read_text() == before
    assert SandboxClient.from_file(sandbox.state_dir / "sandbox.json").stats()


def test_stopped_sandbox_leaves_no_live_looking_description(tmp_path: Path) -> None:
    from mailgate.errors import ConfigurationError

    with SandboxController(tmp_path):
        assert (tmp_path / "sandbox.json").exists()
    assert not (tmp_path / "sandbox.json").exists()
    with pytest.raises(ConfigurationError, match="no sandbox is running"):
        SandboxClient.from_file(tmp_path / "sandbox.json")


def test_answer_device_code_raises_typed_error(sandbox: SandboxController) -> None:
    from mailgate.errors import TokenRequestError

    with pytest.raises(TokenRequestError) as caught:
        sandbox.answer_device_code("NOPE12345", "alice")
    assert caught.value.code == 70018
    assert caught.value.trace_id
