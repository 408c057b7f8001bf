"""Unit tests of the sandbox's pure protocol logic: no sockets, fake clock where needed."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailgate.sandbox.directory.resources import EXCHANGE, GRAPH
from mailgate.sandbox.directory.tenant import App, User, load_tenant_file, write_demo_tenant
from mailgate.sandbox.entra import grants
from mailgate.sandbox.entra.aadsts import CATALOGUE, AadstsError, aadsts, error_body
from mailgate.sandbox.entra.clientauth import check_secret, read_client_credentials
from mailgate.sandbox.entra.identity_platform import IdentityPlatform, is_tenant_identifier
from mailgate.sandbox.entra.params import (
    granted_permissions,
    parse_scopes,
    pkce_matches,
    redirect_uri_matches,
)
from mailgate.sandbox.entra.tokens import TokenSigner, access_token_claims, client_info
from mailgate.sandbox.pki import ensure_pki


def test_error_body_has_microsofts_shape() -> None:
    moment = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    body = error_body(
        aadsts(65001, client_id="c1", app_name="demo"),
        now=moment,
        trace_id="t-1",
        correlation_id="c-1",
    )
    assert body["error"] == "invalid_grant"
    assert body["suberror"] == "consent_required"
    assert body["error_codes"] == [65001]
    assert body["timestamp"] == "2025-03-04 05:06:07Z"
    assert body["error_description"] == (
        f"AADSTS65001: {CATALOGUE[65001].text.format(client_id='c1', app_name='demo')}"
        "\r\nTrace ID: t-1\r\nCorrelation ID: c-1\r\nTimestamp: 2025-03-04 05:06:07Z"
    )
    assert body["error_uri"] == "https://login.microsoftonline.com/error?code=65001"
    assert (body["trace_id"], body["correlation_id"]) == ("t-1", "c-1")


def test_invalid_client_errors_are_401_and_name_the_secret_id_mistake() -> None:
    err = aadsts(7000215, client_id="abc")
    assert err.status == 401 and err.error == "invalid_client"
    assert "not the client secret ID" in err.message and "'abc'" in err.message
    assert "'client_assertion' or 'client_secret'" in aadsts(7000218).message
    assert aadsts(50076).suberror == "basic_action"
    assert "suberror" not in error_body(aadsts(50126))


def test_scope_parsing() -> None:
    req = parse_scopes("https://outlook.office.com/IMAP.AccessAsUser.All offline_access openid")
    assert req.resource is EXCHANGE and req.audience == "https://outlook.office.com"
    assert req.permissions == ("IMAP.AccessAsUser.All",)
    assert req.oidc == {"offline_access", "openid"}
    assert parse_scopes("User.Read").resource is GRAPH
    assert parse_scopes("00000002-0000-0ff1-ce00-000000000000/.default").is_default
    assert parse_scopes("openid profile").resource is None


@pytest.mark.parametrize(
    ("scope", "code"),
    [
        ("", 900144),
        ("https://outlook.office365.com/.default https://graph.microsoft.com/.default", 70011),
        ("https://outlook.office365.com/.default https://outlook.office365.com/SMTP.Send", 70011),
        ("https://mail.example.org/.default", 500011),
    ],
)
def test_bad_scopes(scope: str, code: int) -> None:
    with pytest.raises(AadstsError) as caught:
        parse_scopes(scope)
    assert caught.value.code == code


def test_granted_permissions() -> None:
    consented = ["IMAP.AccessAsUser.All", "SMTP.Send"]
    req = parse_scopes("https://outlook.office.com/imap.accessasuser.all")
    assert granted_permissions(req, consented) == ["IMAP.AccessAsUser.All"]
    assert (
        granted_permissions(parse_scopes("https://outlook.office.com/.default"), consented)
        == consented
    )
    assert (
        granted_permissions(
            parse_scopes("https://outlook.office.com/EWS.AccessAsUser.All"), consented
        )
        is None
    )
    assert granted_permissions(parse_scopes("https://outlook.office.com/.default"), []) is None


def test_pkce() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge.decode() == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636 B
    assert pkce_matches(challenge.decode(), "S256", verifier)
    assert not pkce_matches(challenge.decode(), "S256", verifier + "x")
    assert pkce_matches("plain-value", "plain", "plain-value")
    assert pkce_matches("plain-value", "", "plain-value")


def test_redirect_uri_matching() -> None:
    registered = ["http://localhost", "https://app.example/cb"]
    assert redirect_uri_matches(registered, "http://localhost:8400")
    assert redirect_uri_matches(registered, "http://localhost")
    assert redirect_uri_matches(registered, "https://app.example/cb")
    assert not redirect_uri_matches(registered, "https://app.example:444/cb")
    assert not redirect_uri_matches(registered, "http://localhost:8400/other")
    assert not redirect_uri_matches(registered, "http://evil.example")


def test_tenant_identifiers() -> None:
    assert is_tenant_identifier("organizations")
    assert is_tenant_identifier("contoso.onmicrosoft.com")
    assert is_tenant_identifier("72f988bf-86f1-41af-91ab-2d7cd011db47")
    assert not is_tenant_identifier("not a tenant")
    assert not is_tenant_identifier("contoso")


def _user() -> User:
    return User(
        upn="a@x.example",
        password="p",
        display_name="Ann Example",
        object_id="11111111-1111-1111-1111-111111111111",
    )


def test_app_only_claims_omit_roles_when_none() -> None:
    claims = access_token_claims(
        issuer_base="https://h",
        tenant_id="t",
        audience="https://outlook.office365.com",
        client_id="c",
        acr="1",
        now=100,
        lifetime=50,
        app_object_id="sp",
        roles=[],
    )
    assert "roles" not in claims and "scp" not in claims
    assert (claims["iss"], claims["exp"], claims["oid"], claims["ver"]) == (
        "https://h/t/",
        150,
        "sp",
        "1.0",
    )


def test_delegated_claims() -> None:
    claims = access_token_claims(
        issuer_base="https://h",
        tenant_id="t",
        audience="https://graph.microsoft.com",
        client_id="c",
        acr="0",
        now=100,
        lifetime=50,
        app_object_id="sp",
        user=_user(),
        scp=["Mail.Send", "User.Read"],
    )
    assert claims["scp"] == "Mail.Send User.Read"
    assert claims["upn"] == claims["unique_name"] == "a@x.example"
    assert (claims["given_name"], claims["family_name"]) == ("Ann", "Example")
    assert claims["appidacr"] == claims["azpacr"] == "0"


def test_client_info() -> None:
    encoded = client_info("u1", "t1")
    assert json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))) == {
        "uid": "u1",
        "utid": "t1",
    }


def test_client_credentials_from_basic_auth() -> None:
    header = "Basic " + base64.b64encode(b"my%20id:s%3Acret").decode()
    creds = read_client_credentials({}, header)
    assert (creds.client_id, creds.secret) == ("my id", "s:cret")


def test_secret_checks() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    app = App(
        name="a",
        client_id="11111111-1111-1111-1111-111111111111",
        object_id="22222222-2222-2222-2222-222222222222",
        service_principal_id="33333333-3333-3333-3333-333333333333",
        secrets=[
            {
                "key_id": "44444444-4444-4444-4444-444444444444",
                "value": "good",
                "expires": now + timedelta(days=1),
            },
            {
                "key_id": "55555555-5555-5555-5555-555555555555",
                "value": "old",
                "expires": now - timedelta(days=1),
            },
        ],
    )
    check_secret(app, "good", now)
    for value, code in (
        ("old", 7000222),
        ("bad", 7000215),
        ("44444444-4444-4444-4444-444444444444", 7000215),
    ):
        with pytest.raises(AadstsError) as caught:
            check_secret(app, value, now)
        assert caught.value.code == code


@pytest.fixture(scope="module")
def platform_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("platform")
    write_demo_tenant(directory)
    ensure_pki(directory)
    return directory


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _platform(directory: Path, clock: FakeClock) -> IdentityPlatform:
    pki = ensure_pki(directory)
    signer = TokenSigner(pki.signing_key, pki.signing_cert)
    return IdentityPlatform(load_tenant_file(directory / "tenant.toml"), signer, "https://h", clock)


def test_demo_tenant_is_written_once_with_private_mode(platform_dir: Path) -> None:
    path = platform_dir / "tenant.toml"
    before = path.read_text()
    assert write_demo_tenant(platform_dir) == path and path.read_text() == before
    assert path.stat().st_mode & 0o777 == 0o600
    assert (platform_dir / "pki" / "signing-key.pem").stat().st_mode & 0o777 == 0o600
    states = [u.state for u in load_tenant_file(path).tenants[0].users]
    assert states == [
        "ok",
        "ok",
        "mfa_required",
        "locked",
        "disabled",
        "password_expired",
        "mfa_registration_required",
        "blocked_by_conditional_access",
        "external_challenge",
    ]


def test_codes_and_device_codes_expire(platform_dir: Path) -> None:
    clock = FakeClock()
    platform = _platform(platform_dir, clock)
    tenant = platform.directory.tenants[0]
    app = next(a for a in tenant.apps if a.name == "mailgate-public")
    alice = tenant.users[0]
    scope = "https://outlook.office.com/SMTP.Send"
    started = grants.device_authorization(
        platform, tenant.id, {"client_id": app.client_id, "scope": scope}
    )
    clock.now += timedelta(seconds=started["expires_in"] + 1)
    with pytest.raises(AadstsError) as caught:
        grants.approve_device(platform, started["user_code"], alice.upn, alice.password)
    assert caught.value.code == 70019
    form = {
        "grant_type": grants.DEVICE_CODE_GRANT,
        "client_id": app.client_id,
        "device_code": started["device_code"],
    }
    with pytest.raises(AadstsError) as caught:
        grants.token(platform, tenant.id, form, None)
    assert (caught.value.code, caught.value.error) == (70019, "expired_token")

    req = grants.AuthorizeRequest(
        client_id=app.client_id, redirect_uri="http://localhost:1", scope=scope, state="s"
    )
    location = grants.authorize_submit(platform, tenant.id, req, alice.upn, alice.password)
    code = location.split("code=")[1].split("&")[0]
    clock.now += timedelta(minutes=11)
    form = {
        "grant_type": "authorization_code",
        "client_id": app.client_id,
        "code": code,
        "redirect_uri": "http://localhost:1",
    }
    with pytest.raises(AadstsError) as caught:
        grants.token(platform, tenant.id, form, None)
    assert caught.value.code == 70008


def test_unknown_grant_and_tenant_errors(platform_dir: Path) -> None:
    platform = _platform(platform_dir, FakeClock())
    for segment, form, code in (
        ("contoso.onmicrosoft.com", {"grant_type": "magic", "client_id": "x"}, 70003),
        ("contoso.onmicrosoft.com", {"client_id": "x"}, 900144),
        ("nowhere.example", {"grant_type": "client_credentials"}, 90002),
        ("bad tenant", {"grant_type": "client_credentials"}, 900023),
        ("common", {"grant_type": "password", "client_id": "x"}, 9001023),
    ):
        with pytest.raises(AadstsError) as caught:
            grants.token(platform, segment, form, None)
        assert caught.value.code == code, segment
