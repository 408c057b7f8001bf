"""Saving: temp-then-rename, no truncated .eml on failure, broken MIME kept and reported."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import BinaryIO

import pytest

from mailgate.errors import MailgateError, TransportError
from mailgate.mail.save import DirectorySink, eml_filename, extract_attachments
from mailgate.protocols.base import MessageRef


def _mime_with(names: list[str]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content("body")
    for name in names:
        msg.add_attachment(
            b"data-" + name.encode(), maintype="application", subtype="octet-stream", filename=name
        )
    return msg.as_bytes()


def _save(directory: Path, data: bytes, fail_after: int | None = None) -> Path:
    async def fetch(handle: BinaryIO) -> int:
        if fail_after is not None:
            handle.write(data[:fail_after])
            raise TransportError("connection reset", "retry")
        handle.write(data)
        return len(data)

    sink = DirectorySink(directory)
    saved = asyncio.run(sink.fetch_one(MessageRef("INBOX", "1"), fetch, attachments=False))
    return saved.eml_path


def test_interrupted_fetch_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TransportError):
        _save(tmp_path, b"x" * 100, fail_after=10)
    assert list(tmp_path.iterdir()) == []


def test_same_name_never_overwrites(tmp_path: Path) -> None:
    first = _save(tmp_path, b"one")
    second = _save(tmp_path, b"two")
    assert (first.read_bytes(), second.read_bytes()) == (b"one", b"two")


def test_hostile_and_duplicate_attachment_names_stay_inside(tmp_path: Path) -> None:
    path = _save(
        tmp_path, _mime_with(["../../evil.sh", "/etc/passwd", "CON", "a.pdf", "a.pdf", "x" * 500])
    )
    files, problems = extract_attachments(path)
    assert problems == []
    folder = path.with_name(path.stem + ".attachments")
    assert all(f.parent == folder.resolve() for f in files)
    assert sorted(f.name for f in files)[:4] == ["_CON", "a-2.pdf", "a.pdf", "evil.sh"]
    assert len(files) == 6
    assert not (tmp_path.parent / "evil.sh").exists()


def test_broken_mime_is_kept_and_reported(tmp_path: Path) -> None:
    broken = (
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        b'Content-Type: application/pdf; name="a.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="a.pdf"\r\n\r\n!!!not base64'
    )
    path = _save(tmp_path, broken)
    files, problems = extract_attachments(path)
    assert path.read_bytes() == broken
    assert problems and all("defect" in p.lower() or "decoded" in p for p in problems)
    assert len(files) <= 1


def test_eml_filename() -> None:
    name = eml_filename("Re: Invoice/4711\r\n", datetime(2026, 11, 23, 4, 5, tzinfo=UTC), "12:345")
    assert name == "2026-11-23 0405 Re_ Invoice_4711 [12345].eml"
    assert eml_filename("", None, "").startswith("undated no subject")


def test_planted_symlink_attachment_dir_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = _save(out, _mime_with(["a.pdf"]))
    (out / (path.stem + ".attachments")).symlink_to(elsewhere)
    with pytest.raises(MailgateError, match="not a plain directory"):
        extract_attachments(path)
    assert list(elsewhere.iterdir()) == []
