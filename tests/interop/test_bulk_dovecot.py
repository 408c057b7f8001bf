"""fetch_many against Dovecot: .eml files and attachments, client and server split agree."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from mailgate.protocols.base import MessageRef, SearchCriteria
from mailgate.protocols.imap import bulk as imap_bulk
from mailgate.protocols.imap.bulk import fetch_many
from mailgate.protocols.imap.results import AttachmentPart
from tests.interop.conftest import run
from tests.interop.test_imap_dovecot import message, with_attachment


class Sink:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.done: list[tuple[str, str | None, int]] = []

    def open(self, ref: MessageRef, part: AttachmentPart | None) -> BinaryIO:
        name = ref.id.replace(":", "_") + (f"-{part.section}" if part else ".eml")
        return (self.out / (name + ".part")).open("wb")

    def complete(
        self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO, size: int
    ) -> None:
        dest.close()
        path = Path(dest.name)
        path.rename(path.with_suffix(""))
        self.done.append((ref.id, part.filename if part else None, size))

    def abort(self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO) -> None:
        dest.close()


@pytest.mark.parametrize("split_limit", ["default", "mixed"])
def test_fetch_many_eml_and_attachments(
    imap: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split_limit: str
) -> None:
    subject = f"Bulk {uuid.uuid4().hex[:8]}"
    folder = f"Bulk {uuid.uuid4().hex[:6]}"
    raws = [with_attachment(subject), message(subject), with_attachment(subject)]
    if split_limit == "mixed":
        # The messages with attachments count as too large to split in memory: they are only
        # streamed in the bulk FETCH and their attachments come from the server afterwards.
        assert len(raws[1]) < len(raws[0])
        monkeypatch.setattr(imap_bulk, "CLIENT_SPLIT_LIMIT", len(raws[1]))

    async def go() -> tuple[list[MessageRef], Sink, Sink, Sink]:
        async with imap() as box:
            await box.command("CREATE", await box.mailbox_argument(folder))
            for raw in raws:
                await box.append(folder, raw)
            refs = await box.search(folder, SearchCriteria())
            sinks = []
            for mime, attachments in ((True, False), (True, True), (False, True)):
                out = tmp_path / f"{mime}-{attachments}"
                out.mkdir()
                sink = Sink(out)
                await fetch_many(box, refs, sink, mime=mime, attachments=attachments, batch=2)
                sinks.append(sink)
            return refs, sinks[0], sinks[1], sinks[2]

    refs, eml_only, client, server = run(go())
    assert len(refs) == 3
    for ref, raw in zip(refs, raws, strict=True):
        name = ref.id.replace(":", "_") + ".eml"
        assert (eml_only.out / name).read_bytes() == raw
        assert (client.out / name).read_bytes() == raw
    attachments = [d for d in client.done if d[1] is not None]
    assert attachments == [d for d in server.done if d[1] is not None]
    assert [d[1] for d in attachments] == ["invoice 4711.pdf", "invoice 4711.pdf"]
    pdf = next(client.out.glob("*-2"))
    assert pdf.read_bytes() == b"%PDF-1.4\n"
    assert not list(tmp_path.rglob("*.part"))


class _FailingSink(Sink):
    def complete(
        self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO, size: int
    ) -> None:
        dest.close()
        raise OSError(28, "No space left on device")


def test_a_fetch_failing_mid_reply_gives_up_the_connection(imap: Any, tmp_path: Path) -> None:
    # The sink fails on the first of several messages in one UID FETCH: the rest of the reply
    # is unread, so the connection must not be used again (not even for LOGOUT, which would
    # read that rest as its own reply until its timeout), and closing it still works.
    folder = f"Fail {uuid.uuid4().hex[:6]}"

    async def go() -> tuple[bool, bool]:
        async with imap() as box:
            await box.command("CREATE", await box.mailbox_argument(folder))
            for i in range(4):
                await box.append(folder, message(f"Fail {i}"))
            refs = await box.search(folder, SearchCriteria())
            with pytest.raises(OSError, match="No space"):
                await fetch_many(box, refs, _FailingSink(tmp_path), batch=4)
            stream = box.connection.stream
            closed = stream.closed
        transport = stream.receiver.transport
        return closed, transport is not None and transport.is_closing()

    assert run(go()) == (True, True)
