"""Graph paging and delta links are followed only on the mailbox's own scheme, host and port:
a link elsewhere would carry the bearer token there."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from mailgate.errors import ProtocolError
from mailgate.protocols.base import MessageRef, SearchCriteria
from mailgate.protocols.graph.adapter import GraphMailbox
from mailgate.protocols.transport import require_same_origin

BASE = "https://graph.test/v1.0"


@pytest.mark.parametrize(
    "link",
    [
        f"{BASE}/users/a/messages?$skiptoken=X",
        "https://GRAPH.test:443/v1.0/users/a/messages",
        "https://graph.test/beta/other/path",
        "/v1.0/users/a/messages?$skip=10",
        "users/a/messages",
    ],
)
def test_same_origin_links_pass(link: str) -> None:
    assert require_same_origin(link, BASE) == link


@pytest.mark.parametrize(
    ("link", "shown"),
    [
        ("https://evil.test/v1.0/users/a/messages", "https://evil.test"),
        ("http://graph.test/v1.0/users/a/messages", "http://graph.test"),
        ("https://graph.test:8443/v1.0/users/a", "https://graph.test:8443"),
        ("https://graph.test.evil.test/v1.0", "https://graph.test.evil.test"),
        ("//evil.test/v1.0/users/a", "https://evil.test"),
    ],
)
def test_other_origins_are_refused(link: str, shown: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        require_same_origin(link, BASE)
    assert f"refusing to send the token to {shown} " in str(caught.value)
    assert caught.value.remedy


def test_ports_are_compared_too() -> None:
    assert require_same_origin("https://127.0.0.1:9443/x", "https://127.0.0.1:9443/v1.0")
    with pytest.raises(ProtocolError, match=r"127\.0\.0\.1:9444"):
        require_same_origin("https://127.0.0.1:9444/x", "https://127.0.0.1:9443/v1.0")


async def _token() -> str:
    return "secret-token"


def _mailbox(handler: httpx.MockTransport) -> GraphMailbox:
    return GraphMailbox("a@contoso.example", BASE, token_source=_token, transport=handler)


def _serve(pages: list[dict[str, object]], hosts: list[str]) -> httpx.MockTransport:
    answers = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.path.endswith("/mailFolders/inbox"):
            return httpx.Response(200, json={"id": "F-INBOX"})
        return httpx.Response(200, json=next(answers))

    return httpx.MockTransport(handler)


def test_search_refuses_a_next_link_to_another_host() -> None:
    hosts: list[str] = []
    transport = _serve(
        [{"value": [{"id": "m1"}], "@odata.nextLink": "https://evil.test/v1.0/steal?x=1"}], hosts
    )

    async def go() -> list[MessageRef]:
        async with _mailbox(transport) as mailbox:
            return await mailbox.search("inbox", SearchCriteria())

    with pytest.raises(ProtocolError, match=r"refusing to send the token to https://evil\.test"):
        asyncio.run(go())
    assert "evil.test" not in hosts and hosts


def test_watch_refuses_a_delta_link_to_another_host() -> None:
    hosts: list[str] = []
    transport = _serve(
        [{"value": [{"id": "m1"}], "@odata.deltaLink": "https://evil.test/v1.0/delta?t=1"}],
        hosts,
    )

    async def go() -> None:
        async with _mailbox(transport) as mailbox:
            async for _refs in mailbox.watch("inbox", interval=0):
                break

    with pytest.raises(ProtocolError, match=r"refusing to send the token to https://evil\.test"):
        asyncio.run(go())
    assert "evil.test" not in hosts
