"""Bulk-fetch pure parts: literal routing, streaming base64, the client-side MIME splitter."""

from __future__ import annotations

import base64
import io
import os

import pytest

from mailgate.mail.attachments import split_attachments
from mailgate.protocols.imap.bulk import Base64Decoder, literal_target


def test_literal_target() -> None:
    assert literal_target([b"* 3 FETCH (UID 17 BODY[] {2048}\r\n"]) == (17, "")
    assert literal_target([b"* 3 FETCH (UID 17 BODY[] {5}\r\n", b" BODY[2] {9}\r\n"]) == (17, "2")
    assert literal_target([b"* 3 FETCH (BODY[1.2] {9}\r\n"]) == (None, "1.2")
    assert literal_target([b"* 3 FETCH (UID 1 BODY[HEADER.FIELDS (FROM)] {9}\r\n"]) == (
        None,
        None,
    )
    assert literal_target([b'* LIST () "/" {5}\r\n']) == (None, None)


@pytest.mark.parametrize("step", [1, 3, 4, 7, 76, 1000])
def test_base64_decoder_across_chunk_boundaries(step: int) -> None:
    data = os.urandom(5000)
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    out = io.BytesIO()
    decoder = Base64Decoder(out)
    for i in range(0, len(encoded), step):
        decoder.write(encoded[i : i + step])
    decoder.finish()
    assert out.getvalue() == data and decoder.written == len(data)


def mime(*parts: bytes, boundary: bytes = b"b1") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
    return (
        b"From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="'
        + boundary
        + b'"\r\n\r\npreamble\r\n'
        + body
        + b"--"
        + boundary
        + b"--\r\nepilogue\r\n"
    )


def test_split_attachments_matches_sections_and_decodes() -> None:
    pdf = os.urandom(3000)
    inner = mime(
        b"Content-Type: text/plain\r\n\r\nhello",
        b"Content-Type: text/html\r\n\r\n<p>hi</p>",
        boundary=b"inner",
    ).split(b"\r\n\r\n", 1)[1]
    raw = mime(
        b'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n' + inner,
        b'Content-Type: application/pdf; name="a.pdf"\r\nContent-Disposition: attachment; '
        b'filename="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.encodebytes(pdf).replace(b"\n", b"\r\n").rstrip(),
        b"Content-Type: text/plain; name*=utf-8''notes%20%C3%A4.txt\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe",
        b'Content-Type: image/png; name="=?utf-8?q?Gr=C3=BC=C3=9Fe.png?="\r\n'
        b"Content-Disposition: inline\r\n\r\nPNG",
    )
    found = split_attachments(raw)
    assert [(p.section, p.content_type, p.filename, p.encoding) for p, _ in found] == [
        ("2", "application/pdf", "a.pdf", "base64"),
        ("3", "text/plain", "notes ä.txt", "quoted-printable"),
        ("4", "image/png", "Grüße.png", "7bit"),
    ]
    assert found[0][1] == pdf
    assert found[1][1] == "Grüße".encode()
    assert found[2][1] == b"PNG"


def test_split_plain_and_broken_messages() -> None:
    assert split_attachments(b"Subject: x\r\n\r\njust text\r\n") == []
    single = b"Content-Type: application/pdf; name=x.pdf\r\n\r\n%PDF"
    ((part, data),) = split_attachments(single)
    assert (part.section, part.filename, data) == ("1", "x.pdf", b"%PDF")
    assert split_attachments(b"Content-Type: multipart/mixed\r\n\r\nno boundary") == []
    assert split_attachments(b"") == []
