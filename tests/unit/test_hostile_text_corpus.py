"""Regression corpus of hostile mail text: each sample through every place mailgate shows,
parses or names it.

Mail is hostile input: subjects, names, addresses and server text may carry terminal escapes,
control characters, path tricks and names that collide on case-insensitive file systems. Add a
sample here when a new trick turns up; every test below runs it.
"""

from __future__ import annotations

import asyncio
import re
import xml.etree.ElementTree as ET
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

import pytest

from mailgate.cli import _output
from mailgate.cli._output import escape, print_error, visible, warn
from mailgate.errors import MailgateError
from mailgate.mail.filenames import create_file, reserve_path, safe_filename
from mailgate.mail.save import DirectorySink, eml_filename, extract_attachments
from mailgate.protocols.base import MessageRef
from mailgate.protocols.ews.replies import parse_summaries, response_messages
from mailgate.sandbox.ews.envelope import envelope, m, response, response_message, sub, t

HOSTILE_TEXT = {
    "csi colour": "Invoice \x1b[31mOVERDUE\x1b[0m 4711",
    "csi clear screen": "\x1b[2J\x1b[HYour account is locked",
    "osc title": "\x1b]0;root@prod\x07 hello",
    "osc 52 clipboard": "hi\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07 there",
    "osc 8 hyperlink": "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\",
    "c1 csi": "Rechnung \x9b31m rot",
    "bell and backspace": "ding\x07\x07 wrong\x08\x08\x08\x08\x08right",
    "carriage return overwrite": "harmless\rEVIL    ",
    "nul and friends": "nul\x00 soh\x01 vt\x0b ff\x0c us\x1f",
    "del": "del\x7fete",
    "line feed": "two\nlines",
    "tab": "a\tb",
    "rich markup": "[bold red]not markup[/] \\[x]",
    "path tricks": "../../etc/passwd C:\\Windows\\x",
    "plain unicode": "Grüße, € 4711 😀",
}
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
XML_FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
KW: dict[str, Any] = {"mailbox": "servicedesk@contoso.example", "app_only": True}


@pytest.mark.parametrize("text", HOSTILE_TEXT.values(), ids=HOSTILE_TEXT.keys())
def test_visible_shows_every_control_and_keeps_the_rest(text: str) -> None:
    shown = visible(text)
    assert not CONTROL.search(shown)
    # Reversible: each control became its \\xNN escape, nothing else changed.
    assert re.sub(r"\\x([0-9a-f]{2})", lambda g: chr(int(g[1], 16)), shown) == text
    if not CONTROL.search(text):
        assert shown is text
    assert not CONTROL.search(escape(text))


def test_visible_forms() -> None:
    assert visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert visible("\x9b\x7f\x00\t\r\n") == "\\x9b\\x7f\\x00\\x09\\x0d\\x0a"
    assert visible("one\ntwo\r", lines=True) == "one\ntwo\\x0d"
    assert visible("Grüße 😀 \u00a0") == "Grüße 😀 \u00a0"


@pytest.mark.parametrize("text", HOSTILE_TEXT.values(), ids=HOSTILE_TEXT.keys())
def test_errors_and_warnings_never_reach_the_terminal_raw(
    text: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_output, "err_console", _output._LazyConsole(stderr=True))
    print_error(MailgateError(f"EWS error ({text}).", f"the server said {text}"))
    warn(f"failed 7 ({text}): {text}")
    err = capsys.readouterr().err
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]", err), repr(err)
    assert "not markup" in err or "not markup" not in text  # markup shown as text


def test_emoji_codes_in_mail_text_are_shown_as_written(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_output, "err_console", _output._LazyConsole(stderr=True))
    warn("Subject :warning: pay now :smiley:")
    assert ":warning: pay now :smiley:" in capsys.readouterr().err


