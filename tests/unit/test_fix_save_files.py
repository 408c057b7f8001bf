"""Saving never leaves ``.part`` files, survives leftovers and link-less file systems, and turns
file-system failures into mailgate errors that name the path."""

from __future__ import annotations

import asyncio
import errno
import io
import os
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import mailgate.mail.save as save_module
from mailgate.errors import MailgateError
from mailgate.mail.filenames import publish_file
from mailgate.mail.save import DirectorySink, extract_attachments
from mailgate.protocols.base import MessageRef
from mailgate.protocols.imap.bulk import _Target
from mailgate.protocols.imap.results import AttachmentPart

MESSAGE = b"Subject: hello\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
WITH_ATTACHMENT = (
    b'Subject: a\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain\r\n\r\ntext\r\n--b\r\n"
    b'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="x.bin"'
    b"\r\n\r\nDATA\r\n--b--\r\n"
)


def _save(directory: Path, data: bytes = MESSAGE, attachments: bool = False) -> Path:
    async def fetch(handle: BinaryIO) -> int:
        handle.write(data)
        return len(data)

    sink = DirectorySink(directory)
    saved = asyncio.run(sink.fetch_one(MessageRef("INBOX", "1"), fetch, attachments))
    return saved.eml_path


def test_failing_complete_removes_the_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Path:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(save_module, "publish_file", refuse)
    with pytest.raises(MailgateError, match="Permission denied") as caught:
        _save(tmp_path)
    assert str(tmp_path) in caught.value.message and caught.value.remedy
    assert list(tmp_path.iterdir()) == []


def test_leftover_part_file_with_the_same_pid_is_kept_and_avoided(tmp_path: Path) -> None:
    leftover = tmp_path / f".mailgate-{os.getpid()}-1.part"
    leftover.write_bytes(b"from an earlier run")
    path = _save(tmp_path)
    assert path.read_bytes() == MESSAGE
    assert leftover.read_bytes() == b"from an earlier run"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([leftover.name, path.name])


def test_publish_without_hard_links_renames_onto_a_reserved_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(_src: Any, _dst: Any) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    (tmp_path / "a.eml").write_bytes(b"older")
    temp = tmp_path / ".t.part"
    temp.write_bytes(b"new")
    final = publish_file(temp, tmp_path, "a.eml")
    assert final.name == "a-2.eml" and final.read_bytes() == b"new"
    assert (tmp_path / "a.eml").read_bytes() == b"older"
    assert not temp.exists()
    # The whole save path works on such a file system too.
    saved = _save(tmp_path / "out")
    assert saved.read_bytes() == MESSAGE
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_save_into_a_path_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"")
    with pytest.raises(MailgateError) as caught:
        DirectorySink(target)
    assert str(target) in caught.value.message and "directory" in caught.value.remedy
    with pytest.raises(MailgateError) as under:
        DirectorySink(target / "sub")
    assert str(target / "sub") in under.value.message and "is a file" in under.value.remedy
    assert caught.value.exit_code == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory modes")
def test_save_into_a_directory_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(MailgateError, match="writable"):
            _save(locked)
        with pytest.raises(MailgateError, match="writable"):
            DirectorySink(locked / "sub")
    finally:
        locked.chmod(0o700)


def test_disk_full_is_a_mailgate_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    monkeypatch.setattr(save_module, "_open_fd", lambda _p, _f: os.open("/dev/full", os.O_WRONLY))
    with pytest.raises(MailgateError, match="free space"):
        _save(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_attachment_write_failure_is_a_mailgate_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path, WITH_ATTACHMENT)

    def full(*_args: Any, **_kwargs: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(save_module, "reserve_path", full)
    with pytest.raises(MailgateError, match="free space") as caught:
        extract_attachments(path)
    assert "x.bin" not in caught.value.message and ".attachments" in caught.value.message


class _FailingSink:
    """A sink whose complete fails, recording what the bulk fetcher asks of it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, AttachmentPart | None]] = []

    def open(self, ref: MessageRef, part: AttachmentPart | None) -> BinaryIO:
        self.calls.append(("open", part))
        return io.BytesIO()

    def complete(
        self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO, size: int
    ) -> None:
        self.calls.append(("complete", part))
        raise MailgateError("disk full", "free space")

    def abort(self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO) -> None:
        self.calls.append(("abort", part))


def test_bulk_target_aborts_when_complete_fails() -> None:
    sink = _FailingSink()
    target = _Target(sink, MessageRef("INBOX", "1:1"), None, len(MESSAGE))
    with pytest.raises(MailgateError):
        target.write(MESSAGE)
    assert sink.calls == [("open", None), ("complete", None), ("abort", None)]
    assert target.done  # so the fetch loop does not abort it a second time
    empty = _FailingSink()
    with pytest.raises(MailgateError):
        _Target(empty, MessageRef("INBOX", "1:2"), None, 0)
    assert empty.calls == [("open", None), ("complete", None), ("abort", None)]


def test_bulk_split_attachment_aborted_when_its_complete_fails() -> None:
    class SplitFailing(_FailingSink):
        def complete(
            self, ref: MessageRef, part: AttachmentPart | None, dest: BinaryIO, size: int
        ) -> None:
            self.calls.append(("complete", part))
            if part is not None:
                raise MailgateError("disk full", "free space")

    sink = SplitFailing()
    target = _Target(sink, MessageRef("INBOX", "1:1"), None, len(WITH_ATTACHMENT), split=True)
    with pytest.raises(MailgateError):
        target.write(WITH_ATTACHMENT)
    kinds = [(kind, part is None) for kind, part in sink.calls]
    assert kinds == [
        ("open", True),
        ("complete", True),
        ("open", False),
        ("complete", False),
        ("abort", False),
    ]


def test_bulk_into_directory_sink_leaves_no_part_file_when_publish_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Path:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(save_module, "publish_file", refuse)
    sink = DirectorySink(tmp_path)
    target = _Target(sink, MessageRef("INBOX", "1:1"), None, len(MESSAGE))
    with pytest.raises(MailgateError, match="Input/output error"):
        target.write(MESSAGE)
    assert list(tmp_path.iterdir()) == []
