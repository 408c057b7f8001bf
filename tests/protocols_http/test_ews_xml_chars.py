"""EWS requests stay well-formed XML whatever characters a search term or id carries."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from mailgate.protocols.base import SearchCriteria
from mailgate.protocols.ews.soap import TYPES_NS, FolderTarget, envelope, find_item, xml_text


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a&b<c>d\"e'f", "a&amp;b&lt;c&gt;d&quot;e&apos;f"),
        ("tab\tnl\ncr\r", "tab&#9;nl&#10;cr&#13;"),
        ("vt\x0bff\x0cesc\x1bnul\x00", "vtffescnul"),
        ("lone \ud800 surrogate \udcff", "lone  surrogate "),
        ("non-chars \ufffe\uffff end", "non-chars  end"),
        ("Grüße €, 😀, \x7f\x85 and \ue000", "Grüße €, 😀, \x7f\x85 and \ue000"),
    ],
)
def test_xml_text(raw: str, escaped: str) -> None:
    assert xml_text(raw) == escaped


def _constant_values(body: str) -> list[str]:
    root = ET.fromstring(envelope(body, version="Exchange2016"))  # noqa: S314 - our own output
    return [e.attrib["Value"] for e in root.iter(f"{{{TYPES_NS}}}Constant")]


def test_request_with_hostile_subject_parses_and_keeps_the_text() -> None:
    subject = "Rechnung\x0b 4711\x1b\ud83d\t<&>\r\n'\""
    values = _constant_values(
        find_item(FolderTarget("inbox", True), SearchCriteria(subject_contains=subject))
    )
    # The invalid characters are gone; tab, CR and LF survive attribute normalisation.
    assert values == ["Rechnung 4711\t<&>\r\n'\""]


def test_every_bmp_character_gives_well_formed_xml() -> None:
    everything = "".join(chr(c) for c in range(0x10000)) + "\U0001f600\U0010ffff"
    value = xml_text(everything)
    document = f'<a v="{value}">{value}</a>'.encode("utf-8", "strict")
    parsed = ET.fromstring(document)  # noqa: S314 - our own output
    expected = "".join(
        ch
        for ch in everything
        if ch in "\t\n\r"
        or "\x20" <= ch <= "\ud7ff"
        or "\ue000" <= ch <= "\ufffd"
        or ch >= "\U00010000"
    )
    assert parsed.attrib["v"] == expected and parsed.text == expected
