"""The ``Mailbox`` interface's own bulk fetch: sizes and messages one at a time, over a fake."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Any, BinaryIO, ClassVar

import pytest

from mailgate.errors import TransportError
from mailgate.protocols.base import (
    BulkFetch,
    Mailbox,
    MessageRef,
    MessageSummary,
    MessageTooLarge,
    Operation,
    Protocol,
    SizeCheck,
)

LIMIT = 10


class FakeMailbox(Mailbox):
    """Messages by id; sizes as its headers report them (None: not reported)."""

    protocol: ClassVar[Protocol] = Protocol.EWS
    operations: ClassVar[frozenset[Operation]] = frozenset({Operation.FETCH})

    def __init__(self, messages: dict[str, bytes], sizes: dict[str, int | None]) -> None:
        self.messages = messages
        self.sizes = sizes
        self.calls: list[str] = []

    async def connect(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def fetch_headers(self, refs: Sequence[MessageRef]) -> list[MessageSummary]:
        self.calls.append("headers")
        return [
            MessageSummary(ref, "subject", "a@example.com", size=self.sizes[ref.id])
            for ref in refs
            if ref.id in self.sizes  # a message gone meanwhile is left out
        ]

    async def fetch_mime(self, ref: MessageRef, dest: BinaryIO) -> int:
        self.calls.append(f"mime {ref.id}")
        if ref.id not in self.messages:
            raise TransportError("connection lost", "run again")
        data = self.messages[ref.id]
        for start in range(0, len(data), 4):  # streamed in chunks, as adapters do
            dest.write(data[start : start + 4])
        return len(data)


class Sink:
    """A sink that refuses messages past a per-id limit, as the import's does."""

    def __init__(self, limits: dict[str, int]) -> None:
        self.limits = limits
        self.events: list[tuple[str, str]] = []
        self.files: dict[str, bytes] = {}

    def open(self, ref: MessageRef, part: Any | None) -> BinaryIO:
        assert part is None
        self.events.append(("open", ref.id))
        limit = self.limits.get(ref.id)

        class Limited(io.BytesIO):
            def write(self, data: Any) -> int:
                if limit is not None and self.tell() + len(data) > limit:
                    raise MessageTooLarge(limit)
                return super().write(data)

        return Limited()

    def complete(self, ref: MessageRef, part: Any | None, dest: BinaryIO, size: int) -> None:
        assert isinstance(dest, io.BytesIO) and size == len(dest.getvalue())
        self.events.append(("complete", ref.id))
        self.files[ref.id] = dest.getvalue()

    def abort(self, ref: MessageRef, part: Any | None, dest: BinaryIO) -> None:
        self.events.append(("abort", ref.id))


def refs(*ids: str) -> list[MessageRef]:
    return [MessageRef("Inbox", i) for i in ids]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_default_is_one_connection_and_closes_quietly() -> None:
    box = FakeMailbox({}, {})

    async def go() -> BulkFetch:
        async with await box.bulk_fetch(100, connections=4, batch=10, heavy=True) as fetch:
            assert type(fetch) is BulkFetch and fetch.mailbox is box
            return fetch

    assert run(go()).connections == 1
    assert run(box.uidvalidity("Inbox")) == 0


def test_sizes_over_the_limit_from_the_headers() -> None:
    box = FakeMailbox({}, {"a": 5, "b": 11, "c": None, "d": 10})
    check = run(BulkFetch(box).sizes_over(refs("a", "b", "c", "d", "gone"), LIMIT))
    assert check == SizeCheck(over={"b": 11}, unknown=frozenset({"c", "gone"}))
    assert box.calls == ["headers"]


def test_a_protocol_without_sizes_is_not_asked() -> None:
    box = FakeMailbox({}, {"a": 50})
    box.reports_sizes = False  # type: ignore[misc]
    check = run(BulkFetch(box).sizes_over(refs("a", "b"), LIMIT))
    assert check == SizeCheck(over={}, unknown=frozenset({"a", "b"}))
    assert box.calls == []


def test_fetch_streams_each_message_and_sets_aside_those_refused() -> None:
    box = FakeMailbox({"a": b"small", "b": b"x" * 30, "c": b"also small"}, {})
    sink = Sink(limits={"b": LIMIT, "c": LIMIT})
    too_large = run(BulkFetch(box).fetch(refs("a", "b", "c"), sink))
    assert [r.id for r in too_large] == ["b"]
    assert sink.files == {"a": b"small", "c": b"also small"}
    assert sink.events == [
        ("open", "a"),
        ("complete", "a"),
        ("open", "b"),
        ("abort", "b"),
        ("open", "c"),
        ("complete", "c"),
    ]
    assert box.calls == ["mime a", "mime b", "mime c"]


def test_any_other_failure_aborts_the_open_file_and_raises() -> None:
    box = FakeMailbox({"a": b"first"}, {})
    sink = Sink(limits={})
    with pytest.raises(TransportError):
        run(BulkFetch(box).fetch(refs("a", "gone", "never"), sink))
    assert sink.events == [("open", "a"), ("complete", "a"), ("open", "gone"), ("abort", "gone")]
    assert sink.files == {"a": b"first"}  # completed before: stays completed
