"""The sandbox's Graph directory endpoints driven by plain httpx, and what the identity platform
and Exchange make of the result: roles from app role assignments, removed and expired secrets,
consent, certificates, the PowerShell hook, persistence across restarts."""

from __future__ import annotations

import base64
import imaplib
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailgate.errors import ConfigurationError
from mailgate.identity import decode_claims
from mailgate.protocols.sasl import xoauth2_initial_response
from mailgate.testing import SandboxController
from tests.sandbox_directory.conftest import (
    EXCHANGE_APP_ID,
    GRAPH_APP_ID,
    Graph,
    client_credentials,
    device_code_token,
)

DOMAIN = "contoso.onmicrosoft.com"
FULL_ACCESS_AS_APP = "dc890d15-9560-4a4c-9b7f-a736ec74ec40"


@pytest.fixture(scope="module")
def admin(sandbox: SandboxController) -> str:
    return device_code_token(sandbox)


def _role(resource: dict[str, Any], name: str) -> str:
    return str(next(r["id"] for r in resource["appRoles"] if r["value"] == name))


def _new_app(graph: Graph, name: str, **extra: Any) -> dict[str, Any]:
    app = graph.ok("POST", "/applications", {"displayName": name, **extra})
    sp = graph.ok("POST", "/servicePrincipals", {"appId": app["appId"]})
    return {**app, "sp": sp}


def _imap_login(sandbox: SandboxController, user: str, token: str) -> str:
    port = sandbox.description["mail"]["imap"]["port"]
    context = ssl.create_default_context(cafile=sandbox.ca_file)
    with imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context, timeout=10) as client:
        try:
            client.authenticate("XOAUTH2", lambda _: xoauth2_initial_response(user, token))
        except imaplib.IMAP4.error as exc:
            return f"NO {exc}"
        typ, _ = client.select("INBOX")
        return str(typ)


def test_resource_service_principals_carry_named_permission_ids(
    sandbox: SandboxController, admin: str
) -> None:
    with Graph(sandbox, admin) as graph:
        exchange = graph.resource(EXCHANGE_APP_ID)
        graph_sp = graph.resource(GRAPH_APP_ID)
    assert exchange["displayName"] == "Office 365 Exchange Online"
    assert _role(exchange, "full_access_as_app") == FULL_ACCESS_AS_APP
    scopes = {s["value"]: s["id"] for s in exchange["oauth2PermissionScopes"]}
    assert scopes["EWS.AccessAsUser.All"] == "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5"
    assert {"Mail.ReadWrite", "Mail.Send"} <= {r["value"] for r in graph_sp["appRoles"]}
    assert exchange["id"] != graph_sp["id"]


def test_app_only_setup_then_exchange_needs_the_powershell_steps(
    sandbox: SandboxController, admin: str
) -> None:
    with Graph(sandbox, admin) as graph:
        exchange = graph.resource(EXCHANGE_APP_ID)
        imap_role = _role(exchange, "IMAP.AccessAsApp")
        app = _new_app(
            graph,
            "imap-reader",
            requiredResourceAccess=[
                {
                    "resourceAppId": EXCHANGE_APP_ID,
                    "resourceAccess": [{"id": imap_role, "type": "Role"}],
                }
            ],
        )
        end = (datetime.now(UTC) + timedelta(days=180)).replace(microsecond=0)
        password = graph.ok(
            "POST",
            f"/applications/{app['id']}/addPassword",
            {"passwordCredential": {"displayName": "t", "endDateTime": end.isoformat()}},
        )
        assert password["endDateTime"] == end.strftime("%Y-%m-%dT%H:%M:%SZ")
        shown = graph.ok("GET", f"/applications/{app['id']}")
        assert [p["secretText"] for p in shown["passwordCredentials"]] == [None]
        assert shown["passwordCredentials"][0]["keyId"] == password["keyId"]
        assert shown["requiredResourceAccess"][0]["resourceAccess"][0]["id"] == imap_role

        before = client_credentials(sandbox, app["appId"], password["secretText"])
        assert "roles" not in _claims(before), "no consent yet: no roles"
        graph.ok(
            "POST",
            f"/servicePrincipals/{app['sp']['id']}/appRoleAssignments",
            {"principalId": app["sp"]["id"], "resourceId": exchange["id"], "appRoleId": imap_role},
        )
    token = client_credentials(sandbox, app["appId"], password["secretText"])
    assert _claims(token)["roles"] == ["IMAP.AccessAsApp"]
    assert _claims(token)["oid"] == app["sp"]["id"]

    mailbox = f"servicedesk@{DOMAIN}"
    assert _imap_login(sandbox, mailbox, token["access_token"]).startswith("NO")
    sandbox.exchange_powershell(
        f"New-ServicePrincipal -AppId {app['appId']} -ObjectId {app['sp']['id']} -DisplayName 'x'\n"
        f"Add-MailboxPermission -Identity '{mailbox}' -User {app['sp']['id']} "
        "-AccessRights FullAccess"
    )
    assert _imap_login(sandbox, mailbox, token["access_token"]) == "OK"


