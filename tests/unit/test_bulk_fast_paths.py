"""The bulk-save fast paths answer exactly as the general code they short-cut (seeded fuzz).

Each fast path skips work only when it cannot change the answer; these tests feed both paths
many small strings built from the characters that matter (CR, LF, quotes, ``;``, slashes,
non-ASCII, runs of white space) and compare.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

from mailgate.mail.attachments import (
    _split_params,
    _split_params_scanning,
    split_attachments_checked,
    split_head,
)
from mailgate.mail.filenames import MAX_NAME_BYTES, _truncate, safe_filename
from mailgate.mail.save import eml_filename

RUNS = 20_000


def strings(rng: random.Random, alphabet: list[str], longest: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(longest + 1)))


def test_split_head_cuts_where_the_general_pattern_does() -> None:
    general = re.compile(rb"\r?\n\r?\n")
    rng = random.Random(1)
    for _ in range(RUNS):
        part = strings(rng, ["\r", "\n", "a", " ", ":"], 16).encode()
        if part.startswith((b"\r\n", b"\n")):
            expected = (b"", part[2 if part.startswith(b"\r\n") else 1 :])
        else:
            match = general.search(part)
            expected = (part[: match.start()], part[match.end() :]) if match else (part, b"")
        assert split_head(part) == expected, part


def test_split_params_fast_path_matches_the_quote_aware_scan() -> None:
    rng = random.Random(2)
    for _ in range(RUNS):
        value = strings(rng, ["a", "B", ";", '"', "=", " ", "\t"], 14)
        assert _split_params(value) == _split_params_scanning(value), value


def test_split_params_keeps_semicolons_inside_quotes() -> None:
    assert _split_params('a/b; name="x;y.pdf"; c=d') == [
        ("a/b", ""),
        ("name", '"x;y.pdf"'),
        ("c", "d"),
    ]


def test_messages_with_lf_only_and_mixed_line_ends_still_split() -> None:
    for newline in (b"\r\n", b"\n"):
        raw = newline.join(
            [
                b'Content-Type: multipart/mixed; boundary="B"',
                b"",
                b"--B",
                b"Content-Type: text/plain",
                b"",
                b"hello",
                b"--B",
                b'Content-Type: application/pdf; name="a;b.pdf"',
                b"Content-Transfer-Encoding: base64",
                b"",
                b"aGVsbG8=",
                b"--B--",
                b"",
            ]
        )
        ((part, data),), problems = split_attachments_checked(raw)
        assert (part.section, part.filename, data, problems) == ("2", "a;b.pdf", b"hello", [])


def _reference_truncate(stem: str, ext: str) -> tuple[str, str]:
    if len(ext.encode("utf-8")) > 20:
        ext = ""
    encoded = stem.encode("utf-8")[: MAX_NAME_BYTES - len(ext.encode("utf-8"))]
    return encoded.decode("utf-8", errors="ignore").rstrip(" ."), ext


def test_truncate_fast_path_matches_the_byte_budget() -> None:
    rng = random.Random(3)
    for _ in range(RUNS // 4):
        stem = strings(rng, ["a", "é", " ", "."], 260)
        ext = "." + strings(rng, ["p", "d", "é"], 24)
        assert _truncate(stem, ext) == _reference_truncate(stem, ext), (stem, ext)


def test_safe_filename_of_ascii_and_non_ascii_names() -> None:
    assert safe_filename("a/b\\c.pdf") == "c.pdf"
    assert safe_filename("e\u0301.txt") == "\u00e9.txt"  # NFC still applied to non-ASCII
    assert safe_filename("x" * 300 + ".pdf") == "x" * (MAX_NAME_BYTES - 4) + ".pdf"
    assert safe_filename("CON.txt") == "_CON.txt"


def test_eml_filename_short_id_and_title_as_the_regex_forms() -> None:
    rng = random.Random(4)
    date = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
    for _ in range(RUNS // 4):
        subject = strings(rng, ["a", " ", "  ", "\t", "\n", "/", "\u3000", "é"], 12)
        ref_id = strings(rng, ["1", ":", "A", "-", "=", "é", "٣"], 12)
        short = re.sub(r"[^A-Za-z0-9]", "", ref_id)[-8:] or "msg"
        title = re.sub(r"\s+", " ", (subject or "no subject").replace("/", "_")).strip()[:80]
        expected = safe_filename(f"2026-11-23 0905 {title} [{short}].eml", "message.eml")
        assert eml_filename(subject, date, ref_id) == expected, (subject, ref_id)
