"""The splitter's fast MIME field parser answers exactly as the stdlib ``Message`` does."""

from __future__ import annotations

import itertools
from email.message import Message

import pytest

from mailgate.mail.attachments import MimeFields, split_attachments_checked

CONTENT_TYPES = [
    'multipart/mixed; boundary="BOUNDARY"',
    "multipart/mixed; boundary=abc",
    'Multipart/Mixed;Boundary="a;b"',
    'multipart/mixed; boundary="<b>"',
    "text/plain",
    "text/plain; charset=utf-8",
    ' TEXT/HTML ; name="x.html" ',
    'application/pdf; name="invoice 1.pdf"',
    'application/pdf; name=x.pdf; other="1;2"',
    'application/pdf;name="<x.pdf>"',
    "application/x;;name=y",
    'application/x; name="unterminated',
    "application/x; name",
    "bogus",
    "a/b/c",
    "",
    "boundary",
    # Left to the stdlib: encoded words, RFC 2231, escapes, comments, non-ASCII.
    'application/x; name="=?utf-8?b?w6k=?="',
    "application/x; name*=utf-8''%C3%A9.pdf",
    'application/x; name="a\\\\"b"',
    "image/png (comment); name=x",
    'application/x; name="\udcc3\udca9.pdf"',
    None,
]
DISPOSITIONS = [
    None,
    "attachment",
    'attachment; filename="a.pdf"',
    "inline; filename=b.pdf",
    'ATTACHMENT;FILENAME="c d.pdf"',
    'attachment; filename=""',
    'attachment; filename="  spaced  "',
    'attachment; filename="../../x"',
    'attachment; filename="<y>"',
    "filename",
    "attachment; filename*=utf-8''x.pdf",
]


@pytest.mark.parametrize(
    ("content_type", "disposition"), list(itertools.product(CONTENT_TYPES, DISPOSITIONS))
)
def test_same_answers_as_the_stdlib(content_type: str | None, disposition: str | None) -> None:
    fields = {
        name: value
        for name, value in (
            ("content-type", content_type),
            ("content-disposition", disposition),
        )
        if value is not None
    }
    message = Message()
    for name, value in fields.items():
        message[name] = value
    fast = MimeFields(fields)
    assert fast.get_content_type() == message.get_content_type()
    assert fast.get_boundary() == message.get_boundary()
    assert fast.get_filename() == message.get_filename()
    assert fast.get_name_param() == message.get_param("name")
    assert fast.get_content_disposition() == message.get_content_disposition()


def test_broken_mime_is_reported() -> None:
    no_close = (
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        b'Content-Type: application/pdf; name="a.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nQUJD\r\n"
    )
    parts, problems = split_attachments_checked(no_close)
    assert [(p.filename, data) for p, data in parts] == [("a.pdf", b"ABC")]
    assert problems == ["MIME defect: the closing multipart boundary is missing"]
    no_start = b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\nno parts at all\r\n'
    assert split_attachments_checked(no_start) == (
        [],
        ["MIME defect: no part starts with the multipart boundary"],
    )
    no_boundary = b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\n--x--\r\n"
    assert split_attachments_checked(no_boundary)[1] == [
        "MIME defect: a multipart part has no boundary"
    ]
    bad_base64 = (
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        b'Content-Disposition: attachment; filename="a.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nQUJDR\r\n--zz--\r\n"
    )
    ((_part, data),), problems = split_attachments_checked(bad_base64)
    assert data == b"QUJDR" and problems == [
        "attachment 1 could not be decoded (base64); kept as sent"
    ]
