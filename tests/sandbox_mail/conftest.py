"""One sandbox (identity platform + mail servers) for the mail tests, and token helpers."""

from __future__ import annotations

import base64
import imaplib
import ssl
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import msal
import pytest

from mailgate.protocols.sasl import xoauth2_initial_response
from mailgate.sandbox.exchange.access import SandboxMail
from mailgate.testing import SandboxController

EXCHANGE = "https://outlook.office365.com/.default"
GRAPH = "https://graph.microsoft.com/.default"
DOMAIN = "contoso.onmicrosoft.com"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("mailsandbox")) as controller:
        yield controller


@pytest.fixture(autouse=True)
def _trust_verify_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture(scope="session")
def mail(sandbox: SandboxController) -> SandboxMail:
    assert sandbox.server is not None and sandbox.server.mail is not None
    return sandbox.server.mail


@pytest.fixture(scope="session")
def app_token(sandbox: SandboxController) -> Callable[..., str]:
    """``app_token(app="mailgate-daemon", scope=EXCHANGE)``: a client-credentials token."""
    cache: dict[tuple[str, str], str] = {}

    def get(app: str = "mailgate-daemon", scope: str = EXCHANGE) -> str:
        if (app, scope) not in cache:
            info = sandbox.app(app)
            secret = next(s["value"] for s in info["secrets"] if not s["expired"])
            client = msal.ConfidentialClientApplication(
                info["client_id"],
                client_credential=secret,
                authority=sandbox.authority(),
                instance_discovery=False,
                http_client=sandbox.requests_session(),
            )
            result = client.acquire_token_for_client([scope])
            assert "access_token" in result, result
            cache[(app, scope)] = result["access_token"]
        return cache[(app, scope)]

    return get


@pytest.fixture(scope="session")
def user_token(sandbox: SandboxController) -> Callable[..., str]:
    """``user_token("alice", scopes)``: a delegated token by ROPC with mailgate-public."""

    def get(user: str, scopes: list[str]) -> str:
        info = sandbox.user(user)
        client = msal.PublicClientApplication(
            sandbox.app("mailgate-public")["client_id"],
            authority=sandbox.authority(),
            instance_discovery=False,
            http_client=sandbox.requests_session(),
        )
        with warnings.catch_warnings():
            # MSAL deprecates ROPC; the sandbox still has to serve clients that use it.
            warnings.simplefilter("ignore", DeprecationWarning)
            result = client.acquire_token_by_username_password(
                info["upn"], info["password"], scopes=scopes
            )
        assert "access_token" in result, result
        return str(result["access_token"])

    return get


def client_tls(sandbox: SandboxController) -> ssl.SSLContext:
    return sandbox.ssl_context()


def imap_connect(sandbox: SandboxController) -> imaplib.IMAP4_SSL:
    port = sandbox.description["mail"]["imap"]["port"]
    return imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_tls(sandbox), timeout=10)


def imap_login(sandbox: SandboxController, user: str, token: str) -> imaplib.IMAP4_SSL:
    client = imap_connect(sandbox)
    client.authenticate("XOAUTH2", lambda _: xoauth2_initial_response(user, token))
    return client


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def address(name: str) -> str:
    return f"{name}@{DOMAIN}"


__all__ = ["EXCHANGE", "GRAPH", "address", "b64", "imap_connect", "imap_login"]


def describe_mail(sandbox: SandboxController) -> dict[str, Any]:
    return dict(sandbox.description["mail"])
