"""A sandbox with mail for the Graph/EWS integration tests, and token sources for it.

Tokens come from MSAL exactly as a user's program would get them (client credentials for the
daemon, ROPC for alice through the public client), wrapped as async token sources.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import msal
import pytest

from mailgate.protocols.base import Mailbox, TokenSource
from mailgate.protocols.ews.adapter import EwsMailbox
from mailgate.protocols.graph.adapter import GraphMailbox
from mailgate.testing import SandboxController

GRAPH_APP = ["https://graph.microsoft.com/.default"]
EXCHANGE_APP = ["https://outlook.office365.com/.default"]
GRAPH_USER = ["https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/Mail.Send"]
EWS_USER = ["https://outlook.office365.com/EWS.AccessAsUser.All"]


@pytest.fixture(scope="session")
def mail_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("mailsandbox")) as controller:
        yield controller


@pytest.fixture(autouse=True)
def _trust_verify_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests would let these override MSAL's verify= (see tests/sandbox/conftest.py).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


class Tokens:
    """MSAL applications for the demo daemon and alice; MSAL's cache serves repeats."""

    def __init__(self, sandbox: SandboxController) -> None:
        self.sandbox = sandbox
        self._apps: dict[str, Any] = {}

    def _app(self, who: str) -> Any:
        if who not in self._apps:
            session = self.sandbox.requests_session()
            if who == "app":
                daemon = self.sandbox.app("mailgate-daemon")
                secret = next(s for s in daemon["secrets"] if not s["expired"])
                self._apps[who] = msal.ConfidentialClientApplication(
                    daemon["client_id"],
                    client_credential=secret["value"],
                    authority=self.sandbox.authority(),
                    instance_discovery=False,
                    http_client=session,
                )
            else:
                self._apps[who] = msal.PublicClientApplication(
                    self.sandbox.app("mailgate-public")["client_id"],
                    authority=self.sandbox.authority(),
                    instance_discovery=False,
                    http_client=session,
                )
        return self._apps[who]

    def get(self, who: str, scopes: list[str]) -> str:
        app = self._app(who)
        if who == "app":
            result = app.acquire_token_for_client(scopes)
        else:
            user = self.sandbox.user(who)
            accounts = app.get_accounts(username=user["upn"])
            result = app.acquire_token_silent(scopes, account=accounts[0]) if accounts else None
            if not result:
                result = app.acquire_token_by_username_password(
                    user["upn"], user["password"], scopes
                )
        assert "access_token" in result, result
        return str(result["access_token"])

    def source(self, who: str, scopes: list[str]) -> TokenSource:
        async def token() -> str:
            return await asyncio.to_thread(self.get, who, scopes)

        return token


@pytest.fixture(scope="session")
def tokens(mail_sandbox: SandboxController) -> Tokens:
    return Tokens(mail_sandbox)


def address(sandbox: SandboxController, local: str) -> str:
    return f"{local}@{sandbox.tenant('contoso')['domains'][0]}"


MailboxFactory = Callable[[str, str, str], Mailbox]


@pytest.fixture(scope="session")
def open_mailbox(mail_sandbox: SandboxController, tokens: Tokens) -> MailboxFactory:
    """``open_mailbox(protocol, who, mailbox)``: an unconnected adapter, e.g.
    ``("ews", "app", "approvals")`` or ``("graph", "alice", "alice")``."""
    mail = mail_sandbox.description["mail"]

    def make(protocol: str, who: str, local: str) -> Mailbox:
        target = address(mail_sandbox, local)
        if protocol == "graph":
            scopes = GRAPH_APP if who == "app" else GRAPH_USER
            return GraphMailbox(
                target,
                mail["graph_url"],
                token_source=tokens.source(who, scopes),
                ssl_context=mail_sandbox.ssl_context(),
            )
        scopes = EXCHANGE_APP if who == "app" else EWS_USER
        return EwsMailbox(
            target,
            mail["ews_url"],
            token_source=tokens.source(who, scopes),
            app_only=who == "app",
            ssl_context=mail_sandbox.ssl_context(),
        )

    return make
