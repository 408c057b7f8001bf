"""Pop3Mailbox against a real Dovecot that validates sandbox-issued JWTs."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest

from mailgate.protocols.base import (
    MailAuthenticationError,
    MessageRef,
    Operation,
    SearchCriteria,
    Security,
    UnsupportedOperation,
)
from mailgate.testing import SandboxController
from tests.interop.conftest import expired_claims, run, signed_token
from tests.interop.test_imap_dovecot import message


def test_search_headers_fetch_and_delete(imap: Any, pop3: Any) -> None:
    subject = f"Pop {uuid.uuid4().hex[:8]}"
    dotted = message(subject + " dots", body=".leading dot\r\n..two dots\r\n.")

    async def seed() -> None:
        async with imap() as box:
            await box.append("INBOX", message(subject + " one"))
            await box.append("INBOX", dotted)

    async def go() -> dict[str, Any]:
        async with pop3() as box:
            refs = await box.search("INBOX", SearchCriteria(subject_contains=subject))
            summaries = await box.fetch_headers(refs)
            buffer = io.BytesIO()
            size = await box.fetch_mime(refs[1], buffer)
            limited = await box.search("inbox", SearchCriteria(subject_contains=subject), 1)
            await box.delete_permanently([refs[0]])
            after = await box.search("INBOX", SearchCriteria(subject_contains=subject))
            return dict(
                refs=refs,
                summaries=summaries,
                raw=buffer.getvalue(),
                size=size,
                limited=limited,
                after=after,
            )

    run(seed())
    r = run(go())
    assert len(r["refs"]) == 2 and all(ref.folder == "INBOX" for ref in r["refs"])
    assert [s.subject for s in r["summaries"]] == [subject + " one", subject + " dots"]
    assert r["summaries"][0].from_address == "vendor@example.com"
    assert r["summaries"][0].size == len(message(subject + " one"))
    assert r["raw"] == dotted and r["size"] == len(dotted)
    assert r["limited"] == r["refs"][:1]
    assert r["after"] == r["refs"][1:]


def test_unsupported_operations_name_imap(pop3: Any) -> None:
    async def go() -> list[UnsupportedOperation]:
        errors = []
        async with pop3(tls=False, security=Security.STARTTLS) as box:
            ref = MessageRef("INBOX", "x")
            for call in (
                box.set_flags([ref], seen=True),
                box.move([ref], "Archive"),
                box.delete([ref]),
                box.append("INBOX", b"x"),
                box.search("INBOX", SearchCriteria(unread=True)),
                box.search("Archive", SearchCriteria()),
            ):
                try:
                    await call
                except UnsupportedOperation as exc:
                    errors.append(exc)
        return errors

    errors = run(go())
    assert [e.operation for e in errors] == [
        Operation.FLAGS,
        Operation.MOVE,
        Operation.DELETE,
        Operation.APPEND,
        Operation.SEARCH,
        Operation.SEARCH,
    ]
    assert all("IMAP" in e.remedy for e in errors)


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_refused_token(pop3: Any, idp: SandboxController, alice_token: str, mechanism: str) -> None:
    token = signed_token(idp, expired_claims(alice_token))

    async def go() -> None:
        async with pop3(token, mechanism=mechanism):
            pass

    with pytest.raises(MailAuthenticationError) as info:
        run(go())
    assert info.value.reply.startswith("-ERR")
    assert token not in str(info.value)
