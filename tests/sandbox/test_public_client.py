"""MSAL PublicClientApplication, unmodified, against the sandbox: user flows and their errors."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msal
import pytest

from mailgate.testing import SandboxController, SignInError
from tests.sandbox.helpers import IMAP_DELEGATED, aadsts_code, confidential_app, decode, public_app

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning"),
]

SMTP = "https://outlook.office.com/SMTP.Send"


def _ropc(sandbox: SandboxController, user: str, app: str = "mailgate-public", **kw: Any) -> Any:
    account = sandbox.user(user)
    password = kw.pop("password", account["password"])
    return public_app(sandbox, app).acquire_token_by_username_password(
        account["upn"], password, scopes=kw.pop("scopes", [IMAP_DELEGATED])
    )


def test_ropc_gives_delegated_token(sandbox: SandboxController, contoso: dict[str, Any]) -> None:
    alice = sandbox.user("alice")
    app = sandbox.app("mailgate-public")
    result = _ropc(sandbox, "alice", scopes=[IMAP_DELEGATED, SMTP])
    claims = decode(sandbox, result["access_token"], "https://outlook.office.com")
    assert claims["scp"].split() == ["IMAP.AccessAsUser.All", "SMTP.Send"]
    assert claims["upn"] == claims["unique_name"] == alice["upn"]
    assert claims["oid"] == alice["object_id"] and claims["name"] == alice["display_name"]
    assert claims["appid"] == app["client_id"] and claims["appidacr"] == "0"
    assert "roles" not in claims
    assert result["refresh_token"]
    assert result["id_token_claims"]["preferred_username"] == alice["upn"]
    assert result["id_token_claims"]["aud"] == app["client_id"]
    assert set(result["scope"].split()) >= {IMAP_DELEGATED, SMTP}
    account = public_app(sandbox).get_accounts()
    assert account == []  # a new app object has an empty cache; the next test uses one app


def test_msal_account_is_keyed_by_client_info(
    sandbox: SandboxController, contoso: dict[str, Any]
) -> None:
    app = public_app(sandbox)
    alice = sandbox.user("alice")
    app.acquire_token_by_username_password(alice["upn"], alice["password"], [IMAP_DELEGATED])
    (account,) = app.get_accounts()
    assert account["home_account_id"] == f"{alice['object_id']}.{contoso['id']}"
    assert account["username"] == alice["upn"]


def test_silent_uses_cache_then_refresh_token(sandbox: SandboxController) -> None:
    app = public_app(sandbox)
    alice = sandbox.user("alice")
    first = app.acquire_token_by_username_password(
        alice["upn"], alice["password"], [IMAP_DELEGATED]
    )
    (account,) = app.get_accounts()
    sandbox.reset_stats()
    cached = app.acquire_token_silent([IMAP_DELEGATED], account=account)
    assert cached["access_token"] == first["access_token"]
    assert sandbox.stats()["token"] == {}
    refreshed = app.acquire_token_silent([IMAP_DELEGATED], account=account, force_refresh=True)
    assert refreshed["access_token"] != first["access_token"]
    assert sandbox.stats()["token"] == {"refresh_token": 1}
    graph = app.acquire_token_silent(["https://graph.microsoft.com/Mail.Send"], account=account)
    assert (
        decode(sandbox, graph["access_token"], "https://graph.microsoft.com")["scp"] == "Mail.Send"
    )


def test_revoked_sessions_make_refresh_fail_with_50173(sandbox: SandboxController) -> None:
    app = public_app(sandbox)
    erin_like = sandbox.user("alice")
    app.acquire_token_by_username_password(erin_like["upn"], erin_like["password"], [SMTP])
    (account,) = app.get_accounts()
    sandbox.revoke_sessions(erin_like["upn"])
    result = app.acquire_token_silent_with_error([SMTP], account=account, force_refresh=True)
    assert aadsts_code(result) == 50173
    assert result["error"] == "invalid_grant"
    again = app.acquire_token_by_username_password(erin_like["upn"], erin_like["password"], [SMTP])
    assert "access_token" in again


@pytest.mark.parametrize(
    ("user", "code", "error", "suberror"),
    [
        ("bob", 50076, "invalid_grant", "basic_action"),
        ("carol", 50053, "invalid_grant", None),
        ("dave", 50057, "invalid_grant", None),
        ("erin", 50055, "invalid_grant", None),
        ("frank", 50079, "interaction_required", None),
        ("grace", 53003, "invalid_grant", None),
        ("heidi", 50158, "interaction_required", None),
    ],
)
def test_account_states_refuse_ropc(
    sandbox: SandboxController, user: str, code: int, error: str, suberror: str | None
) -> None:
    result = _ropc(sandbox, user)
    assert aadsts_code(result) == code
    assert result["error"] == error
    assert result.get("suberror") == suberror
    assert result["error_uri"] == f"https://login.microsoftonline.com/error?code={code}"


def test_wrong_password_is_50126(sandbox: SandboxController) -> None:
    assert aadsts_code(_ropc(sandbox, "alice", password="wrong")) == 50126


def test_password_with_trailing_space_is_50126(sandbox: SandboxController) -> None:
    password = sandbox.user("alice")["password"] + " "
    assert aadsts_code(_ropc(sandbox, "alice", password=password)) == 50126


def test_unknown_user_is_50034(sandbox: SandboxController) -> None:
    result = public_app(sandbox).acquire_token_by_username_password(
        "nobody@contoso.onmicrosoft.com", "x", scopes=[IMAP_DELEGATED]
    )
    assert aadsts_code(result) == 50034


def test_missing_consent_is_65001(sandbox: SandboxController) -> None:
    result = _ropc(sandbox, "alice", app="mailgate-noconsent")
    assert aadsts_code(result) == 65001
    assert result["suberror"] == "consent_required"


def test_confidential_app_without_secret_is_7000218(sandbox: SandboxController) -> None:
    result = _ropc(sandbox, "alice", app="mailgate-daemon")
    assert aadsts_code(result) == 7000218
    assert "'client_assertion' or 'client_secret'" in result["error_description"]


def test_public_client_sending_a_secret_is_700025(sandbox: SandboxController) -> None:
    alice = sandbox.user("alice")
    app = confidential_app(sandbox, "some-secret", name="mailgate-public")
    result = app.acquire_token_by_username_password(alice["upn"], alice["password"], [SMTP])
    assert aadsts_code(result) == 700025


def test_confidential_app_may_use_ropc_with_its_secret(sandbox: SandboxController) -> None:
    alice = sandbox.user("alice")
    secret = sandbox.app("mailgate-daemon")["secrets"][0]["value"]
    result = confidential_app(sandbox, secret).acquire_token_by_username_password(
        alice["upn"], alice["password"], [SMTP]
    )
    assert decode(sandbox, result["access_token"], "https://outlook.office.com")["appidacr"] == "1"


def test_ropc_on_organizations_finds_the_users_tenant(sandbox: SandboxController) -> None:
    ivan = sandbox.user("ivan")
    app = msal.PublicClientApplication(
        sandbox.app("fabrikam-public")["client_id"],
        authority=f"{sandbox.base_url}/organizations",
        instance_discovery=False,
        http_client=sandbox.requests_session(),
    )
    result = app.acquire_token_by_username_password(ivan["upn"], ivan["password"], [SMTP])
    claims = decode(sandbox, result["access_token"], "https://outlook.office.com")
    assert claims["tid"] == sandbox.tenant("fabrikam")["id"]


def test_device_code_flow(sandbox: SandboxController) -> None:
    app = public_app(sandbox)
    flow = app.initiate_device_flow(scopes=[IMAP_DELEGATED])
    assert flow["verification_uri"] == f"{sandbox.base_url}/devicelogin"
    assert "verification_uri_complete" not in flow
    assert flow["user_code"] in flow["message"]
    bob = sandbox.user("bob")  # MFA is completed in the browser, so device code works for bob
    approvals: list[dict[str, Any]] = []
    approver = threading.Thread(
        target=lambda: approvals.append(
            sandbox.approve_device_code(flow["user_code"], bob["upn"], bob["password"])
        )
    )
    approver.start()
    result = app.acquire_token_by_device_flow(flow)
    approver.join()
    assert approvals[0]["status"] == "approved"
    claims = decode(sandbox, result["access_token"], "https://outlook.office.com")
    assert claims["upn"] == bob["upn"] and "mfa" in claims["amr"]


def test_device_code_poll_errors(sandbox: SandboxController, contoso: dict[str, Any]) -> None:
    app = sandbox.app("mailgate-public")
    with sandbox.http() as client:
        started = client.post(
            contoso["devicecode_endpoint"],
            data={"client_id": app["client_id"], "scope": IMAP_DELEGATED},
        ).json()

        def poll(device_code: str) -> dict[str, Any]:
            body: dict[str, Any] = client.post(
                contoso["token_endpoint"],
                data={
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                    "client_id": app["client_id"],
                    "device_code": device_code,
                },
            ).json()
            return body

        pending = poll(started["device_code"])
        assert (pending["error"], pending["error_codes"]) == ("authorization_pending", [70016])
        bad = poll("not-a-device-code")
        assert (bad["error"], bad["error_codes"]) == ("bad_verification_code", [70018])
        grace = sandbox.user("grace")
        refused = sandbox.approve_device_code(started["user_code"], grace["upn"], grace["password"])
        assert refused["error_codes"] == [53003]
        assert sandbox.decline_device_code(started["user_code"])["status"] == "declined"
        assert poll(started["device_code"])["error"] == "authorization_declined"


def test_device_code_needs_consent_unless_user_gives_it(sandbox: SandboxController) -> None:
    app = public_app(sandbox, "mailgate-noconsent")
    flow = app.initiate_device_flow(scopes=[SMTP])
    heidi = sandbox.user("heidi")
    refused = sandbox.approve_device_code(flow["user_code"], heidi["upn"], heidi["password"])
    assert refused["error_codes"] == [65001]
    approved = sandbox.approve_device_code(
        flow["user_code"], heidi["upn"], heidi["password"], consent=True
    )
    assert approved["status"] == "approved"
    assert "access_token" in app.acquire_token_by_device_flow(flow)


def test_auth_code_flow_with_pkce(sandbox: SandboxController) -> None:
    app = public_app(sandbox)
    flow = app.initiate_auth_code_flow([IMAP_DELEGATED], redirect_uri="http://localhost:53117")
    assert flow["code_verifier"]
    alice = sandbox.user("alice")
    location = sandbox.sign_in(flow["auth_uri"], alice["upn"], alice["password"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert location.startswith("http://localhost:53117?")
    result = app.acquire_token_by_auth_code_flow(flow, query)
    claims = decode(sandbox, result["access_token"], "https://outlook.office.com")
    assert claims["upn"] == alice["upn"]
    assert result["id_token_claims"]["nonce"]  # MSAL itself checked it against its flow
    (account,) = app.get_accounts()
    assert account["username"] == alice["upn"]


def test_auth_code_reuse_is_54005_and_bad_verifier_501481(
    sandbox: SandboxController, contoso: dict[str, Any]
) -> None:
    app = public_app(sandbox)
    alice = sandbox.user("alice")
    redirect = "http://localhost:53118"

    def code_of(flow: dict[str, Any]) -> str:
        location = sandbox.sign_in(flow["auth_uri"], alice["upn"], alice["password"])
        return parse_qs(urlsplit(location).query)["code"][0]

    def redeem(code: str, verifier: str) -> httpx.Response:
        return httpx.post(
            contoso["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "client_id": sandbox.app("mailgate-public")["client_id"],
                "code": code,
                "redirect_uri": redirect,
                "code_verifier": verifier,
                "scope": IMAP_DELEGATED,
            },
            verify=sandbox.ssl_context(),
        )

    flow = app.initiate_auth_code_flow([IMAP_DELEGATED], redirect_uri=redirect)
    assert redeem(code_of(flow), "wrong-verifier").json()["error_codes"] == [501481]
    flow = app.initiate_auth_code_flow([IMAP_DELEGATED], redirect_uri=redirect)
    code = code_of(flow)
    assert redeem(code, flow["code_verifier"]).status_code == 200
    assert redeem(code, flow["code_verifier"]).json()["error_codes"] == [54005]


def test_auth_code_sign_in_errors_go_to_the_redirect_uri(sandbox: SandboxController) -> None:
    app = public_app(sandbox)
    flow = app.initiate_auth_code_flow([IMAP_DELEGATED], redirect_uri="http://localhost:53119")
    carol = sandbox.user("carol")
    location = sandbox.sign_in(flow["auth_uri"], carol["upn"], carol["password"])
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["error"] == "invalid_grant"
    assert query["error_description"].startswith("AADSTS50053:")
    assert query["state"] == flow["state"]
    assert app.acquire_token_by_auth_code_flow(flow, query)["error"] == "invalid_grant"


def test_unregistered_redirect_uri_is_50011_and_not_redirected(
    sandbox: SandboxController,
) -> None:
    app = public_app(sandbox)
    flow = app.initiate_auth_code_flow([IMAP_DELEGATED], redirect_uri="https://evil.example/cb")
    alice = sandbox.user("alice")
    with pytest.raises(SignInError, match="AADSTS50011"):
        sandbox.sign_in(flow["auth_uri"], alice["upn"], alice["password"])
