"""Fixtures: the sandbox identity platform, a Dovecot trusting its tokens, and mailboxes.

If the ``dovecot`` binary is missing the tests FAIL (not skip): CI installs it in .ci/run.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import msal
import pytest

from mailgate.interop.dovecot import MISSING, DovecotServer, start_dovecot
from mailgate.protocols.base import Security
from mailgate.protocols.imap.adapter import ImapMailbox
from mailgate.protocols.pop3 import Pop3Mailbox
from mailgate.testing import SandboxController

SCOPES = [
    "https://outlook.office365.com/IMAP.AccessAsUser.All",
    "https://outlook.office365.com/POP.AccessAsUser.All",
]


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxController]:
    with SandboxController(tmp_path_factory.mktemp("interop-idp")) as controller:
        yield controller


@pytest.fixture(scope="session")
def dovecot(idp: SandboxController) -> Iterator[DovecotServer]:
    try:
        server = start_dovecot(Path(idp.state_dir), idp.description)
    except RuntimeError as exc:
        if str(exc) == MISSING:
            pytest.fail(MISSING, pytrace=False)
        raise
    yield server
    server.stop()


@pytest.fixture(scope="session")
def alice_token(idp: SandboxController) -> str:
    """A delegated token for alice from the sandbox, through unmodified MSAL (ROPC)."""
    app = idp.app("mailgate-public")
    user = idp.user("alice")
    client = msal.PublicClientApplication(
        app["client_id"],
        authority=idp.authority(),
        instance_discovery=False,
        http_client=idp.requests_session(),
    )
    with warnings.catch_warnings():  # MSAL deprecates ROPC; it is the simplest test flow
        warnings.simplefilter("ignore", DeprecationWarning)
        result = client.acquire_token_by_username_password(user["upn"], user["password"], SCOPES)
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture(scope="session")
def alice(idp: SandboxController) -> str:
    return str(idp.user("alice")["upn"])


def token_source(token: str) -> Callable[[], Awaitable[str]]:
    async def source() -> str:
        return token

    return source


def signed_token(idp: SandboxController, claims: dict[str, Any], *, foreign: bool = False) -> str:
    """A token with the sandbox's signing key (or a foreign one) and the given claims."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mailgate.sandbox.entra.tokens import TokenSigner
    from mailgate.sandbox.pki import ensure_pki

    pki = ensure_pki(Path(idp.state_dir))
    signer = TokenSigner(pki.signing_key, pki.signing_cert)
    if foreign:
        signer = TokenSigner(rsa.generate_private_key(65537, 2048), pki.signing_cert)
    return signer.sign(claims)


def alice_claims(alice_token: str, **changes: Any) -> dict[str, Any]:
    import jwt

    claims: dict[str, Any] = jwt.decode(alice_token, options={"verify_signature": False})
    claims.update(changes)
    claims["uti"] = uuid.uuid4().hex
    return claims


def expired_claims(alice_token: str) -> dict[str, Any]:
    now = int(time.time())
    return alice_claims(alice_token, iat=now - 7200, nbf=now - 7200, exp=now - 3600)


MailboxFactory = Callable[..., Any]


@pytest.fixture
def imap(dovecot: DovecotServer, alice: str, alice_token: str, idp: SandboxController) -> Any:
    def make(
        token: str | None = None, *, tls: bool = True, address: str | None = None, **kw: Any
    ) -> ImapMailbox:
        return ImapMailbox(
            address or alice,
            "127.0.0.1",
            dovecot.ports["imaps" if tls else "imap"],
            token_source=token_source(token or alice_token),
            security=Security.TLS if tls else kw.pop("security", Security.PLAIN),
            ssl_context=idp.ssl_context(),
            **kw,
        )

    return make


@pytest.fixture
def pop3(dovecot: DovecotServer, alice: str, alice_token: str, idp: SandboxController) -> Any:
    def make(token: str | None = None, *, tls: bool = True, **kw: Any) -> Pop3Mailbox:
        return Pop3Mailbox(
            alice,
            "127.0.0.1",
            dovecot.ports["pop3s" if tls else "pop3"],
            token_source=token_source(token or alice_token),
            security=Security.TLS if tls else kw.pop("security", Security.PLAIN),
            ssl_context=idp.ssl_context(),
            **kw,
        )

    return make


def run(coro: Awaitable[Any]) -> Any:
    """Run a coroutine to completion (the project has no async pytest plugin)."""

    async def main() -> Any:
        return await coro

    return asyncio.run(main())
