"""Every flow through mailgate's TokenProvider against the sandbox, cache and refresh included."""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
import jwt
import pytest

from mailgate.demo.run import SandboxInteraction
from mailgate.errors import InteractionRequiredError, SecretExpiringWarning, UserCredentialError
from mailgate.secret import Secret
from mailgate.testing import SandboxController
from mailgate.vault import CredentialKind, DelegatedFlow, SecretField, Vault, load_certificate
from tests.identity.conftest import add_credential, daemon_secret, provider_for

EXO = "https://outlook.office365.com"


def _verify(idp: SandboxController, token: str) -> dict[str, object]:
    tenant = idp.tenant("contoso")
    with httpx.Client(verify=idp.ssl_context()) as client:
        config = client.get(f"{tenant['authority']}/v2.0/.well-known/openid-configuration").json()
        keys = client.get(config["jwks_uri"]).json()["keys"]
    header = jwt.get_unverified_header(token)
    key = next(k for k in keys if k["kid"] == header["kid"])
    return jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=EXO,
        options={"verify_iss": False},
    )


def test_client_secret_token_is_a_signed_app_token(vault: Vault, idp: SandboxController) -> None:
    add_credential(
        vault,
        idp,
        "d",
        CredentialKind.CLIENT_SECRET,
        "mailgate-daemon",
        {SecretField.CLIENT_SECRET: Secret(daemon_secret(idp)["value"])},
    )
    token = provider_for(vault, idp).acquire("d")
    claims = _verify(idp, token.value.reveal())
    assert claims["appid"] == idp.app("mailgate-daemon")["client_id"]
    assert "IMAP.AccessAsApp" in claims["roles"] and "scp" not in claims
    assert token.value.reveal() not in repr(token)


@pytest.mark.parametrize("source", ["pfx", "pem"])
def test_certificate_credential(vault: Vault, idp: SandboxController, source: str) -> None:
    cert = idp.app("mailgate-daemon")["certificates"][0]
    if source == "pfx":
        loaded = load_certificate(Path(cert["pfx_file"]).read_bytes(), Secret(cert["pfx_password"]))
    else:
        data = Path(cert["key_file"]).read_bytes() + Path(cert["cert_file"]).read_bytes()
        loaded = load_certificate(data)
    assert loaded.info.thumbprint_sha1 == cert["thumbprint_sha1"].upper()
    add_credential(
        vault,
        idp,
        "c",
        CredentialKind.CERTIFICATE,
        "mailgate-daemon",
        {SecretField.PRIVATE_KEY: loaded.private_key_pem},
        certificate=loaded.info,
    )
    token = provider_for(vault, idp).acquire("c")
    assert token.claims["appidacr"] == "2"


def test_password_flow_then_cache_then_restart(vault: Vault, idp: SandboxController) -> None:
    alice = idp.user("alice")
    add_credential(
        vault,
        idp,
        "a",
        CredentialKind.PASSWORD,
        "mailgate-public",
        {SecretField.PASSWORD: Secret(alice["password"])},
        username=alice["upn"],
    )
    idp.reset_stats()
    first = provider_for(vault, idp).acquire("a")
    second = provider_for(vault, idp).acquire("a")  # a new provider reads the persisted cache
    assert not first.from_cache and second.from_cache
    assert first.claims["upn"] == alice["upn"]
    assert idp.stats()["token"] == {"password": 1}


def test_device_code_sign_in_keeps_refresh_token(vault: Vault, idp: SandboxController) -> None:
    add_credential(
        vault,
        idp,
        "dev",
        CredentialKind.DELEGATED,
        "mailgate-public",
        flow=DelegatedFlow.DEVICE_CODE,
        username=idp.user("alice")["upn"],
    )
    shown: list[str] = []
    provider = provider_for(vault, idp, SandboxInteraction(idp, "alice", shown.append))
    token = provider.sign_in("dev")
    assert token.claims["upn"] == idp.user("alice")["upn"]
    assert any("devicelogin" in line for line in shown)
    idp.reset_stats()
    # Unattended: no interaction available, the stored refresh token must do.
    refreshed = provider_for(vault, idp).acquire("dev", force_refresh=True)
    assert idp.stats()["token"] == {"refresh_token": 1}
    assert refreshed.value != token.value


