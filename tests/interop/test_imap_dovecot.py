"""ImapMailbox against a real Dovecot that validates sandbox-issued JWTs."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailgate.errors import ConfigurationError, ProtocolError, TransportError
from mailgate.interop.dovecot import DovecotServer, free_port
from mailgate.protocols.base import (
    MailAuthenticationError,
    MessageRef,
    SearchCriteria,
    Security,
)
from mailgate.protocols.imap.adapter import ImapMailbox, UidValidityChangedError
from mailgate.protocols.imap.commands import mailbox_argument
from mailgate.testing import SandboxController
from tests.interop.conftest import (
    alice_claims,
    expired_claims,
    run,
    signed_token,
    token_source,
)


def message(subject: str, sender: str = "vendor@example.com", body: str = "Hello") -> bytes:
    return (
        f"From: Vendor <{sender}>\r\nTo: alice@contoso.onmicrosoft.com\r\n"
        f"Cc: bob@contoso.onmicrosoft.com\r\nSubject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <{uuid.uuid4()}@example.com>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def with_attachment(subject: str) -> bytes:
    return (
        f"From: a@example.com\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        '--b1\r\nContent-Type: application/pdf; name="invoice 4711.pdf"\r\n'
        'Content-Disposition: attachment; filename="invoice 4711.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n"
    ).encode()


def tag() -> str:
    return uuid.uuid4().hex[:10]


def test_lists_folders_with_special_use(imap: Any) -> None:
    async def go() -> list[Any]:
        async with imap() as box:
            return list(await box.list_folders())

    folders = {f.name: f for f in run(go())}
    assert folders["INBOX"].special_use == "\\Inbox"
    assert folders["Deleted Items"].special_use == "\\Trash"
    assert folders["Sent Items"].special_use == "\\Sent"
    assert folders["Deleted Items"].total is not None


def test_append_search_and_headers(imap: Any) -> None:
    subject = f"Invoice {tag()}"

    async def go() -> tuple[Any, ...]:
        async with imap() as box:
            ref = await box.append("INBOX", message(subject))
            seen_ref = await box.append("INBOX", message(subject + " paid"), seen=True)
            found = await box.search("INBOX", SearchCriteria(subject_contains=subject))
            unread = await box.search(
                "INBOX", SearchCriteria(subject_contains=subject, unread=True)
            )
            by_sender = await box.search(
                "INBOX",
                SearchCriteria(from_address="vendor@example.com", subject_contains=subject),
            )
            recent = await box.search(
                "INBOX",
                SearchCriteria(
                    subject_contains=subject, since=datetime.now(UTC) - timedelta(hours=1)
                ),
            )
            future = await box.search(
                "INBOX",
                SearchCriteria(
                    subject_contains=subject, since=datetime.now(UTC) + timedelta(hours=1)
                ),
            )
            summaries = await box.fetch_headers(found)
            return ref, seen_ref, found, unread, by_sender, recent, future, summaries

    ref, seen_ref, found, unread, by_sender, recent, future, summaries = run(go())
    assert found == [ref, seen_ref]
    assert unread == [ref]
    assert by_sender == found and recent == found and future == []
    first = summaries[0]
    assert first.ref == ref and first.subject == subject
    assert first.from_address == "vendor@example.com"
    assert first.to == ("alice@contoso.onmicrosoft.com",)
    assert first.cc == ("bob@contoso.onmicrosoft.com",)
    assert first.date == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert first.message_id and first.message_id.endswith("@example.com>")
    assert first.size == len(message(subject))
    assert (first.seen, summaries[1].seen) == (False, True)
    assert first.has_attachments is False


def test_attachment_search_uses_bodystructure(imap: Any) -> None:
    subject = f"Attached {tag()}"

    async def go() -> tuple[Any, Any, Any]:
        async with imap() as box:
            with_file = await box.append("INBOX", with_attachment(subject))
            await box.append("INBOX", message(subject))
            hits = await box.search(
                "INBOX", SearchCriteria(subject_contains=subject, has_attachments=True)
            )
            return with_file, hits, await box.fetch_headers(hits)

    with_file, hits, summaries = run(go())
    assert hits == [with_file]
    assert summaries[0].has_attachments is True


def test_folder_with_quotes_spaces_and_non_ascii(imap: Any) -> None:
    name = f'Kunden "Müller & Söhne" {tag()}/Entwürfe 2024'
    subject = f"Angebot {tag()}"

    async def go() -> tuple[Any, ...]:
        async with imap() as box:
            parent = name.rsplit("/", 1)[0]
            await box.command("CREATE", mailbox_argument(parent, await box.delimiter()))
            await box.command("CREATE", await box.mailbox_argument(name))
            data = message(subject)
            ref = await box.append(name, data)
            names = [f.name for f in await box.list_folders()]
            found = await box.search(name, SearchCriteria(subject_contains=subject))
            buffer = io.BytesIO()
            await box.fetch_mime(found[0], buffer)
            return ref, names, found, buffer.getvalue(), data

    ref, names, found, raw, data = run(go())
    assert name in names
    assert found == [ref] and ref.folder == name
    assert raw == data


def test_flags_move_delete_and_permanent_delete(imap: Any) -> None:
    subject = f"Lifecycle {tag()}"

    async def go() -> dict[str, Any]:
        async with imap() as box:
            first = await box.append("INBOX", message(subject + " one"))
            second = await box.append("INBOX", message(subject + " two"))
            third = await box.append("INBOX", message(subject + " three"))
            await box.set_flags([first, second], seen=True, flagged=True)
            await box.set_flags([second], flagged=False)
            flags = {s.ref: (s.seen, s.flagged) for s in await box.fetch_headers([first, second])}
            (moved,) = await box.move([first], "Archive")
            in_inbox = await box.search("INBOX", SearchCriteria(subject_contains=subject))
            in_archive = await box.search("Archive", SearchCriteria(subject_contains=subject))
            await box.delete([second])
            trash = await box.search("Deleted Items", SearchCriteria(subject_contains=subject))
            await box.delete_permanently([third])
            after = await box.search("INBOX", SearchCriteria(subject_contains=subject))
            return dict(
                first=first,
                second=second,
                third=third,
                flags=flags,
                moved=moved,
                in_inbox=in_inbox,
                in_archive=in_archive,
                trash=trash,
                after=after,
            )

    r = run(go())
    assert r["flags"] == {r["first"]: (True, True), r["second"]: (True, False)}
    assert r["moved"] is not None and r["moved"].folder == "Archive"
    assert r["in_archive"] == [r["moved"]]
    assert r["in_inbox"] == [r["second"], r["third"]]
    assert len(r["trash"]) == 1
    assert r["after"] == []


def test_move_without_move_capability_uses_copy_and_uid_expunge(imap: Any) -> None:
    subject = f"NoMove {tag()}"

    async def go() -> tuple[Any, Any, Any]:
        async with imap() as box:
            keep = await box.append("INBOX", message(subject + " keep"))
            go_ref = await box.append("INBOX", message(subject + " go"))
            box.connection.capabilities -= {"MOVE"}
            (moved,) = await box.move([go_ref], "Archive")
            left = await box.search("INBOX", SearchCriteria(subject_contains=subject))
            return keep, moved, left

    keep, moved, left = run(go())
    assert moved is not None and moved.folder == "Archive"
    assert left == [keep]


def test_watch_with_idle_and_with_polling(imap: Any) -> None:
    subject = f"Watch {tag()}"

    async def watch_once(idle: bool) -> tuple[list[MessageRef], MessageRef]:
        async with imap() as watcher, imap() as writer:
            if not idle:
                watcher.connection.capabilities -= {"IDLE"}
            stream = watcher.watch("INBOX", interval=0.2)
            pending = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0.3)
            ref = await writer.append("INBOX", message(subject))
            refs = await asyncio.wait_for(pending, 20)
            await stream.aclose()  # type: ignore[attr-defined]
            return refs, ref

    for idle in (True, False):
        refs, ref = run(watch_once(idle))
        assert ref in refs


def test_oauthbearer_and_starttls(imap: Any) -> None:
    async def go() -> tuple[int, int]:
        async with imap(mechanism="OAUTHBEARER") as box:
            first = len(await box.list_folders())
        async with imap(tls=False, security=Security.STARTTLS) as box:
            second = len(await box.list_folders())
        return first, second

    first, second = run(go())
    assert first == second > 0


@pytest.mark.parametrize("kind", ["expired", "forged", "other-user"])
def test_refused_tokens(imap: Any, idp: SandboxController, alice_token: str, kind: str) -> None:
    if kind == "expired":
        token, address = signed_token(idp, expired_claims(alice_token)), None
    elif kind == "forged":
        token, address = signed_token(idp, alice_claims(alice_token), foreign=True), None
    else:
        token, address = alice_token, "servicedesk@contoso.onmicrosoft.com"

    async def go() -> None:
        async with imap(token, address=address):
            pass

    with pytest.raises(MailAuthenticationError) as info:
        run(go())
    assert "AUTHENTICATIONFAILED" in info.value.reply
    assert alice_token not in str(info.value)


def test_uidvalidity_mismatch_is_an_error(imap: Any) -> None:
    async def go() -> None:
        async with imap() as box:
            await box.select("INBOX")
            await box.fetch_mime(MessageRef("INBOX", "1:1"), io.BytesIO())

    with pytest.raises(UidValidityChangedError):
        run(go())


def test_network_failures_become_transport_errors(
    dovecot: DovecotServer, alice: str, alice_token: str
) -> None:
    def box(port: int, security: Security, context: Any = None) -> ImapMailbox:
        return ImapMailbox(
            alice,
            "127.0.0.1",
            port,
            token_source=token_source(alice_token),
            security=security,
            ssl_context=context,
            timeout=5,
        )

    async def connect(mailbox: ImapMailbox) -> None:
        async with mailbox:
            pass

    with pytest.raises(TransportError, match="check the host and port"):
        run(connect(box(free_port(), Security.PLAIN)))
    with pytest.raises(TransportError, match="certificate"):  # not the sandbox CA
        run(connect(box(dovecot.ports["imaps"], Security.TLS)))
    with pytest.raises(ConfigurationError, match="only allowed to this machine"):
        box(143, Security.PLAIN).__class__(
            alice,
            "imap.example.com",
            143,
            token_source=token_source(alice_token),
            security=Security.PLAIN,
        )


def test_fetch_of_a_vanished_message(imap: Any) -> None:
    async def go() -> None:
        async with imap() as box:
            ref = await box.append("INBOX", message(f"Gone {tag()}"))
            await box.delete_permanently([ref])
            await box.fetch_mime(ref, io.BytesIO())

    with pytest.raises(ProtocolError, match="no longer"):
        run(go())


def test_uids_larger_finds_only_the_big_messages(imap: Any) -> None:
    folder = f"Sizes {tag()}"
    small, big = message("small"), message("big", body="x" * 5000)

    async def go() -> tuple[set[int], list[int]]:
        async with imap() as box:
            await box.command("CREATE", await box.mailbox_argument(folder))
            await box.append(folder, small)
            await box.append(folder, big)
            uids = [int(r.id.split(":")[1]) for r in await box.search(folder, SearchCriteria())]
            return await box.uids_larger(folder, len(small)), uids

    larger, uids = run(go())
    assert larger == {uids[1]}
