"""GraphMailbox and EwsMailbox against the running sandbox: every operation, app-only on a
shared mailbox the daemon may use, delegated as alice (own and shared mailbox), and the
refusals (application access policy, unknown mailbox, throttling)."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import httpx
import pytest

from mailgate.protocols.base import (
    MailAuthenticationError,
    Mailbox,
    MailboxAccessError,
    MessageRef,
    SearchCriteria,
    ThrottledError,
    UnsupportedOperation,
)
from mailgate.protocols.ews.adapter import EwsMailbox
from mailgate.protocols.graph.adapter import GraphMailbox
from mailgate.protocols.transport import with_backoff
from mailgate.testing import SandboxController

from .conftest import MailboxFactory, Tokens, address

pytestmark = [
    pytest.mark.sandbox,
    # alice signs in with ROPC through MSAL, which warns that the flow is discouraged.
    pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning"),
]

T = TypeVar("T")

CASES = [
    ("graph", "app", "approvals"),
    ("graph", "alice", "alice"),
    ("ews", "app", "approvals"),
    ("ews", "alice", "alice"),
    ("ews", "alice", "approvals"),  # delegated access to a shared mailbox (FullAccess)
]
IDS = [f"{p}-{w}-{m}" for p, w, m in CASES]


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def mime(sender: str, to: str, subject: str, body: str = "Hello from the tests.") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mailgate.test>\r\n"
        'Content-Type: text/plain; charset="utf-8"\r\n\r\n'
        f"{body}\r\n"
    ).encode()


def subject() -> str:
    return f"mg-test {uuid.uuid4().hex[:12]}"


async def deposit(mailbox: Mailbox, title: str, folder: str = "inbox") -> MessageRef:
    """Send a message to the mailbox itself and return its ref in the Inbox."""
    own = mailbox.address  # type: ignore[attr-defined]
    await mailbox.send(mime(own, own, title), sender=own, recipients=[own])
    refs = await mailbox.search(folder, SearchCriteria(subject_contains=title))
    assert len(refs) == 1, refs
    return refs[0]


@pytest.mark.parametrize(("protocol", "who", "box"), CASES, ids=IDS)
def test_list_folders(open_mailbox: MailboxFactory, protocol: str, who: str, box: str) -> None:
    async def go() -> None:
        async with open_mailbox(protocol, who, box) as mailbox:
            folders = {f.name: f for f in await mailbox.list_folders()}
        assert folders["Inbox"].special_use == "\\Inbox"
        assert folders["Deleted Items"].special_use == "\\Trash"
        assert folders["Sent Items"].special_use == "\\Sent"
        assert folders["Inbox"].total is not None and folders["Inbox"].total >= 1

    run(go())


@pytest.mark.parametrize(("protocol", "who", "box"), CASES, ids=IDS)
def test_search_fetch_and_flags(
    open_mailbox: MailboxFactory, protocol: str, who: str, box: str
) -> None:
    title = subject() + " Grüße 'quoted'"

    async def go() -> None:
        async with open_mailbox(protocol, who, box) as mailbox:
            ref = await deposit(mailbox, title)
            (summary,) = await mailbox.fetch_headers([ref])
            assert summary.subject == title and summary.ref.id == ref.id
            assert summary.from_address.lower() == mailbox.address.lower()  # type: ignore[attr-defined]
            assert not summary.seen and not summary.flagged
            dest = io.BytesIO()
            written = await mailbox.fetch_mime(ref, dest)
            assert written == len(dest.getvalue()) > 0
            assert b"Hello from the tests." in dest.getvalue()

            unread = SearchCriteria(unread=True, subject_contains=title)
            assert [r.id for r in await mailbox.search("Inbox", unread)] == [ref.id]
            await mailbox.set_flags([ref], seen=True)
            if protocol == "graph":  # the sandbox's EWS updates message:IsRead only
                await mailbox.set_flags([ref], flagged=True)
            (after,) = await mailbox.fetch_headers([ref])
            assert after.seen and after.flagged == (protocol == "graph")
            assert await mailbox.search("Inbox", unread) == []
            read = SearchCriteria(unread=False, subject_contains=title)
            assert [r.id for r in await mailbox.search("INBOX", read)] == [ref.id]

    run(go())


@pytest.mark.parametrize(("protocol", "who", "box"), CASES[:4], ids=IDS[:4])
def test_search_is_oldest_first_and_limited(
    open_mailbox: MailboxFactory, protocol: str, who: str, box: str
) -> None:
    async def go() -> None:
        async with open_mailbox(protocol, who, box) as mailbox:
            everything = await mailbox.search("inbox", SearchCriteria())
            summaries = await mailbox.fetch_headers(everything)
            dates = [s.date for s in summaries]
            assert all(d is not None for d in dates)
            assert dates == sorted(dates)  # type: ignore[type-var]
            assert await mailbox.search("inbox", SearchCriteria(), limit=2) == everything[:2]

    run(go())


@pytest.mark.parametrize(("protocol", "who", "box"), CASES, ids=IDS)
def test_move_returns_the_new_id(
    open_mailbox: MailboxFactory, protocol: str, who: str, box: str
) -> None:
    title = subject()

    async def go() -> None:
        async with open_mailbox(protocol, who, box) as mailbox:
            ref = await deposit(mailbox, title)
            (moved,) = await mailbox.move([ref], "Archive")
            assert moved is not None and moved.id != ref.id and moved.folder == "Archive"
            found = await mailbox.search("Archive", SearchCriteria(subject_contains=title))
            assert [r.id for r in found] == [moved.id]
            assert await mailbox.search("Inbox", SearchCriteria(subject_contains=title)) == []

    run(go())


@pytest.mark.parametrize(("protocol", "who", "box"), CASES, ids=IDS)
def test_soft_and_permanent_delete(
    open_mailbox: MailboxFactory, protocol: str, who: str, box: str
) -> None:
    soft, hard = subject(), subject()

    async def go() -> None:
        async with open_mailbox(protocol, who, box) as mailbox:
            soft_ref = await deposit(mailbox, soft)
            hard_ref = await deposit(mailbox, hard)
            await mailbox.delete([soft_ref])
            await mailbox.delete_permanently([hard_ref])
            for title in (soft, hard):
                assert await mailbox.search("inbox", SearchCriteria(subject_contains=title)) == []
            trash = "Deleted Items"
            assert len(await mailbox.search(trash, SearchCriteria(subject_contains=soft))) == 1
            assert await mailbox.search(trash, SearchCriteria(subject_contains=hard)) == []

    run(go())


@pytest.mark.parametrize(
    ("protocol", "who", "sender", "recipient"),
    [
        ("graph", "app", "approvals", "servicedesk"),
        ("graph", "alice", "alice", "approvals"),
        ("ews", "app", "approvals", "servicedesk"),
        ("ews", "alice", "alice", "approvals"),
    ],
)
def test_send_lands_in_the_recipients_inbox(
    mail_sandbox: SandboxController,
    open_mailbox: MailboxFactory,
    protocol: str,
    who: str,
    sender: str,
    recipient: str,
) -> None:
    title = subject()
    source, target = address(mail_sandbox, sender), address(mail_sandbox, recipient)
    bcc = address(mail_sandbox, "noreply")

    async def go() -> None:
        async with open_mailbox(protocol, who, sender) as mailbox:
            await mailbox.send(mime(source, target, title), sender=source, recipients=[target, bcc])
            assert (
                len(await mailbox.search("sentitems", SearchCriteria(subject_contains=title))) == 1
            )
        for local in (recipient, "noreply"):  # noreply only through the envelope (Bcc)
            async with open_mailbox("ews", "app", local) as other:
                found = await other.search("inbox", SearchCriteria(subject_contains=title))
                assert len(found) == 1, local
                dest = io.BytesIO()
                await other.fetch_mime(found[0], dest)
                assert b"\nBcc:" not in dest.getvalue()

    run(go())


@pytest.mark.parametrize(
    ("protocol", "who", "box"),
    [("graph", "app", "approvals"), ("ews", "app", "approvals"), ("ews", "alice", "alice")],
)
def test_watch_yields_a_message_delivered_during_the_watch(
    open_mailbox: MailboxFactory, protocol: str, who: str, box: str
) -> None:
    title = subject()

    async def go() -> None:
        async with (
            open_mailbox(protocol, who, box) as watcher,
            open_mailbox(protocol, who, box) as sender,
        ):
            own = sender.address  # type: ignore[attr-defined]
            stream = watcher.watch("inbox", interval=0.1).__aiter__()
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0.3)  # let the watch take its initial state
            assert not first.done()  # existing mail is not reported
            await sender.send(mime(own, own, title), sender=own, recipients=[own])
            refs = await asyncio.wait_for(first, timeout=30)
            summaries = await watcher.fetch_headers(refs)
            assert title in [s.subject for s in summaries]
            await stream.aclose()  # type: ignore[attr-defined]

    run(go())


def test_ews_append_into_a_folder(open_mailbox: MailboxFactory) -> None:
    title = subject()

    async def go() -> None:
        async with open_mailbox("ews", "app", "approvals") as mailbox:
            own = mailbox.address  # type: ignore[attr-defined]
            ref = await mailbox.append("Archive", mime("x@example.com", own, title), seen=True)
            assert ref is not None
            found = await mailbox.search("Archive", SearchCriteria(subject_contains=title))
            assert [r.id for r in found] == [ref.id]
            (summary,) = await mailbox.fetch_headers([ref])
            assert summary.seen and summary.from_address == "x@example.com"

    run(go())


def test_graph_append_from_mime_is_unsupported_by_the_sandbox(
    open_mailbox: MailboxFactory,
) -> None:
    async def go() -> None:
        async with open_mailbox("graph", "app", "approvals") as mailbox:
            await mailbox.append("inbox", mime("x@example.com", "y@example.com", subject()))

    with pytest.raises(UnsupportedOperation) as info:
        run(go())
    assert "EWS" in info.value.remedy


@pytest.mark.parametrize("protocol", ["graph", "ews"])
def test_application_access_policy_blocks_the_daemon_on_alice(
    open_mailbox: MailboxFactory, protocol: str
) -> None:
    async def go() -> None:
        async with open_mailbox(protocol, "app", "alice"):
            pass

    with pytest.raises(MailboxAccessError) as info:
        run(go())
    assert "ApplicationAccessPolicy" in info.value.remedy
    assert "Test-ApplicationAccessPolicy" in info.value.remedy
    if protocol == "ews":
        assert info.value.reply == "ErrorAccessDenied"


def test_ews_unknown_mailbox(open_mailbox: MailboxFactory) -> None:
    async def go() -> None:
        async with open_mailbox("ews", "app", "nobody"):
            pass

    with pytest.raises(MailboxAccessError) as info:
        run(go())
    assert info.value.reply in (
        "ErrorNonExistentMailbox",
        "ErrorInvalidExchangeImpersonationHeaderData",
    )


def test_graph_throttling_and_backoff(
    mail_sandbox: SandboxController, open_mailbox: MailboxFactory
) -> None:
    daemon = mail_sandbox.app("mailgate-daemon")["client_id"]
    target = address(mail_sandbox, "servicedesk")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> None:
        async with open_mailbox("graph", "app", "servicedesk") as mailbox:
            with mail_sandbox.http() as http:
                http.post(
                    "/_sandbox/graph/throttle",
                    json={"count": 2, "retry_after": 7, "app_id": daemon, "mailbox": target},
                ).raise_for_status()
            with pytest.raises(ThrottledError) as info:
                await mailbox.search("inbox", SearchCriteria())
            assert info.value.retry_after == 7
            refs = await with_backoff(
                lambda: mailbox.search("inbox", SearchCriteria()), attempts=3, sleep=sleep
            )
            assert refs

    try:
        run(go())
    finally:
        with mail_sandbox.http() as http:
            http.post("/_sandbox/graph/throttle", json={"reset": True})
    assert waits == [7]


def test_connect_over_plain_wrong_url_is_a_transport_error(
    mail_sandbox: SandboxController, tokens: Tokens
) -> None:
    from mailgate.errors import TransportError

    mailbox = EwsMailbox(
        address(mail_sandbox, "approvals"),
        "https://127.0.0.1:9/EWS/Exchange.asmx",
        token_source=tokens.source("app", ["https://outlook.office365.com/.default"]),
        app_only=True,
        timeout=5,
    )

    async def go() -> None:
        async with mailbox:
            pass

    with pytest.raises(TransportError) as info:
        run(go())
    assert isinstance(info.value.__cause__, httpx.HTTPError)


def test_ews_server_busy_and_backoff(
    mail_sandbox: SandboxController, open_mailbox: MailboxFactory
) -> None:
    target = address(mail_sandbox, "servicedesk")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def go() -> None:
        async with open_mailbox("ews", "app", "servicedesk") as mailbox:
            with mail_sandbox.http() as http:
                http.post(
                    "/_sandbox/ews/busy", json={"count": 2, "back_off_ms": 3000, "mailbox": target}
                ).raise_for_status()
            with pytest.raises(ThrottledError) as info:
                await mailbox.search("inbox", SearchCriteria())
            assert info.value.retry_after == 3.0
            refs = await with_backoff(
                lambda: mailbox.search("inbox", SearchCriteria()), attempts=3, sleep=sleep
            )
            assert refs

    try:
        run(go())
    finally:
        with mail_sandbox.http() as http:
            http.post("/_sandbox/ews/throttle", json={"reset": True})
    assert waits == [3.0]


@pytest.mark.parametrize("protocol", ["graph", "ews"])
def test_a_refused_token_keeps_the_servers_diagnostics(
    mail_sandbox: SandboxController, protocol: str
) -> None:
    async def bogus() -> str:
        return "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."

    mail = mail_sandbox.description["mail"]
    target = address(mail_sandbox, "approvals")
    mailbox: Mailbox
    if protocol == "graph":
        mailbox = GraphMailbox(
            target, mail["graph_url"], token_source=bogus, ssl_context=mail_sandbox.ssl_context()
        )
    else:
        mailbox = EwsMailbox(
            target,
            mail["ews_url"],
            token_source=bogus,
            app_only=True,
            ssl_context=mail_sandbox.ssl_context(),
        )

    async def go() -> None:
        async with mailbox:
            pass

    with pytest.raises(MailAuthenticationError) as info:
        run(go())
    assert info.value.reply
    if protocol == "ews":
        assert info.value.reply.startswith("2000001")
