"""The bulk path's whole-message saving: same files, names and safety as the streamed path."""

from __future__ import annotations

import asyncio
import errno
import os
from email.message import EmailMessage
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import mailgate.mail.save as save_module
from mailgate.errors import MailgateError
from mailgate.mail.save import DirectorySink
from mailgate.protocols.base import MessageRef
from mailgate.protocols.imap.bulk import WholeMessageSink, _Target


def _mime_with(names: list[str]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "Quarterly / report"
    msg["Date"] = "Mon, 01 Jan 2024 10:05:00 +0000"
    msg.set_content("body")
    for name in names:
        msg.add_attachment(
            b"data-" + name.encode(), maintype="application", subtype="octet-stream", filename=name
        )
    return msg.as_bytes()


def _bulk(sink: DirectorySink, uid: int, data: bytes, split: bool) -> None:
    """What the bulk fetch does with one literal that arrives in three reads."""
    target = _Target(sink, MessageRef("INBOX", f"7:{uid}"), None, len(data), split, whole=True)
    third = len(data) // 3 + 1
    for start in range(0, len(data), third):
        target.write(data[start : start + third])
    assert target.done


def _streamed(sink: DirectorySink, uid: int, data: bytes) -> Path:
    async def fetch(handle: BinaryIO) -> int:
        handle.write(data)
        return len(data)

    saved = asyncio.run(sink.fetch_one(MessageRef("INBOX", f"7:{uid}"), fetch, False))
    return saved.eml_path


def test_directory_sink_takes_whole_messages() -> None:
    assert isinstance(DirectorySink.__new__(DirectorySink), WholeMessageSink)


def test_whole_and_streamed_give_the_same_file(tmp_path: Path) -> None:
    data = _mime_with(["a.pdf"])
    whole, streamed = DirectorySink(tmp_path / "w"), DirectorySink(tmp_path / "s")
    _bulk(whole, 1, data, split=False)
    path = _streamed(streamed, 1, data)
    saved = whole.saved["7:1"]
    assert saved.eml_path.name == path.name == "2024-01-01 1005 Quarterly _ report [71].eml"
    assert saved.eml_path.read_bytes() == data and saved.size == len(data)
    assert saved.summary == streamed.saved["7:1"].summary
    assert [p.name for p in (tmp_path / "w").iterdir()] == [path.name]  # no .part left


def test_same_name_never_overwrites(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    _bulk(sink, 1, b"Subject: x\r\n\r\none", split=False)
    (tmp_path / "undated x [71]-2.eml").write_bytes(b"not ours")
    again = DirectorySink(tmp_path)
    _bulk(again, 1, b"Subject: x\r\n\r\ntwo", split=False)
    assert sink.saved["7:1"].eml_path.read_bytes() == b"Subject: x\r\n\r\none"
    assert again.saved["7:1"].eml_path.name == "undated x [71]-3.eml"
    assert (tmp_path / "undated x [71]-2.eml").read_bytes() == b"not ours"


def test_hostile_attachment_names_stay_inside(tmp_path: Path) -> None:
    names = ["../../evil.sh", "/etc/passwd", "CON", "a.pdf", "a.pdf", "x" * 500, "nul\x00.txt"]
    sink = DirectorySink(tmp_path / "out")
    _bulk(sink, 1, _mime_with(names), split=True)
    saved = sink.saved["7:1"]
    folder = saved.eml_path.with_name(saved.eml_path.stem + ".attachments")
    assert saved.problems == []
    assert len(saved.attachments) == len(names)
    assert all(f.parent == folder for f in saved.attachments)
    assert sorted(f.name for f in saved.attachments)[:4] == ["_CON", "a-2.pdf", "a.pdf", "evil.sh"]
    assert (folder / "a-2.pdf").read_bytes() == b"data-a.pdf"
    assert not (tmp_path / "evil.sh").exists()


def test_broken_mime_is_saved_raw_and_reported(tmp_path: Path) -> None:
    broken = (
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        b'Content-Type: application/pdf; name="a.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="a.pdf"\r\n\r\n!!!not base64'
    )
    sink = DirectorySink(tmp_path)
    _bulk(sink, 1, broken, split=True)
    saved = sink.saved["7:1"]
    assert saved.eml_path.read_bytes() == broken
    assert saved.problems and all("defect" in p.lower() or "decoded" in p for p in saved.problems)


def test_failed_publish_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> Path:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(save_module, "publish_at", refuse)
    with pytest.raises(MailgateError, match="Input/output error"):
        _bulk(DirectorySink(tmp_path), 1, b"Subject: x\r\n\r\nbody", split=False)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_is_a_mailgate_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    real_open = save_module._open_fd
    opened: list[Path] = []

    def full(path: Path, flags: int) -> int:
        opened.append(path)
        os.close(real_open(path, flags))  # the temporary file exists, as on a full disk
        return real_open(Path("/dev/full"), save_module._TRUNCATE)

    monkeypatch.setattr(save_module, "_open_fd", full)
    with pytest.raises(MailgateError, match="free space"):
        _bulk(DirectorySink(tmp_path), 1, b"Subject: x\r\n\r\nbody", split=False)
    assert opened and list(tmp_path.iterdir()) == []
