"""MSAL ConfidentialClientApplication, unmodified, against the sandbox: app-only tokens."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mailgate.testing import SandboxController
from tests.sandbox.helpers import (
    EXCHANGE_DEFAULT,
    RecordingSession,
    aadsts_code,
    confidential_app,
    decode,
)

pytestmark = pytest.mark.sandbox


def _secret(sandbox: SandboxController, expired: bool = False) -> str:
    secrets = sandbox.app("mailgate-daemon")["secrets"]
    return str(next(s["value"] for s in secrets if s["expired"] is expired))


def test_secret_gives_app_token_with_roles(
    sandbox: SandboxController, contoso: dict[str, Any]
) -> None:
    app = sandbox.app("mailgate-daemon")
    result = confidential_app(sandbox, _secret(sandbox)).acquire_token_for_client(
        [EXCHANGE_DEFAULT]
    )
    assert result["token_type"] == "Bearer"
    claims = decode(sandbox, result["access_token"], "https://outlook.office365.com")
    assert claims["iss"] == f"{sandbox.base_url}/{contoso['id']}/"
    assert claims["tid"] == contoso["id"]
    assert claims["appid"] == claims["azp"] == app["client_id"]
    assert claims["appidacr"] == claims["azpacr"] == "1"
    assert claims["oid"] == claims["sub"] == app["service_principal_id"]
    assert claims["ver"] == "1.0"
    assert set(claims["roles"]) == {
        "full_access_as_app",
        "IMAP.AccessAsApp",
        "POP.AccessAsApp",
        "SMTP.SendAsApp",
    }
    assert "scp" not in claims
    assert claims["exp"] - claims["iat"] == result["expires_in"]


@pytest.mark.parametrize(
    ("scope", "audience", "roles"),
    [
        ("https://ps.outlook.com/.default", "https://ps.outlook.com", "IMAP.AccessAsApp"),
        ("https://outlook.office.com/.default", "https://outlook.office.com", "SMTP.SendAsApp"),
        ("https://graph.microsoft.com/.default", "https://graph.microsoft.com", "Mail.Send"),
    ],
)
def test_audience_follows_the_requested_uri(
    sandbox: SandboxController, scope: str, audience: str, roles: str
) -> None:
    result = confidential_app(sandbox, _secret(sandbox)).acquire_token_for_client([scope])
    claims = decode(sandbox, result["access_token"], audience)
    assert roles in claims["roles"]


def test_second_call_is_served_from_msal_cache(sandbox: SandboxController) -> None:
    app = confidential_app(sandbox, _secret(sandbox))
    sandbox.reset_stats()
    first = app.acquire_token_for_client([EXCHANGE_DEFAULT])
    second = app.acquire_token_for_client([EXCHANGE_DEFAULT])
    assert first["access_token"] == second["access_token"]
    assert sandbox.stats()["token"] == {"client_credentials": 1}


def test_certificate_pem_signs_rs256_with_x5t(sandbox: SandboxController) -> None:
    cert = sandbox.app("mailgate-daemon")["certificates"][0]
    session = RecordingSession()
    session.verify = sandbox.ca_file
    credential = {
        "private_key": Path(cert["key_file"]).read_text(),
        "thumbprint": cert["thumbprint_sha1"],
    }
    app = confidential_app(sandbox, credential, http_client=session)
    result = app.acquire_token_for_client([EXCHANGE_DEFAULT])
    assertion = next(p["client_assertion"] for p in session.posted if "client_assertion" in p)
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256" and "x5t" in header and "x5t#S256" not in header
    claims = decode(sandbox, result["access_token"], "https://outlook.office365.com")
    assert claims["appidacr"] == "2"


def test_certificate_pfx_signs_ps256_with_x5t_s256(sandbox: SandboxController) -> None:
    cert = sandbox.app("mailgate-daemon")["certificates"][0]
    session = RecordingSession()
    session.verify = sandbox.ca_file
    credential = {"private_key_pfx_path": cert["pfx_file"], "passphrase": cert["pfx_password"]}
    app = confidential_app(sandbox, credential, http_client=session)
    result = app.acquire_token_for_client([EXCHANGE_DEFAULT])
    assertion = next(p["client_assertion"] for p in session.posted if "client_assertion" in p)
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "PS256" and "x5t#S256" in header
    assert (
        decode(sandbox, result["access_token"], "https://outlook.office365.com")["appidacr"] == "2"
    )


def test_secret_in_http_basic_auth(sandbox: SandboxController, contoso: dict[str, Any]) -> None:
    app = sandbox.app("mailgate-daemon")
    response = httpx.post(
        contoso["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": EXCHANGE_DEFAULT},
        auth=(app["client_id"], _secret(sandbox)),
        verify=sandbox.ssl_context(),
    )
    assert response.status_code == 200, response.text
    assert response.json()["expires_in"] == 3599


def test_app_without_consent_gets_token_without_roles(sandbox: SandboxController) -> None:
    tenant = sandbox.tenant("fabrikam")
    app = sandbox.app("fabrikam-daemon")
    response = httpx.post(
        tenant["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
            "client_id": app["client_id"],
            "client_secret": app["secrets"][0]["value"],
        },
        verify=sandbox.ssl_context(),
    )
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["tid"] == tenant["id"]
    assert set(claims["roles"]) == {"Mail.ReadWrite", "Mail.Send"}


def _code(sandbox: SandboxController, credential: Any, scopes: list[str], **kw: Any) -> int:
    return aadsts_code(confidential_app(sandbox, credential, **kw).acquire_token_for_client(scopes))


def test_wrong_secret_is_7000215(sandbox: SandboxController) -> None:
    assert _code(sandbox, "not-the-secret", [EXCHANGE_DEFAULT]) == 7000215


def test_secret_id_instead_of_value_is_7000215_naming_the_mistake(
    sandbox: SandboxController,
) -> None:
    key_id = sandbox.app("mailgate-daemon")["secrets"][0]["key_id"]
    result = confidential_app(sandbox, key_id).acquire_token_for_client([EXCHANGE_DEFAULT])
    assert aadsts_code(result) == 7000215
    assert result["error"] == "invalid_client"
    assert "not the client secret ID" in result["error_description"]


def test_expired_secret_is_7000222(sandbox: SandboxController) -> None:
    assert _code(sandbox, _secret(sandbox, expired=True), [EXCHANGE_DEFAULT]) == 7000222


def test_unknown_client_id_is_700016(sandbox: SandboxController) -> None:
    import msal

    app = msal.ConfidentialClientApplication(
        str(uuid.uuid4()),
        client_credential="x",
        authority=sandbox.authority(),
        instance_discovery=False,
        verify=sandbox.ca_file,
    )
    result = app.acquire_token_for_client([EXCHANGE_DEFAULT])
    assert aadsts_code(result) == 700016
    assert result["error"] == "unauthorized_client"


@pytest.mark.parametrize(
    "scopes",
    [
        ["https://outlook.office365.com/IMAP.AccessAsApp"],
        ["https://outlook.office365.com/.default", "https://graph.microsoft.com/.default"],
    ],
)
def test_client_credentials_scope_must_be_one_default_is_70011(
    sandbox: SandboxController, scopes: list[str]
) -> None:
    result = confidential_app(sandbox, _secret(sandbox)).acquire_token_for_client(scopes)
    assert aadsts_code(result) == 70011
    assert result["error"] == "invalid_scope"


def test_unknown_resource_is_500011(sandbox: SandboxController) -> None:
    result = confidential_app(sandbox, _secret(sandbox)).acquire_token_for_client(
        ["https://outlook.example.com/.default"]
    )
    assert aadsts_code(result) == 500011
    assert result["error"] == "invalid_resource"


def _assertion(
    sandbox: SandboxController, key: Any, audience: str, now: int, x5t: str | None = None
) -> str:
    cert = sandbox.app("mailgate-daemon")["certificates"][0]
    client_id = sandbox.app("mailgate-daemon")["client_id"]
    thumb = x5t or base64.urlsafe_b64encode(bytes.fromhex(cert["thumbprint_sha1"])).decode().rstrip(
        "="
    )
    claims = {
        "aud": audience,
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": thumb})


def _post_assertion(sandbox: SandboxController, assertion: str) -> httpx.Response:
    tenant = sandbox.tenant("contoso")
    return httpx.post(
        tenant["token_endpoint"],
        data={
            "grant_type": "client_credentials",
            "client_id": sandbox.app("mailgate-daemon")["client_id"],
            "scope": EXCHANGE_DEFAULT,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        verify=sandbox.ssl_context(),
    )


def _daemon_key(sandbox: SandboxController) -> str:
    return Path(sandbox.app("mailgate-daemon")["certificates"][0]["key_file"]).read_text()


def test_hand_made_assertion_is_accepted(sandbox: SandboxController) -> None:
    endpoint = sandbox.tenant("contoso")["token_endpoint"]
    response = _post_assertion(
        sandbox, _assertion(sandbox, _daemon_key(sandbox), endpoint, int(time.time()))
    )
    assert response.status_code == 200, response.text


def test_assertion_outside_its_time_range_is_700024(sandbox: SandboxController) -> None:
    endpoint = sandbox.tenant("contoso")["token_endpoint"]
    stale = int(time.time()) - 3600
    response = _post_assertion(sandbox, _assertion(sandbox, _daemon_key(sandbox), endpoint, stale))
    assert response.status_code == 401
    assert response.json()["error_codes"] == [700024]


def test_assertion_with_bad_signature_is_700027(sandbox: SandboxController) -> None:
    endpoint = sandbox.tenant("contoso")["token_endpoint"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = _post_assertion(sandbox, _assertion(sandbox, other, endpoint, int(time.time())))
    assert response.status_code == 401
    body = response.json()
    assert body["error_codes"] == [700027] and body["error"] == "invalid_client"


def test_assertion_with_unknown_thumbprint_is_700027(sandbox: SandboxController) -> None:
    endpoint = sandbox.tenant("contoso")["token_endpoint"]
    assertion = _assertion(sandbox, _daemon_key(sandbox), endpoint, int(time.time()), x5t="AAAA")
    assert _post_assertion(sandbox, assertion).json()["error_codes"] == [700027]