def _claims(answer: dict[str, Any]) -> dict[str, Any]:
    assert "access_token" in answer, answer
    return decode_claims(answer["access_token"])


def test_removed_and_expired_secrets_are_refused(sandbox: SandboxController, admin: str) -> None:
    with Graph(sandbox, admin) as graph:
        app = _new_app(graph, "rotating")
        first = graph.ok("POST", f"/applications/{app['id']}/addPassword", {})
        past = datetime.now(UTC) - timedelta(days=1)
        expired = graph.ok(
            "POST",
            f"/applications/{app['id']}/addPassword",
            {
                "passwordCredential": {
                    "startDateTime": (past - timedelta(days=10)).isoformat(),
                    "endDateTime": past.isoformat(),
                }
            },
        )
        assert "access_token" in client_credentials(sandbox, app["appId"], first["secretText"])
        graph.ok("POST", f"/applications/{app['id']}/removePassword", {"keyId": first["keyId"]})
        again = graph.call(
            "POST", f"/applications/{app['id']}/removePassword", {"keyId": first["keyId"]}
        )
        assert again.status_code == 400
    removed = client_credentials(sandbox, app["appId"], first["secretText"])
    assert removed["error_codes"] == [7000215], removed
    old = client_credentials(sandbox, app["appId"], expired["secretText"])
    assert old["error_codes"] == [7000222], old


def test_app_without_service_principal_gets_no_token(
    sandbox: SandboxController, admin: str
) -> None:
    with Graph(sandbox, admin) as graph:
        app = graph.ok("POST", "/applications", {"displayName": "no-sp"})
        secret = graph.ok("POST", f"/applications/{app['id']}/addPassword", {})
        assert graph.call("POST", "/servicePrincipals", {"appId": "nope"}).status_code == 400
    answer = client_credentials(sandbox, app["appId"], secret["secretText"])
    assert answer["error_codes"] == [7000229], answer


def test_delegated_consent_through_a_permission_grant(
    sandbox: SandboxController, admin: str
) -> None:
    scope = "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
    with Graph(sandbox, admin) as graph:
        exchange = graph.resource(EXCHANGE_APP_ID)
        app = _new_app(graph, "desk", isFallbackPublicClient=True)
        alice = sandbox.user("alice")
        with sandbox.http() as client:
            form = {
                "grant_type": "password",
                "client_id": app["appId"],
                "username": alice["upn"],
                "password": alice["password"],
                "scope": scope,
            }
            refused = client.post(sandbox.tenant()["token_endpoint"], data=form).json()
            assert refused["error_codes"] == [65001], refused
            graph.ok(
                "POST",
                "/oauth2PermissionGrants",
                {
                    "clientId": app["sp"]["id"],
                    "consentType": "AllPrincipals",
                    "resourceId": exchange["id"],
                    "scope": "IMAP.AccessAsUser.All",
                },
            )
            granted = client.post(sandbox.tenant()["token_endpoint"], data=form).json()
    assert _claims(granted)["scp"] == "IMAP.AccessAsUser.All"
    assert "refresh_token" in granted