def _exchange_reply(subject: str, name: str) -> bytes:
    # The sandbox's EWS writes the text as Exchange Online is reported to (references).
    message = ET.Element(t("Message"))
    sub(message, t("ItemId"), Id="AAMk1=", ChangeKey="CQ1")
    sub(message, t("Subject"), subject)
    mailbox = sub(sub(message, t("From")), t("Mailbox"))
    sub(mailbox, t("Name"), name)
    sub(mailbox, t("EmailAddress"), "billing@vendor.example")
    items = ET.Element(m("Items"))
    items.append(message)
    return envelope([response("GetItem", [response_message("GetItem", children=[items])])])


@pytest.mark.parametrize("text", HOSTILE_TEXT.values(), ids=HOSTILE_TEXT.keys())
def test_ews_summaries_read_every_sample(text: str) -> None:
    (summary,) = parse_summaries(response_messages(_exchange_reply(text, text), **KW), "Inbox")
    assert summary.subject == XML_FORBIDDEN.sub("", text).replace("\r", "\n")
    assert summary.from_address == "billing@vendor.example"


@pytest.mark.parametrize("text", HOSTILE_TEXT.values(), ids=HOSTILE_TEXT.keys())
def test_file_names_from_every_sample(text: str) -> None:
    for name in (safe_filename(text), eml_filename(text, None, "AAMk/1=")):
        assert not CONTROL.search(name) and "/" not in name and "\\" not in name
        assert name not in ("", ".", "..")


# Names that differ only in case collide on Windows shares and macOS; ß casefolds to ss.
CASE_NAMES = ["invoice.pdf", "INVOICE.pdf", "Invoice.PDF", "invoice-2.pdf", "straße.txt"]
CASE_SAVED = ["invoice.pdf", "INVOICE-2.pdf", "Invoice-3.PDF", "invoice-2-2.pdf", "straße.txt"]


def _casefold_unique(names: list[str]) -> bool:
    return len({n.casefold() for n in names}) == len(names)


def test_create_file_names_unique_ignoring_case(tmp_path: Path) -> None:
    taken: set[str] = set()
    made = [Path(create_file(tmp_path, n, b"x", taken=taken)).name for n in CASE_NAMES]
    assert made == CASE_SAVED
    assert Path(reserve_path(tmp_path, "STRASSE.txt", taken=taken)).name == "STRASSE-2.txt"
    # Without a taken set only the file system decides (what other callers keep).
    assert Path(create_file(tmp_path, "INVOICE.PDF", b"x")).name == "INVOICE.PDF"


def _mime_with(names: list[str]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content("body")
    for name in names:
        msg.add_attachment(
            name.encode(), maintype="application", subtype="octet-stream", filename=name
        )
    return msg.as_bytes()


def test_extracted_attachments_unique_ignoring_case_also_beside_older_files(
    tmp_path: Path,
) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(_mime_with(CASE_NAMES))
    (tmp_path / "m.attachments").mkdir()
    (tmp_path / "m.attachments" / "STRASSE.TXT").write_bytes(b"older")
    written, problems = extract_attachments(eml)
    assert problems == []
    names = [p.name for p in written]
    assert names == [*CASE_SAVED[:4], "straße-2.txt"]
    assert _casefold_unique([*names, "STRASSE.TXT"])
    assert [p.read_bytes() for p in written] == [n.encode() for n in CASE_NAMES]


def test_bulk_saved_attachments_unique_ignoring_case(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    sink.save(MessageRef("INBOX", "1:7"), _mime_with(CASE_NAMES), attachments=True)
    (saved,) = sink.saved.values()
    assert [Path(f).name for f in saved.attachment_files] == CASE_SAVED


def test_streamed_attachments_unique_ignoring_case(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path)
    ref = MessageRef("Inbox", "AAMk1=")

    async def fetch(handle: BinaryIO) -> int:
        return handle.write(b"Subject: x\r\n\r\nbody\r\n")

    asyncio.run(sink.fetch_one(ref, fetch, attachments=False))
    for name in CASE_NAMES:  # one part at a time, as attachments stream from Graph or EWS
        part = SimpleNamespace(filename=name)
        handle = sink.open(ref, part)
        handle.write(name.encode())
        sink.complete(ref, part, handle, len(name))
    files = sink.saved[ref.id].attachment_files
    assert [Path(f).name for f in files] == CASE_SAVED
