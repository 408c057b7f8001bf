"""Hostile attachment names never escape the target directory and never overwrite."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgate.mail.filenames import MAX_NAME_BYTES, publish_file, reserve_path, safe_filename

HOSTILE = [
    "../../x",
    "..\\..\\x",
    "/etc/passwd",
    "C:\\Windows\\system32\\cmd.exe",
    "a\x00b.txt",
    "CON",
    "con.txt",
    "nul",
    "LPT1.log",
    "x" * 500,
    "é" * 300 + ".pdf",
    ".",
    "..",
    "",
    None,
    "   ",
    "report\r\n.pdf",
    "\u202ecod.exe",
    "a/b/c/../../d",
    "~/.ssh/authorized_keys",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_become_one_safe_component(name: str | None) -> None:
    safe = safe_filename(name)
    assert safe and safe not in (".", "..")
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert all(ch.isprintable() for ch in safe)
    assert len(safe.encode()) <= MAX_NAME_BYTES
    assert safe.split(".")[0].lower() not in ("con", "nul", "lpt1")


def test_ordinary_names_are_kept() -> None:
    assert safe_filename("Invoice 2026-11.pdf") == "Invoice 2026-11.pdf"
    assert safe_filename("Übersicht.xlsx") == "Übersicht.xlsx"
    assert safe_filename("../../x") == "x"
    assert safe_filename("x" * 500 + ".pdf").endswith(".pdf")


@pytest.mark.parametrize("name", HOSTILE)
def test_reserve_path_stays_inside_and_never_overwrites(tmp_path: Path, name: str | None) -> None:
    target = tmp_path / "out"
    target.mkdir()
    first = reserve_path(target, name or "")
    second = reserve_path(target, name or "")
    assert first != second
    for path in (first, second):
        assert path.parent == target.resolve()
        assert path.exists() and path.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_duplicates_get_numbered(tmp_path: Path) -> None:
    names = [reserve_path(tmp_path, "a.pdf").name for _ in range(3)]
    assert names == ["a.pdf", "a-2.pdf", "a-3.pdf"]


def test_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("keep")
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").symlink_to(outside)
    path = reserve_path(target, "a.txt")
    assert path.name == "a-2.txt"
    assert outside.read_text() == "keep"


def test_publish_never_overwrites_nor_follows_a_planted_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("keep")
    target = tmp_path / "out"
    target.mkdir()
    (target / "m.eml").symlink_to(outside)
    temp = target / ".part"
    temp.write_bytes(b"message")
    final = publish_file(temp, target, "m.eml")
    assert final.name == "m-2.eml" and final.read_bytes() == b"message"
    assert not temp.exists() and outside.read_text() == "keep"
    other = target / ".part2"
    other.write_bytes(b"second")
    assert publish_file(other, target, "../../m.eml").name == "m-3.eml"