def _certificate() -> tuple[bytes, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailgate-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, cert


def test_uploaded_certificate_signs_in_through_msal(sandbox: SandboxController, admin: str) -> None:
    key_pem, cert = _certificate()
    der = cert.public_bytes(serialization.Encoding.DER)
    with Graph(sandbox, admin) as graph:
        app = _new_app(graph, "cert-app")
        upload = {
            "keyCredentials": [
                {
                    "type": "AsymmetricX509Cert",
                    "usage": "Verify",
                    "key": base64.b64encode(der).decode(),
                    "displayName": "CN=mailgate-test",
                }
            ]
        }
        assert graph.call("PATCH", f"/applications/{app['id']}", upload).status_code == 204
        (shown,) = graph.ok("GET", f"/applications/{app['id']}")["keyCredentials"]
        bad = {"keyCredentials": [{"type": "AsymmetricX509Cert", "usage": "Verify", "key": "x"}]}
        assert graph.call("PATCH", f"/applications/{app['id']}", bad).status_code == 400
    thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - x5t is SHA-1
    assert shown["customKeyIdentifier"] == thumbprint
    cca = msal.ConfidentialClientApplication(
        app["appId"],
        client_credential={"private_key": key_pem.decode(), "thumbprint": thumbprint},
        authority=sandbox.authority(),
        instance_discovery=False,
        http_client=sandbox.requests_session(),
    )
    result = cca.acquire_token_for_client(["https://outlook.office365.com/.default"])
    assert "access_token" in result, result


def test_refusals_have_graph_shape(sandbox: SandboxController, admin: str) -> None:
    with Graph(sandbox, admin) as graph:
        admins = _new_app(graph, "admins-app")
        exchange = graph.resource(EXCHANGE_APP_ID)
    alice = device_code_token(sandbox, "alice")
    with Graph(sandbox, alice) as graph:
        own = _new_app(graph, "alices-app")  # members may register apps and own them
        assert graph.call("POST", f"/applications/{own['id']}/addPassword", {}).status_code == 200
        others = graph.call("POST", f"/applications/{admins['id']}/addPassword", {})
        consent = graph.call(
            "POST",
            f"/servicePrincipals/{own['sp']['id']}/appRoleAssignments",
            {
                "principalId": own["sp"]["id"],
                "resourceId": exchange["id"],
                "appRoleId": FULL_ACCESS_AS_APP,
            },
        )
    for denied in (others, consent):
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
        assert denied.json()["error"]["message"] == (
            "Insufficient privileges to complete the operation."
        )
    with Graph(sandbox, "not-a-token") as graph:
        assert graph.call("GET", "/applications").status_code == 401
    # An Exchange token is not a Graph token.
    mail_token = device_code_token(
        sandbox,
        "admin",
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        client_id=sandbox.app("mailgate-public")["client_id"],
    )
    with Graph(sandbox, mail_token) as graph:
        assert graph.call("GET", "/applications").json()["error"]["code"] == (
            "InvalidAuthenticationToken"
        )
    with Graph(sandbox, admin) as graph:
        assert (
            graph.call(
                "GET", "/applications/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12
            ).status_code
            == 404
        )
        assert (
            graph.call("POST", "/applications", {"displayName": "x", "owners": []}).status_code
            == 400
        )
        assert (
            graph.call(
                "GET", "/applications", **{"$filter": "startswith(displayName,'a')"}
            ).status_code
            == 400
        )


def test_powershell_hook_names_the_failing_line(sandbox: SandboxController) -> None:
    with pytest.raises(ConfigurationError, match="line 2"):
        sandbox.exchange_powershell(
            "Connect-ExchangeOnline\nNew-ManagementScope -Name 'x' -RecipientRestrictionFilter 'y'"
        )
    with pytest.raises(ConfigurationError, match="no service principal"):
        sandbox.exchange_powershell(
            f"Add-MailboxPermission -Identity 'bob@{DOMAIN}' "
            "-User 11111111-2222-3333-4444-555555555555 -AccessRights FullAccess"
        )


def test_changes_survive_a_restart(tmp_path: Path) -> None:
    with SandboxController(tmp_path) as first:
        with Graph(first, device_code_token(first)) as graph:
            app = _new_app(graph, "kept")
            secret = graph.ok("POST", f"/applications/{app['id']}/addPassword", {})
        first.exchange_powershell(
            f"New-ServicePrincipal -AppId {app['appId']} -ObjectId {app['sp']['id']}"
        )
        assert first.app("kept")["client_id"] == app["appId"], "sandbox.json is refreshed"
    assert (tmp_path / "directory.json").stat().st_mode & 0o777 == 0o600
    with SandboxController(tmp_path) as second:
        answer = client_credentials(second, app["appId"], secret["secretText"])
        assert "access_token" in answer, answer
        with pytest.raises(ConfigurationError, match="already exists"):
            second.exchange_powershell(
                f"New-ServicePrincipal -AppId {app['appId']} -ObjectId {app['sp']['id']}"
            )


def test_powershell_lines_parse_like_powershell() -> None:
    from mailgate.sandbox.exchange.powershell import parse_line

    cmdlet, params = parse_line(
        "Add-RecipientPermission -Identity 'o''brien@contoso.com' -Trustee abc "
        "-AccessRights SendAs -Confirm:$false"
    )
    assert cmdlet == "Add-RecipientPermission"
    assert params == {
        "identity": "o'brien@contoso.com",
        "trustee": "abc",
        "accessrights": "SendAs",
        "confirm": "$false",
    }
    with pytest.raises(ValueError, match="unterminated"):
        parse_line("New-ServicePrincipal -AppId 'x")
    with pytest.raises(ValueError, match="double-quoted"):
        parse_line('Set-CASMailbox -Identity "a@b.c"')
