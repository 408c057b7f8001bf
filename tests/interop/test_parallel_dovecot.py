"""Helper connections (imap_parallel) against Dovecot: shared batches, fallbacks, failures."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mailgate.errors import MailgateError, TransportError
from mailgate.interop.dovecot import big_message
from mailgate.jobs.importing.files import FetchSink, SyncMode
from mailgate.mail.save import DirectorySink
from mailgate.protocols.base import MailAuthenticationError, MessageRef, SearchCriteria
from mailgate.protocols.imap.adapter import ImapMailbox
from mailgate.protocols.imap.bulk import fetch_many
from mailgate.protocols.imap.parallel import FetchPool
from mailgate.testing import SandboxController
from tests.interop.conftest import run
from tests.interop.test_imap_dovecot import message, with_attachment

COUNT = 9


def _load(box: ImapMailbox, folder: str, raws: list[bytes]) -> Any:
    async def go() -> list[MessageRef]:
        await box.command("CREATE", await box.mailbox_argument(folder))
        for raw in raws:
            await box.append(folder, raw)
        return await box.search(folder, SearchCriteria())

    return go()


@pytest.fixture
def helped(imap: Any, idp: SandboxController) -> Callable[..., ImapMailbox]:
    """An IMAP mailbox whose TLS trust helper processes can rebuild (its CA file)."""
    return partial(imap, ca_files=[idp.ca_file])


def test_get_save_shares_batches_with_a_helper(
    helped: Callable[..., ImapMailbox], tmp_path: Path
) -> None:
    folder = f"Par {uuid.uuid4().hex[:6]}"
    raws = [with_attachment(f"P{i}") if i % 2 else message(f"P{i}") for i in range(COUNT)]

    async def go() -> tuple[list[MessageRef], DirectorySink, FetchPool, int]:
        async with helped() as box:
            refs = await _load(box, folder, raws)
            sink = DirectorySink(tmp_path / "out")
            async with await FetchPool.start(box, 1) as pool:
                handled = await fetch_many(box, refs, sink, attachments=True, batch=2, pool=pool)
            return refs, sink, pool, handled

    refs, sink, pool, handled = run(go())
    assert handled == COUNT and pool.dropped == []
    assert 0 < pool.helped < COUNT  # both connections fetched
    assert sorted(sink.saved) == sorted(r.id for r in refs)  # every message once
    saved = sorted(p.read_bytes() for p in (tmp_path / "out").glob("*.eml"))
    assert saved == sorted(raws)
    pdfs = list((tmp_path / "out").glob("*.attachments/invoice 4711.pdf"))
    assert len(pdfs) == COUNT // 2 and all(p.read_bytes() == b"%PDF-1.4\n" for p in pdfs)
    # The helper's messages come back with their summaries and attachment paths.
    assert all(s.summary is not None and s.summary.subject for s in sink.saved.values())
    assert sum(len(s.attachments) for s in sink.saved.values()) == COUNT // 2
    assert not list((tmp_path / "out").glob(".mailgate-*"))  # no temporary file left


def test_import_sink_through_a_helper(helped: Callable[..., ImapMailbox], tmp_path: Path) -> None:
    folder = f"Par {uuid.uuid4().hex[:6]}"
    raws = [message(f"I{i}") for i in range(COUNT)]
    seen: list[str] = []

    async def go() -> FetchSink:
        async with helped() as box:
            refs = await _load(box, folder, raws)
            sink = FetchSink(
                tmp_path,
                lambda item: seen.append(item.ref.id),
                keep_copies=True,
                sync=SyncMode.BATCH,
            )
            async with await FetchPool.start(box, 1) as pool:
                await fetch_many(box, refs, sink, batch=COUNT, pool=pool)
            assert pool.helped == COUNT // 2  # one batch cut in two: 5 here, 4 there
            return sink

    sink = run(go())
    assert sorted(seen) == sorted(sink.fetched) and len(seen) == COUNT
    assert sorted(item.read() for item in sink.fetched.values()) == sorted(raws)


def test_a_helper_that_cannot_sign_in_is_dropped(
    helped: Callable[..., ImapMailbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = f"Par {uuid.uuid4().hex[:6]}"
    raws = [message(f"D{i}") for i in range(COUNT)]

    async def bad_token(self: ImapMailbox) -> str:
        return "not-a-token"

    async def go() -> tuple[DirectorySink, FetchPool]:
        async with helped() as box:
            refs = await _load(box, folder, raws)
            monkeypatch.setattr(ImapMailbox, "access_token", bad_token)
            sink = DirectorySink(tmp_path / "out")
            async with await FetchPool.start(box, 1) as pool:
                await fetch_many(box, refs, sink, batch=2, pool=pool)
            return sink, pool

    sink, pool = run(go())
    # The fetch went on with this connection alone: nothing lost, nothing twice.
    assert len(sink.saved) == COUNT
    assert sorted(p.read_bytes() for p in (tmp_path / "out").glob("*.eml")) == sorted(raws)
    assert pool.size == 0 and len(pool.dropped) == 1
    assert isinstance(pool.dropped[0], MailAuthenticationError)
    assert "refused the token" in str(pool.dropped[0])


class _UnwritableInHelper(DirectorySink):
    """A sink whose helper copy must write into a path that is a file, not a directory."""

    def __init__(self, directory: Path, blocked: Path) -> None:
        super().__init__(directory)
        self.blocked = blocked

    def recipe(self) -> Callable[[], DirectorySink]:
        return partial(DirectorySink, self.blocked)


class _HelperDies(DirectorySink):
    def recipe(self) -> Callable[[], Any]:
        return partial(os._exit, 3)


@pytest.mark.parametrize("failure", ["error", "dies"])
def test_a_helper_failing_mid_fetch_fails_the_fetch(
    helped: Callable[..., ImapMailbox], tmp_path: Path, failure: str
) -> None:
    folder = f"Par {uuid.uuid4().hex[:6]}"
    raws = [message(f"F{i}") for i in range(COUNT)]
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")

    async def go() -> None:
        async with helped() as box:
            refs = await _load(box, folder, raws)
            out = tmp_path / "out"
            sink = _UnwritableInHelper(out, blocked) if failure == "error" else _HelperDies(out)
            async with await FetchPool.start(box, 1) as pool:
                await fetch_many(box, refs, sink, batch=2, pool=pool)

    expected = MailgateError if failure == "error" else TransportError
    with pytest.raises(expected) as caught:
        run(go())
    message_text = str(caught.value)
    if failure == "error":
        assert "a-file" in message_text and "Traceback" not in message_text
    else:
        assert "helper connection" in message_text
    # No half-written message is left looking whole.
    for path in (tmp_path / "out").glob("*.eml"):
        assert path.read_bytes() in raws


def test_a_helper_that_cannot_be_spawned_leaves_the_others_working(
    helped: Callable[..., ImapMailbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The second spawn fails (EMFILE): the first helper stays and is used, none is leaked.
    import asyncio
    import errno

    spawn = asyncio.create_subprocess_exec
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.EMFILE, "Too many open files")
        return await spawn(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", flaky)
    folder = f"Spawn {uuid.uuid4().hex[:6]}"
    raws = [message(f"S{i}") for i in range(COUNT)]

    async def go() -> tuple[DirectorySink, FetchPool, int, list[Any]]:
        async with helped() as box:
            refs = await _load(box, folder, raws)
            sink = DirectorySink(tmp_path / "out")
            async with await FetchPool.start(box, 3) as pool:
                handled = await fetch_many(box, refs, sink, batch=2, pool=pool)
            return sink, pool, handled, [h.process for h in pool.helpers]

    sink, pool, handled, processes = run(go())
    assert len(calls) == 2 and pool.size == 1  # no third attempt after the failure
    assert handled == COUNT and len(sink.saved) == COUNT and pool.helped > 0
    assert all(p.returncode is not None for p in processes)  # stopped with the pool


class _FailsWhileHelperWrites(DirectorySink):
    """Fails in this process as soon as a helper is half-way through writing a big message."""

    def _wait_for_helper_file(self) -> None:
        import time

        ours = f".mailgate-{os.getpid()}-"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # Blocking on purpose: the helper is another process and goes on meanwhile.
            if any(not p.name.startswith(ours) for p in self.directory.glob(".mailgate-*.part")):
                raise MailgateError("disk full (simulated)", "free space")
            time.sleep(0.001)
        raise AssertionError("the helper never started writing")

    def open(self, ref: MessageRef, part: Any | None) -> Any:
        self._wait_for_helper_file()
        return super().open(ref, part)

    def save(self, ref: MessageRef, data: bytes, attachments: bool) -> None:
        self._wait_for_helper_file()


def test_a_busy_helper_stopped_by_a_failing_run_leaves_no_partial_file(
    helped: Callable[..., ImapMailbox], tmp_path: Path
) -> None:
    # Each connection gets one 60 MB message; this process fails while the helper streams its
    # own to a temporary file: the pool's SIGTERM cancels the helper's batch, which removes it.
    folder = f"Busy {uuid.uuid4().hex[:6]}"
    raws = [big_message(60 * 2**20), big_message(60 * 2**20 + 7)]
    out = tmp_path / "out"

    async def go() -> None:
        async with helped() as box:
            refs = await _load(box, folder, raws)
            async with await FetchPool.start(box, 1) as pool:
                await fetch_many(box, refs, _FailsWhileHelperWrites(out), batch=1, pool=pool)

    with pytest.raises(MailgateError, match="disk full"):
        run(go())
    # The helper abandoned its message at once (before, it was left to finish it within the
    # stop's 5 s grace and killed past that, leaving its temporary file behind).
    assert list(out.iterdir()) == []