def test_auth_code_through_loopback_redirect(vault: Vault, idp: SandboxController) -> None:
    add_credential(
        vault,
        idp,
        "web",
        CredentialKind.DELEGATED,
        "mailgate-public",
        flow=DelegatedFlow.AUTH_CODE,
        username=idp.user("alice")["upn"],
    )
    provider = provider_for(vault, idp, SandboxInteraction(idp, "alice", lambda _t: None))
    token = provider.acquire("web")
    assert token.delegated_scopes == ("IMAP.AccessAsUser.All", "SMTP.Send")
    assert provider_for(vault, idp).acquire("web").from_cache


def test_delegated_without_sign_in_asks_for_login(vault: Vault, idp: SandboxController) -> None:
    add_credential(
        vault,
        idp,
        "new",
        CredentialKind.DELEGATED,
        "mailgate-public",
        flow=DelegatedFlow.DEVICE_CODE,
    )
    with pytest.raises(InteractionRequiredError, match="mailgate creds login new"):
        provider_for(vault, idp).acquire("new")


def test_revoked_sessions_give_50173(vault: Vault, idp: SandboxController) -> None:
    add_credential(
        vault,
        idp,
        "dev2",
        CredentialKind.DELEGATED,
        "mailgate-public",
        flow=DelegatedFlow.DEVICE_CODE,
        username=idp.user("alice")["upn"],
    )
    provider_for(vault, idp, SandboxInteraction(idp, "alice", lambda _t: None)).sign_in("dev2")
    idp.revoke_sessions(idp.user("alice")["upn"])
    with pytest.raises(InteractionRequiredError) as info:
        provider_for(vault, idp).acquire("dev2", force_refresh=True)
    assert info.value.code == 50173


def test_wrong_password_is_typed(vault: Vault, idp: SandboxController) -> None:
    add_credential(
        vault,
        idp,
        "bad",
        CredentialKind.PASSWORD,
        "mailgate-public",
        {SecretField.PASSWORD: Secret("Typo-Pa55word-42")},
        username=idp.user("alice")["upn"],
    )
    with pytest.raises(UserCredentialError) as info:
        provider_for(vault, idp).acquire("bad")
    assert info.value.code == 50126
    assert "Typo-Pa55word-42" not in str(info.value) + repr(info.value.args)


def test_python_api_warns_when_the_secret_in_use_expires_soon(
    vault: Vault, idp: SandboxController
) -> None:
    secret = {SecretField.CLIENT_SECRET: Secret(daemon_secret(idp)["value"])}
    daemon = "mailgate-daemon"
    add_credential(
        vault, idp, "soon", CredentialKind.CLIENT_SECRET, daemon, secret, secret_expires="5d"
    )
    add_credential(
        vault, idp, "later", CredentialKind.CLIENT_SECRET, daemon, secret, secret_expires="200d"
    )
    provider = provider_for(vault, idp)
    with pytest.warns(SecretExpiringWarning, match=r"'soon' expires in 4 days .*rotate-secret"):
        provider.acquire("soon")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        provider.acquire("later")  # nothing to say: no warning


@pytest.mark.parametrize("kind", ["password", "client-secret"])
def test_cached_token_without_msal_is_msals(
    vault: Vault, idp: SandboxController, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The shortcut (identity/cached_tokens.py) must hand out exactly the token MSAL would take
    # from the same cache, and must not be taken when MSAL would do something else.
    if kind == "password":
        alice = idp.user("alice")
        add_credential(
            vault,
            idp,
            "k",
            CredentialKind.PASSWORD,
            "mailgate-public",
            {SecretField.PASSWORD: Secret(alice["password"])},
            username=alice["upn"],
        )
    else:
        add_credential(
            vault,
            idp,
            "k",
            CredentialKind.CLIENT_SECRET,
            "mailgate-daemon",
            {SecretField.CLIENT_SECRET: Secret(daemon_secret(idp)["value"])},
        )
    provider = provider_for(vault, idp)
    first = provider.acquire("k")
    assert not first.from_cache
    from_msal = provider.acquire("k")  # MSAL's answer (the shortcut is off below)...
    idp.reset_stats()
    shortcut = provider_for(vault, idp).acquire("k")  # ...and the shortcut's
    assert shortcut.from_cache and shortcut.value.reveal() == first.value.reveal()
    assert not idp.stats().get("token")  # nothing was asked of the identity platform
    monkeypatch.setattr(provider, "_cached", lambda *_a: None)
    assert provider.acquire("k").value.reveal() == from_msal.value.reveal()
    # force_refresh and other scopes are MSAL's to answer: a new token.
    refreshed = provider_for(vault, idp).acquire("k", force_refresh=True)
    assert not refreshed.from_cache and refreshed.value.reveal() != first.value.reveal()
