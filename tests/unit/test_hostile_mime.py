"""Damaged encodings from senders never stop a run: decode what can be decoded, keep going."""

from __future__ import annotations

import io

import pytest

from mailgate.mail.attachments import split_attachments
from mailgate.mail.headers import summary_from_headers
from mailgate.protocols.base import MessageRef
from mailgate.protocols.imap.bulk import Base64Decoder


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"QUJD\r\nQ", b"ABC"),  # a dangling character
        (b"QUJD!!QUJD", b"ABCABC"),  # bytes outside the alphabet
        (b"QUJDRA==", b"ABCD"),
        (b"QU=JD", b""),  # misplaced padding: nothing sure to decode, but no error
    ],
)
def test_base64_decoder_is_lenient(data: bytes, expected: bytes) -> None:
    out = io.BytesIO()
    decoder = Base64Decoder(out)
    for i in range(0, len(data), 3):
        decoder.write(data[i : i + 3])
    decoder.finish()
    assert out.getvalue() == expected


def test_malformed_encoded_word_in_subject_and_filename() -> None:
    summary = summary_from_headers(MessageRef("INBOX", "1"), b"Subject: =?utf-8?b?Q?=\r\n\r\n")
    assert summary.subject == "=?utf-8?b?Q?="
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b'hi\r\n--b\r\nContent-Type: application/pdf; name="=?utf-8?b?Q?="\r\n'
        b'Content-Disposition: attachment; filename="=?utf-8?b?Q?="\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nQUJD\r\n--b--\r\n"
    )
    ((part, data),) = split_attachments(raw)
    assert part.filename == "=?utf-8?b?Q?=" and data == b"ABC"
