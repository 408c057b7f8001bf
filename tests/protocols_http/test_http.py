"""Unit tests for the HTTP seam: back-off, Retry-After, error conversion, auth, Bcc."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from mailgate.errors import TransportError
from mailgate.protocols.base import ThrottledError
from mailgate.protocols.transport import (
    USER_AGENT,
    BearerAuth,
    add_envelope_bcc,
    create_client,
    retry_after_seconds,
    stream,
    transport_errors,
    with_backoff,
)


async def _token() -> str:
    return "tok-123"


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after_seconds(value, now=now) == expected


def test_backoff_waits_what_the_server_asked_then_succeeds() -> None:
    sleep = FakeSleep()
    answers: list[object] = [
        ThrottledError("busy", retry_after=2.5),
        ThrottledError("busy", retry_after=0.25),
        "done",
    ]

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return str(answer)

    assert asyncio.run(with_backoff(call, attempts=3, sleep=sleep)) == "done"
    assert sleep.waits == [2.5, 0.25]


def test_backoff_without_hint_doubles_and_caps() -> None:
    sleep = FakeSleep()
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise ThrottledError("busy", retry_after=0)

    with pytest.raises(ThrottledError):
        asyncio.run(with_backoff(call, attempts=4, sleep=sleep, default_wait=1.0))
    assert calls == 4
    assert sleep.waits == [1.0, 2.0, 4.0]

    sleep2 = FakeSleep()

    async def huge() -> None:
        raise ThrottledError("busy", retry_after=86400)

    with pytest.raises(ThrottledError):
        asyncio.run(with_backoff(huge, attempts=2, sleep=sleep2, max_wait=60))
    assert sleep2.waits == [60]


def test_backoff_does_not_retry_other_errors() -> None:
    sleep = FakeSleep()
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise TransportError("down")

    with pytest.raises(TransportError):
        asyncio.run(with_backoff(call, attempts=5, sleep=sleep))
    assert calls == 1 and sleep.waits == []
    with pytest.raises(ValueError):
        asyncio.run(with_backoff(call, attempts=0, sleep=sleep))


def _client(handler: object) -> httpx.AsyncClient:
    return create_client(
        token_source=_token,
        base_url="https://mail.example",
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
        headers={"X-Test": "1"},
    )


def test_client_sends_bearer_token_and_user_agent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async def go() -> None:
        async with _client(handler) as client:
            await client.get("/x")

    asyncio.run(go())
    assert seen[0].headers["authorization"] == "Bearer tok-123"
    assert seen[0].headers["user-agent"] == USER_AGENT
    assert seen[0].headers["x-test"] == "1"
    assert "tok-123" not in repr(BearerAuth(_token))


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (httpx.ConnectError("refused"), "network"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] bad"), "certificate"),
    ],
)
def test_httpx_errors_become_transport_errors(error: Exception, words: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    async def go() -> None:
        async with _client(handler) as client:
            with transport_errors():
                await client.get("/secret-path?q=private")

    with pytest.raises(TransportError) as info:
        asyncio.run(go())
    assert info.value.__cause__ is error
    assert words in info.value.remedy.lower() or words in info.value.message.lower()
    assert "/secret-path" in info.value.message
    assert "private" not in str(info.value) and "tok-123" not in str(info.value)


def test_stream_converts_errors_raised_while_reading() -> None:
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b"first"
            raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Broken())

    got: list[bytes] = []

    async def go() -> None:
        async with _client(handler) as client, stream(client, "GET", "/big") as response:
            async for chunk in response.aiter_bytes():
                got.append(chunk)

    with pytest.raises(TransportError):
        asyncio.run(go())
    assert got == [b"first"]


MIME = (
    b"From: a@example.com\r\nTo: Bob <bob@example.com>\r\nCc: c@example.com\r\n"
    b"Subject: x\r\n\r\nbody\r\n"
)


def test_envelope_recipients_missing_from_headers_become_bcc() -> None:
    assert add_envelope_bcc(MIME, ["BOB@example.com", "c@example.com"]) is MIME
    out = add_envelope_bcc(MIME, ["bob@example.com", "audit@example.com", "zoë@example.com"])
    assert out.startswith("Bcc: audit@example.com, zoë@example.com\r\n".encode())
    assert out.endswith(MIME)
    unix = MIME.replace(b"\r\n", b"\n")
    assert add_envelope_bcc(unix, ["x@example.com"]).startswith(b"Bcc: x@example.com\n")
