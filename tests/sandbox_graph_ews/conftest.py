"""A sandbox for the Graph/EWS tests, tokens from MSAL, and a way to seed test folders."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import httpx
import msal
import pytest

from mailgate.sandbox.exchange.store import StoredFolder, StoredMailbox
from mailgate.testing import SandboxController

GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
EXCHANGE_DEFAULT = "https://outlook.office365.com/.default"
DOMAIN = "contoso.onmicrosoft.com"
SHARED = f"servicedesk@{DOMAIN}"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("graph-ews")) as controller:
        yield controller


@pytest.fixture(autouse=True)
def _trust_verify_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests would let these override MSAL's and exchangelib's verify= (docs/sandbox.md).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


class Tokens:
    """Access tokens from the sandbox through unmodified MSAL."""

    def __init__(self, sandbox: SandboxController) -> None:
        self.sandbox = sandbox
        self._cache: dict[tuple[str, ...], str] = {}

    def app(self, scope: str = GRAPH_DEFAULT, name: str = "mailgate-daemon") -> str:
        key = ("app", scope, name)
        if key not in self._cache:
            app = self.sandbox.app(name)
            secret = next(s for s in app["secrets"] if not s["expired"])["value"]
            client = msal.ConfidentialClientApplication(
                app["client_id"],
                client_credential=secret,
                authority=self.sandbox.authority(),
                instance_discovery=False,
                http_client=self.sandbox.requests_session(),
            )
            result = client.acquire_token_for_client([scope])
            assert "access_token" in result, result
            self._cache[key] = str(result["access_token"])
        return self._cache[key]

    def user(self, scopes: list[str], user: str = "alice") -> str:
        key = ("user", user, *scopes)
        if key not in self._cache:
            app = self.sandbox.app("mailgate-public")
            client = msal.PublicClientApplication(
                app["client_id"],
                authority=self.sandbox.authority(),
                instance_discovery=False,
                http_client=self.sandbox.requests_session(),
            )
            known = self.sandbox.user(user)
            result = client.acquire_token_by_username_password(
                known["upn"], known["password"], scopes=scopes
            )
            assert "access_token" in result, result
            self._cache[key] = str(result["access_token"])
        return self._cache[key]


@pytest.fixture(scope="session")
def tokens(sandbox: SandboxController) -> Tokens:
    return Tokens(sandbox)


def mailbox(sandbox: SandboxController, address: str = SHARED) -> StoredMailbox:
    """The store's mailbox, for seeding and for checking what a client did."""
    assert sandbox.server is not None and sandbox.server.mail is not None
    return sandbox.server.mail.store.mailbox(address)


def make_message(subject: str, sender: str = "someone@external.example", **extra: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SHARED
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    msg["Message-ID"] = f"<{uuid.uuid4()}@external.example>"
    for name, value in extra.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(f"Body of {subject}\n")
    return msg.as_bytes()


def seed_folder(
    sandbox: SandboxController,
    count: int,
    address: str = SHARED,
    parent: str | None = None,
    **kwargs: Any,
) -> StoredFolder:
    """A new folder (under ``parent``) with ``count`` messages received one minute apart
    (oldest first); even-numbered ones are read."""
    box = mailbox(sandbox, address)
    folder = box.create_folder(f"t-{uuid.uuid4().hex[:10]}", parent)
    start = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
    for index in range(count):
        box.append(
            folder.folder_id,
            make_message(f"Message {index:02d}", **kwargs),
            {"\\Seen"} if index % 2 == 0 else set(),
            start + timedelta(minutes=index),
        )
    return folder


@pytest.fixture
def graph(sandbox: SandboxController, tokens: Tokens) -> Iterator[httpx.Client]:
    """httpx against Graph as mailgate-daemon (app-only: Mail.ReadWrite, Mail.Send)."""
    with httpx.Client(
        base_url=sandbox.description["mail"]["graph_url"],
        verify=sandbox.ssl_context(),
        headers={"Authorization": f"Bearer {tokens.app()}"},
        timeout=10,
    ) as client:
        yield client
