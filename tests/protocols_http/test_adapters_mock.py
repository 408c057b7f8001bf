"""GraphMailbox and EwsMailbox over httpx.MockTransport: the I/O glue (paging, headers,
streaming, back-off, watch state). The wire behaviour is proven against the sandbox in the
integration tests; these only check the adapters drive the pure modules correctly."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable

import httpx
import pytest

from mailgate.protocols.base import (
    MailAuthenticationError,
    MessageRef,
    SearchCriteria,
    ThrottledError,
)
from mailgate.protocols.ews import soap as ews_soap
from mailgate.protocols.ews.adapter import EwsMailbox
from mailgate.protocols.graph.adapter import GraphMailbox
from mailgate.protocols.transport import with_backoff

from . import ews_samples as samples

Handler = Callable[[httpx.Request], httpx.Response]
BASE = "https://graph.test/v1.0"


async def token() -> str:
    return "tok"


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def graph(handler: Handler) -> GraphMailbox:
    return GraphMailbox(
        "approvals@contoso.example",
        BASE,
        token_source=token,
        transport=httpx.MockTransport(handler),
    )


def inbox_ok(request: httpx.Request) -> httpx.Response | None:
    if request.url.path.endswith("/mailFolders/inbox"):
        return httpx.Response(200, json={"id": "F-INBOX"})
    return None


def test_graph_search_follows_next_link_unchanged() -> None:
    seen: list[str] = []
    next_link = (
        f"{BASE}/users/approvals@contoso.example/mailFolders/inbox/messages?$skiptoken=X%3D%3D"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if (answer := inbox_ok(request)) is not None:
            return answer
        seen.append(str(request.url))
        if "skiptoken" in str(request.url):
            return httpx.Response(
                200, json={"value": [{"id": "m3", "receivedDateTime": "2024-05-03T00:00:00Z"}]}
            )
        return httpx.Response(
            200,
            json={
                "value": [
                    {"id": "m1", "receivedDateTime": "2024-05-01T00:00:00Z"},
                    {"id": "m2", "receivedDateTime": "2024-05-02T00:00:00Z"},
                ],
                "@odata.nextLink": next_link,
            },
        )

    async def go() -> list[MessageRef]:
        async with graph(handler) as mailbox:
            return await mailbox.search("INBOX", SearchCriteria(subject_contains="O'Neil"))

    refs = asyncio.run(go())
    assert [r.id for r in refs] == ["m1", "m2", "m3"] and refs[0].folder == "INBOX"
    first = httpx.URL(seen[0])
    assert first.path.endswith("/users/approvals@contoso.example/mailFolders/inbox/messages")
    assert first.params["$filter"].endswith("contains(subject,'O''Neil')")
    assert seen[1] == next_link


def test_graph_throttling_then_backoff() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        if (answer := inbox_ok(request)) is not None:
            return answer
        calls += 1
        if calls == 1:
            return httpx.Response(
                429,
                headers={"Retry-After": "3"},
                json={"error": {"code": "ApplicationThrottled", "message": "slow down"}},
            )
        return httpx.Response(200, json={"value": []})

    sleep = FakeSleep()

    async def go() -> list[MessageRef]:
        async with graph(handler) as mailbox:
            return await with_backoff(
                lambda: mailbox.search("inbox", SearchCriteria()), attempts=3, sleep=sleep
            )

    assert asyncio.run(go()) == []
    assert sleep.waits == [3.0] and calls == 2


def test_graph_fetch_mime_streams_to_file() -> None:
    mime = b"Subject: big\r\n\r\n" + b"x" * 300_000

    def handler(request: httpx.Request) -> httpx.Response:
        if (answer := inbox_ok(request)) is not None:
            return answer
        assert request.url.raw_path.endswith(b"/messages/id%2F1%3D/$value")
        return httpx.Response(200, content=mime)

    async def go() -> tuple[int, bytes]:
        dest = io.BytesIO()
        async with graph(handler) as mailbox:
            written = await mailbox.fetch_mime(MessageRef("inbox", "id/1="), dest)
        return written, dest.getvalue()

    assert asyncio.run(go()) == (len(mime), mime)


def test_graph_watch_yields_only_new_and_resyncs_on_410() -> None:
    rounds = iter(
        [
            {"value": [{"id": "old1"}, {"id": "old2"}], "@odata.deltaLink": f"{BASE}/d?t=1"},
            {"value": [{"id": "new1"}, {"id": "old1"}], "@odata.deltaLink": f"{BASE}/d?t=2"},
            "gone",
            {"value": [{"id": "old2"}, {"id": "new1"}, {"id": "new2"}], "@odata.deltaLink": "x"},
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if (answer := inbox_ok(request)) is not None:
            return answer
        answer = next(rounds)
        if answer == "gone":
            return httpx.Response(410, json={"error": {"code": "SyncStateNotFound"}})
        return httpx.Response(200, json=answer)

    async def go() -> list[list[str]]:
        got: list[list[str]] = []
        async with graph(handler) as mailbox:
            mailbox.sleep = FakeSleep()
            async for refs in mailbox.watch("inbox", interval=5):
                got.append([r.id for r in refs])
                if len(got) == 2:
                    break
        return got

    assert asyncio.run(go()) == [["new1"], ["new2"]]


def test_graph_send_posts_base64_mime() -> None:
    posted: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if (answer := inbox_ok(request)) is not None:
            return answer
        posted.append(request)
        return httpx.Response(202)

    mime = b"From: a@x\r\nTo: b@x\r\nSubject: s\r\n\r\nhi\r\n"

    async def go() -> None:
        async with graph(handler) as mailbox:
            await mailbox.send(mime, sender="a@x", recipients=["b@x"])

    asyncio.run(go())
    assert posted[0].url.path.endswith("/sendMail")
    assert posted[0].headers["content-type"] == "text/plain"
    assert base64.b64decode(posted[0].content) == mime


def ews(handler: Handler, app_only: bool = True) -> EwsMailbox:
    return EwsMailbox(
        "approvals@contoso.example",
        "https://ews.test/EWS/Exchange.asmx",
        token_source=token,
        app_only=app_only,
        transport=httpx.MockTransport(handler),
    )


def operation(request: httpx.Request) -> ET.Element:
    root = ET.fromstring(request.content)  # noqa: S314 - our own request
    return root.find(f"{{{ews_soap.SOAP_NS}}}Body")[0]  # type: ignore[index]


@pytest.mark.parametrize("app_only", [True, False])
def test_ews_headers_and_impersonation(app_only: bool) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=samples.GET_FOLDER)

    async def go() -> None:
        async with ews(handler, app_only):
            pass

    asyncio.run(go())
    request = requests[0]
    assert request.headers["authorization"] == "Bearer tok"
    assert request.headers["content-type"].startswith("text/xml")
    body = request.content.decode()
    assert request.headers["x-anchormailbox"] == "approvals@contoso.example"
    if app_only:
        assert "<t:PrimarySmtpAddress>approvals@contoso.example<" in body
        assert "<t:Mailbox>" not in body
    else:
        assert "ExchangeImpersonation" not in body
        assert "<t:EmailAddress>approvals@contoso.example</t:EmailAddress>" in body


def test_ews_search_pages_and_limit() -> None:
    pages = [samples.find_item(["A", "B"], 2, False), samples.find_item(["C", "D"], 4, False)]
    offsets: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        op = operation(request)
        if op.tag.endswith("GetFolder"):
            return httpx.Response(200, content=samples.GET_FOLDER)
        view = op.find(f"{{{ews_soap.MESSAGES_NS}}}IndexedPageItemView")
        offsets.append(view.get("Offset") if view is not None else None)
        return httpx.Response(200, content=pages[len(offsets) - 1])

    async def go() -> list[MessageRef]:
        async with ews(handler) as mailbox:
            return await mailbox.search("Inbox", SearchCriteria(unread=True), limit=3)

    refs = asyncio.run(go())
    assert [r.id for r in refs] == ["A", "B", "C"] and refs[0].change_key == "CK-A"
    assert offsets == ["0", "2"]


def test_ews_fetch_mime_streams_in_chunks() -> None:
    class Chunked(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            data = samples.get_item_mime()
            for start in range(0, len(data), 333):
                yield data[start : start + 333]

    def handler(request: httpx.Request) -> httpx.Response:
        if operation(request).tag.endswith("GetFolder"):
            return httpx.Response(200, content=samples.GET_FOLDER)
        return httpx.Response(200, stream=Chunked())

    async def go() -> tuple[int, bytes]:
        dest = io.BytesIO()
        async with ews(handler) as mailbox:
            written = await mailbox.fetch_mime(MessageRef("inbox", "AAMk1="), dest)
        return written, dest.getvalue()

    assert asyncio.run(go()) == (len(samples.MIME), samples.MIME)


def test_ews_server_busy_and_watch() -> None:
    answers = [
        samples.sync("S1", False, ["old1"]),
        samples.sync("S2", True, ["old2"]),
        samples.SERVER_BUSY_FAULT,
        samples.sync("S3", True, ["new1"], ["old1"]),
    ]
    states: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        op = operation(request)
        if op.tag.endswith("GetFolder"):
            return httpx.Response(200, content=samples.GET_FOLDER)
        states.append(op.findtext(f"{{{ews_soap.MESSAGES_NS}}}SyncState"))
        body = answers.pop(0)
        return httpx.Response(500 if b"Fault" in body else 200, content=body)

    async def go() -> list[list[str]]:
        got: list[list[str]] = []
        async with ews(handler) as mailbox:
            mailbox.sleep = FakeSleep()
            watcher = mailbox.watch("inbox", interval=1).__aiter__()
            with pytest.raises(ThrottledError) as info:
                await anext(watcher)
            assert info.value.retry_after == pytest.approx(297.749)
            watcher = mailbox.watch("inbox", interval=1).__aiter__()
            answers[:0] = [samples.sync("S1", True, []), samples.sync("S9", True, ["new1"])]
            got.append([r.id for r in await anext(watcher)])
        return got

    assert asyncio.run(go()) == [["new1"]]
    assert states[:3] == [None, "S1", "S2"]


def test_ews_move_returns_new_ids() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        op = operation(request)
        if op.tag.endswith("GetFolder"):
            return httpx.Response(200, content=samples.GET_FOLDER)
        assert op.tag.endswith("MoveItem")
        return httpx.Response(200, content=samples.MOVE_ITEM)

    async def go() -> list[MessageRef | None]:
        async with ews(handler) as mailbox:
            return await mailbox.move([MessageRef("inbox", "OLD=")], "deleteditems")

    assert asyncio.run(go()) == [MessageRef("deleteditems", "NEW1=", "CQN")]


def test_graph_connect_maps_401_and_keeps_diagnostics() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            headers={"x-ms-diagnostics": '2000001;reason="expired"'},
            content=json.dumps({"error": {"code": "InvalidAuthenticationToken"}}).encode(),
        )

    async def go() -> None:
        async with graph(handler):
            pass

    with pytest.raises(MailAuthenticationError) as info:
        asyncio.run(go())
    assert info.value.reply == '2000001;reason="expired"'
    assert "Bearer" not in str(info.value)
