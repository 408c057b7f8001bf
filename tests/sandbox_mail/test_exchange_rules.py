"""Unit tests of Exchange Online's authorization rules: every denial reason, and what passes."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest

from mailgate.sandbox.directory.tenant import TenantFile, User
from mailgate.sandbox.entra.tokens import TokenSigner, access_token_claims
from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.sandbox.exchange.rules import (
    MailAccessDenied,
    check_access,
    check_send_as,
    required_permission,
)
from mailgate.sandbox.exchange.store import MailStore
from mailgate.sandbox.pki import ensure_pki

BASE = "https://127.0.0.1:4443"
EXO = "https://outlook.office365.com"
GRAPH = "https://graph.microsoft.com"
D = "contoso.example"
TID, APP, NOSP, WRONGSP = (str(uuid.uuid4()) for _ in range(4))
SP, APP_OBJ, NOSP_SP, WRONG_OBJ, WRONG_SP = (str(uuid.uuid4()) for _ in range(5))
OTHER_TID = str(uuid.uuid4())


def _app(name: str, client_id: str, object_id: str, sp: str) -> dict[str, Any]:
    return {
        "name": name,
        "client_id": client_id,
        "object_id": object_id,
        "service_principal_id": sp,
    }


DIRECTORY = TenantFile.model_validate(
    {
        "tenants": [
            {
                "id": TID,
                "name": "Contoso",
                "domains": [D],
                "apps": [
                    _app("daemon", APP, APP_OBJ, SP),
                    _app("nosp", NOSP, str(uuid.uuid4()), NOSP_SP),
                    _app("wrongsp", WRONGSP, WRONG_OBJ, WRONG_SP),
                ],
                "users": [
                    {
                        "upn": f"{n}@{D}",
                        "password": "x",
                        "display_name": n.title(),
                        "object_id": str(uuid.uuid4()),
                    }
                    for n in ("alice", "bob")
                ],
                "exchange": {
                    "service_principals": [
                        {"app_id": APP, "object_id": SP},
                        {"app_id": WRONGSP, "object_id": WRONG_OBJ},
                    ],
                    "application_access_policies": [
                        {
                            "app_id": APP,
                            "access_right": "RestrictAccess",
                            "mailboxes": [f"shared@{D}", f"noreply@{D}"],
                        },
                        {
                            "app_id": NOSP,
                            "access_right": "DenyAccess",
                            "mailboxes": [f"shared@{D}"],
                        },
                    ],
                },
                "mailboxes": [
                    {"address": f"alice@{D}", "owner": f"alice@{D}", "full_access": [SP]},
                    {"address": f"bob@{D}", "owner": f"bob@{D}", "send_as": [f"alice@{D}"]},
                    {"address": f"shared@{D}", "full_access": [SP, f"alice@{D}"], "send_as": [SP]},
                    {"address": f"noreply@{D}", "full_access": [SP], "smtp_auth_enabled": False},
                ],
            },
            {"id": OTHER_TID, "name": "Other", "domains": ["other.example"]},
        ]
    }
)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> TokenSigner:
    pki = ensure_pki(Path(tmp_path_factory.mktemp("pki")))
    return TokenSigner(pki.signing_key, pki.signing_cert)


@pytest.fixture(scope="module")
def mail(signer: TokenSigner) -> SandboxMail:
    return SandboxMail(MailStore(), DIRECTORY, signer.key.public_key(), BASE)


def app_token(
    signer: TokenSigner,
    roles: list[str],
    audience: str = EXO,
    client_id: str = APP,
    sp: str = SP,
    **changes: Any,
) -> str:
    claims = access_token_claims(
        issuer_base=BASE,
        tenant_id=TID,
        audience=audience,
        client_id=client_id,
        acr="1",
        now=int(time.time()),
        lifetime=600,
        app_object_id=sp,
        roles=roles,
    )
    claims.update(changes)
    return signer.sign(claims)


def user_token(signer: TokenSigner, upn: str, scp: list[str], audience: str = EXO) -> str:
    user = User(upn=upn, password="x", display_name="A B", object_id=str(uuid.uuid4()))
    claims = access_token_claims(
        issuer_base=BASE,
        tenant_id=TID,
        audience=audience,
        client_id=APP,
        acr="0",
        now=int(time.time()),
        lifetime=600,
        app_object_id=SP,
        user=user,
        scp=scp,
    )
    return signer.sign(claims)


def denied(mail: SandboxMail, token: str, protocol: Any, mailbox: str) -> str:
    with pytest.raises(MailAccessDenied) as info:
        check_access(mail, token, protocol, mailbox)
    assert token not in str(info.value)
    return info.value.reason


ROLES = ["IMAP.AccessAsApp", "POP.AccessAsApp", "SMTP.SendAsApp", "full_access_as_app"]


def test_app_only_imap_pop_smtp_allowed(mail: SandboxMail, signer: TokenSigner) -> None:
    token = app_token(signer, ROLES)
    for protocol in ("imap", "pop", "smtp"):
        access = check_access(mail, token, protocol, f"ALICE@{D}")
        assert access.app_only and access.user is None and access.mailbox == f"alice@{D}"
        assert access.principal == SP and access.tenant_id == TID and access.app_id == APP


def test_invalid_tokens(mail: SandboxMail, signer: TokenSigner) -> None:
    assert denied(mail, "not-a-jwt", "imap", f"alice@{D}") == "invalid_token"
    expired = app_token(signer, ROLES, exp=int(time.time()) - 10)
    assert denied(mail, expired, "imap", f"alice@{D}") == "invalid_token"
    future = app_token(signer, ROLES, nbf=int(time.time()) + 600)
    assert denied(mail, future, "imap", f"alice@{D}") == "invalid_token"
    other_issuer = app_token(signer, ROLES, iss=f"https://login.example/{TID}/")
    assert denied(mail, other_issuer, "imap", f"alice@{D}") == "invalid_token"
    unknown_app = app_token(signer, ROLES, appid=str(uuid.uuid4()))
    assert denied(mail, unknown_app, "imap", f"alice@{D}") == "invalid_token"
    claims = jwt.decode(app_token(signer, ROLES), options={"verify_signature": False})
    from cryptography.hazmat.primitives.asymmetric import rsa

    forged = jwt.encode(claims, rsa.generate_private_key(65537, 2048), algorithm="RS256")
    assert denied(mail, forged, "imap", f"alice@{D}") == "invalid_token"


def test_wrong_audience(mail: SandboxMail, signer: TokenSigner) -> None:
    graph = app_token(signer, ["Mail.ReadWrite"], audience=GRAPH)
    assert denied(mail, graph, "imap", f"alice@{D}") == "wrong_audience"
    exo = app_token(signer, ROLES)
    assert denied(mail, exo, "graph", f"shared@{D}") == "wrong_audience"
    for audience in ("https://outlook.office.com", "00000002-0000-0ff1-ce00-000000000000"):
        check_access(mail, app_token(signer, ROLES, audience=audience), "pop", f"alice@{D}")


def test_missing_permission(mail: SandboxMail, signer: TokenSigner) -> None:
    token = app_token(signer, ["POP.AccessAsApp"])
    assert denied(mail, token, "imap", f"alice@{D}") == "missing_permission"
    assert denied(mail, app_token(signer, []), "smtp", f"alice@{D}") == "missing_permission"
    delegated = user_token(signer, f"alice@{D}", ["IMAP.AccessAsUser.All"])
    assert denied(mail, delegated, "smtp", f"alice@{D}") == "missing_permission"


def test_service_principal_rules(mail: SandboxMail, signer: TokenSigner) -> None:
    nosp = app_token(signer, ROLES, client_id=NOSP, sp=NOSP_SP)
    assert denied(mail, nosp, "imap", f"alice@{D}") == "service_principal_not_registered"
    wrong = app_token(signer, ROLES, client_id=WRONGSP, sp=WRONG_SP)
    assert denied(mail, wrong, "smtp", f"alice@{D}") == "service_principal_not_registered"
    # EWS needs no New-ServicePrincipal: the role suffices (but the DenyAccess policy applies).
    assert check_access(mail, nosp, "ews", f"bob@{D}").app_only
    assert denied(mail, nosp, "ews", f"shared@{D}") == "application_access_policy"


def test_mailbox_not_found_and_permission(mail: SandboxMail, signer: TokenSigner) -> None:
    token = app_token(signer, ROLES)
    assert denied(mail, token, "imap", f"nobody@{D}") == "mailbox_not_found"
    assert denied(mail, token, "imap", "ivan@other.example") == "mailbox_not_found"
    assert denied(mail, token, "pop", f"bob@{D}") == "no_mailbox_permission"
    alice = user_token(signer, f"alice@{D}", ["IMAP.AccessAsUser.All", "SMTP.Send"])
    assert check_access(mail, alice, "imap", f"alice@{D}").user == f"alice@{D}"
    assert check_access(mail, alice, "imap", f"shared@{D}").mailbox == f"shared@{D}"
    assert denied(mail, alice, "imap", f"bob@{D}") == "no_mailbox_permission"
    bob = user_token(signer, f"bob@{D}", ["IMAP.AccessAsUser.All"])
    assert denied(mail, bob, "imap", f"shared@{D}") == "no_mailbox_permission"


def test_application_access_policy(mail: SandboxMail, signer: TokenSigner) -> None:
    ews = app_token(signer, ROLES)
    assert check_access(mail, ews, "ews", f"shared@{D}").mailbox == f"shared@{D}"
    assert denied(mail, ews, "ews", f"alice@{D}") == "application_access_policy"
    graph = app_token(signer, ["Mail.Read"], audience=GRAPH)
    assert denied(mail, graph, "graph", f"alice@{D}") == "application_access_policy"
    assert check_access(mail, graph, "graph", f"noreply@{D}").permissions == {"Mail.Read"}
    # Policies do not apply to IMAP/POP/SMTP.
    assert check_access(mail, ews, "imap", f"alice@{D}").mailbox == f"alice@{D}"


def test_graph_send_only_passes(mail: SandboxMail, signer: TokenSigner) -> None:
    token = user_token(signer, f"alice@{D}", ["Mail.Send"], audience=GRAPH)
    assert check_access(mail, token, "graph", f"alice@{D}").permissions == {"Mail.Send"}
    other = user_token(signer, f"alice@{D}", ["User.Read"], audience=GRAPH)
    assert denied(mail, other, "graph", f"alice@{D}") == "missing_permission"


def test_smtp_auth_disabled(mail: SandboxMail, signer: TokenSigner) -> None:
    token = app_token(signer, ROLES)
    assert denied(mail, token, "smtp", f"noreply@{D}") == "smtp_auth_disabled"
    assert check_access(mail, token, "imap", f"noreply@{D}").mailbox == f"noreply@{D}"


def test_ews_disabled(signer: TokenSigner) -> None:
    directory = DIRECTORY.model_copy(deep=True)
    directory.tenants[0].exchange.ews_enabled = False
    mail = SandboxMail(MailStore(), directory, signer.key.public_key(), BASE)
    token = app_token(signer, ROLES)
    assert denied(mail, token, "ews", f"shared@{D}") == "ews_disabled"
    assert check_access(mail, token, "imap", f"shared@{D}")


def test_send_as(mail: SandboxMail, signer: TokenSigner) -> None:
    app = check_access(mail, app_token(signer, ROLES), "smtp", f"shared@{D}")
    check_send_as(mail, app, f"Shared@{D}")
    alice_as_app = check_access(mail, app_token(signer, ROLES), "smtp", f"alice@{D}")
    check_send_as(mail, alice_as_app, f"shared@{D}")  # SendAs granted to the SP
    with pytest.raises(MailAccessDenied) as info:
        check_send_as(mail, alice_as_app, f"bob@{D}")
    assert info.value.reason == "send_as_denied"
    alice = user_token(signer, f"alice@{D}", ["SMTP.Send"])
    access = check_access(mail, alice, "smtp", f"alice@{D}")
    check_send_as(mail, access, f"bob@{D}")  # bob granted SendAs to alice
    with pytest.raises(MailAccessDenied):
        check_send_as(mail, access, "ceo@external.example")


def test_required_permission() -> None:
    assert required_permission("imap", True) == {"IMAP.AccessAsApp"}
    assert required_permission("imap", False) == {"IMAP.AccessAsUser.All"}
    assert required_permission("pop", True) == {"POP.AccessAsApp"}
    assert required_permission("pop", False) == {"POP.AccessAsUser.All"}
    assert required_permission("smtp", True) == {"SMTP.SendAsApp"}
    assert required_permission("smtp", False) == {"SMTP.Send"}
    assert required_permission("ews", True) == {"full_access_as_app"}
    assert required_permission("ews", False) == {"EWS.AccessAsUser.All"}
    assert required_permission("graph", True) == {"Mail.Read", "Mail.ReadWrite", "Mail.ReadBasic"}
