"""EWS replies carrying characters XML 1.0 forbids (as Exchange writes mail text) still parse."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from mailgate.errors import ProtocolError
from mailgate.protocols.base import MailboxAccessError
from mailgate.protocols.ews import replies as reply
from mailgate.protocols.ews.replies import strip_xml_forbidden

from . import ews_samples as samples

KW: dict[str, Any] = {"mailbox": "approvals@contoso.example", "app_only": True}

FORBIDDEN_C0 = [c for c in range(0x20) if c not in (0x9, 0xA, 0xD)]


def _xml_char(code: int) -> bool:
    # XML 1.0's Char production, spelled out independently of the code under test.
    return (
        code in (0x9, 0xA, 0xD)
        or 0x20 <= code <= 0xD7FF
        or 0xE000 <= code <= 0xFFFD
        or (0x10000 <= code <= 0x10FFFF)
    )


@pytest.mark.parametrize("code", range(0x20))
def test_every_raw_c0_control(code: int) -> None:
    data = b"<a>x" + bytes([code]) + b"y</a>"
    expected = data if code in (0x9, 0xA, 0xD) else b"<a>xy</a>"
    assert strip_xml_forbidden(data) == expected


@pytest.mark.parametrize(
    "code",
    [
        *range(0x20),
        *(0x7F, 0x80, 0x9B, 0x9F, 0xD7FF, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xE000),
        *(0xFFFD, 0xFFFE, 0xFFFF, 0x10000, 0x10FFFF, 0x110000, 0x7FFFFFFF),
    ],
)
@pytest.mark.parametrize("form", ["&#x{:X};", "&#x{:x};", "&#x000{:X};", "&#{:d};", "&#00{:d};"])
def test_every_kind_of_numeric_reference(code: int, form: str) -> None:
    ref = form.format(code).encode()
    data = b'<a b="' + ref + b'">' + ref + b"</a>"
    result = strip_xml_forbidden(data)
    if _xml_char(code):
        assert result == data
        root = ET.fromstring(result)  # noqa: S314 - test data
        assert root.text == chr(code) == root.attrib["b"] or code in (0x9, 0xA, 0xD)
    else:
        assert result == b'<a b=""></a>'


def test_huge_reference_numbers_are_dropped_without_converting_them() -> None:
    assert strip_xml_forbidden(b"<a>&#x" + b"F" * 5000 + b";&#" + b"9" * 5000 + b";</a>") == (
        b"<a></a>"
    )


def test_raw_noncharacters_and_everything_allowed_stays() -> None:
    assert strip_xml_forbidden("<a>\ufffe\uffff</a>".encode()) == b"<a></a>"
    allowed = "Grüße \x7f\x85\x9b € 😀 \ue000 \ufffd \U0010ffff &amp; &lt; &#38; &#x26;".encode()
    assert strip_xml_forbidden(allowed) == allowed
    # Other characters sharing the first bytes of U+FFFE in UTF-8 are untouched.
    assert strip_xml_forbidden("\uffbe\uffbd\uff01".encode()) == "\uffbe\uffbd\uff01".encode()


def test_not_references_are_left_alone() -> None:
    for text in (b"&#;", b"&#x;", b"&#xG1;", b"&amp;#x1B;", b"&#1B;", b"#x1B;"):
        assert strip_xml_forbidden(text) == text


def _summary_reply(subject: str) -> bytes:
    return samples.GET_ITEM.replace(b"Invoice 4711", subject.encode())


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("Esc&#x1B;[31mred&#x7; bell", "Esc[31mred bell"),  # as Exchange is reported to write
        ("Esc\x1b[31mred\x07 bell\x00", "Esc[31mred bell"),  # raw, as the sandbox once did
        ("Del \x7f and C1 \x9b kept", "Del \x7f and C1 \x9b kept"),
        ("nul &#0; &#x0; &#00; vt &#11; ff &#xc;", "nul    vt  ff "),
    ],
)
def test_summaries_read_hostile_subjects(written: str, read: str) -> None:
    (summary,) = reply.parse_summaries(
        reply.response_messages(_summary_reply(written), **KW), "Inbox"
    )
    assert summary.subject == read
    assert summary.from_address == "billing@vendor.example"


def test_a_doctype_hidden_by_a_control_character_is_still_refused() -> None:
    body = b'<?xml version="1.0"?><!DOC\x01TYPE x [<!ENTITY e "x">]><a/>'
    with pytest.raises(ProtocolError, match="DOCTYPE"):
        reply.response_messages(body, **KW)


def _mime_reply() -> bytes:
    # The MimeContent first, then properties with forbidden characters in every form.
    return samples.get_item_mime().replace(
        b"</m:Items>",
        b"</m:Items><t:Subject>a&#x1B;b\x1b&#27;\xef\xbf\xbe&#xFFFF;c</t:Subject>",
    )


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64, 1 << 16])
def test_mime_decoder_with_forbidden_characters_split_anywhere(chunk: int) -> None:
    body = _mime_reply()
    dest = io.BytesIO()
    decoder = reply.MimeStreamDecoder(dest, **KW)
    for start in range(0, len(body), chunk):
        decoder.feed(body[start : start + chunk])
    assert decoder.close() == len(samples.MIME) and dest.getvalue() == samples.MIME


def test_mime_decoder_every_split_of_the_hostile_tail() -> None:
    body = _mime_reply()
    tail = body.index(b"<t:Subject>")
    for cut in range(tail, len(body) + 1):
        dest = io.BytesIO()
        decoder = reply.MimeStreamDecoder(dest, **KW)
        decoder.feed(body[:cut])
        decoder.feed(body[cut:])
        assert decoder.close() == len(samples.MIME), cut


def test_mime_decoder_error_reply_with_hostile_text_is_mapped() -> None:
    decoder = reply.MimeStreamDecoder(io.BytesIO(), **KW)
    decoder.feed(samples.error("GetItem", "ErrorAccessDenied", "Access\x1b is &#x7;denied."))
    with pytest.raises(MailboxAccessError, match="Access is denied"):
        decoder.close()
