"""The import's attachment step (``DirectoryDestination``): a visible ``<stem>.attachments/``
is always complete, what a killed run left is reused or cleaned, large messages go through the
email package, and nothing is written outside the directory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mailgate.jobs.importing.files import DirectoryDestination, Fetched
from mailgate.jobs.importing.keys import SyncMode
from mailgate.protocols.base import MessageRef
from mailgate.protocols.imap.bulk import CLIENT_SPLIT_LIMIT
from tests.jobs.conftest import make_message


def fetched(spool: Path, raw: bytes, n: int, *, keep: bool = True) -> Fetched:
    temp = spool / f".mailgate-import-{os.getpid()}-t-{n}.part"
    temp.write_bytes(raw)
    return Fetched(
        MessageRef("INBOX", f"7:{n}"),
        str(temp),
        hashlib.sha256(raw).hexdigest(),
        len(raw),
        f"Invoice {n}",
        None,
        f"<m{n}@example.com>",
        raw if keep else None,
    )


@pytest.mark.parametrize("sync", [SyncMode.BATCH, SyncMode.MESSAGE])
def test_attachments_appear_whole_beside_the_message(tmp_path: Path, sync: SyncMode) -> None:
    out = tmp_path / "out"
    destination = DirectoryDestination(out, attachments=True, sync=sync)
    saved = destination.publish(fetched(out, make_message(1, attachment=True), 1), "tok1")
    (attachment,) = saved.attachments
    assert attachment == saved.eml.with_name(saved.eml.stem + ".attachments") / "invoice.pdf"
    assert attachment.read_bytes() == b"%PDF-1.4 fake"
    assert {p.name for p in out.iterdir()} == {saved.eml.name, attachment.parent.name}
    assert str(attachment) in map(str, destination.written)
    plain = destination.publish(fetched(out, make_message(2), 2), "tok2")
    assert plain.attachments == [] and not list(out.glob("*.attachments.part"))


def test_a_killed_runs_directories_are_reused_or_cleaned(tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = DirectoryDestination(out, attachments=True, sync=SyncMode.BATCH)
    raw = make_message(3, attachment=True)
    saved = first.publish(fetched(out, raw, 3), "tok3")
    # As a run killed before recording would leave it: the .eml and its complete directory,
    # plus another message's half-written staging directory.
    stem = "undated Invoice 4 [tok4]"
    staging = out / f".{stem}.attachments.part"
    (staging / "files").mkdir(parents=True)
    (staging / "files" / "half.pdf").write_bytes(b"half")
    again = DirectoryDestination(out, attachments=True, sync=SyncMode.BATCH)
    reused = again.publish(fetched(out, raw, 3), "tok3")
    assert reused.existing and reused.file == saved.file
    assert reused.attachments == saved.attachments
    other = again.publish(fetched(out, make_message(4, attachment=True), 4), "tok4")
    assert [p.name for p in other.attachments] == ["invoice.pdf"]
    assert not staging.exists()


def test_a_large_message_is_split_by_the_email_package(tmp_path: Path) -> None:
    out = tmp_path / "out"
    destination = DirectoryDestination(out, attachments=True, sync=SyncMode.BATCH)
    raw = make_message(5, size=CLIENT_SPLIT_LIMIT + 1, attachment=True)
    item = fetched(out, raw, 5, keep=False)
    saved = destination.publish(item, "tok5")
    (attachment,) = saved.attachments
    assert attachment.read_bytes() == b"%PDF-1.4 fake"
    assert attachment.parent.name == saved.eml.stem + ".attachments"
    assert {p.name for p in out.iterdir()} == {saved.eml.name, attachment.parent.name}


def test_hostile_attachment_names_stay_inside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    destination = DirectoryDestination(out, attachments=True, sync=SyncMode.BATCH)
    raw = make_message(6, attachment=True).replace(b"invoice.pdf", b"../../evil.pdf")
    (attachment,) = destination.publish(fetched(out, raw, 6), "tok6").attachments
    assert attachment.name == "evil.pdf" and attachment.parent.parent == out.resolve()
    assert not (tmp_path / "evil.pdf").exists()
