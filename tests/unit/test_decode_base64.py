"""``decode_base64`` gives exactly what ``binascii.a2b_base64`` gives, errors included."""

from __future__ import annotations

import base64
import binascii
import random

import pytest

from mailgate.mail.attachments import decode_base64, split_attachments_checked

ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def stdlib(data: bytes) -> bytes | str:
    try:
        return binascii.a2b_base64(data)
    except binascii.Error as exc:
        return f"error: {exc}"


def ours(data: bytes) -> bytes | str:
    try:
        return decode_base64(data)
    except binascii.Error as exc:
        return f"error: {exc}"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"QUJD",
        b"QUJDRA==",
        b"QUJDRA=",  # short padding
        b"QUJDRA",  # none
        b"QUJD\r\nRA==\r\n",
        b"QU JD\tRA==",
        b"QUJD-_*!RA==",  # noise outside the alphabet
        b"QUJD=RA==",  # "=" in mid-text: the stdlib stops there, pybase64 would not
        b"QUJDRA==QUJD",  # text after the padding
        b"QUJDR",  # a dangling character
        b"=",
        b"====",
        b"QUJDRA==\r\n=\r\n",
        b"\x00\xff\x80QUJD",
    ],
)
def test_known_cases_match_the_stdlib(data: bytes) -> None:
    assert ours(data) == stdlib(data)


def test_damaged_encodings_match_the_stdlib() -> None:
    """Encoder output with characters inserted, deleted and cut, the way mail damages it."""
    rng = random.Random(20261123)
    for _ in range(20_000):
        encoded = bytearray(base64.encodebytes(rng.randbytes(rng.randint(0, 80))))
        encoded = bytearray(encoded.replace(b"\n", b"\r\n"))
        for _edit in range(rng.choice([0, 1, 2, 3])):
            where = rng.randint(0, len(encoded))
            roll = rng.random()
            if roll < 0.3:
                encoded.insert(where, rng.choice(b"=-_ .\t\x00!*\r\n"))
            elif roll < 0.6 and encoded:
                del encoded[min(where, len(encoded) - 1)]
            elif roll < 0.8:
                del encoded[where:]
            else:
                encoded.insert(where, rng.choice(ALPHABET))
        data = bytes(encoded)
        assert ours(data) == stdlib(data), data


def test_a_large_attachment_splits_to_its_bytes() -> None:
    payload = random.Random(1).randbytes(300_000)
    body = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    raw = (
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n--B\r\n'
        b"Content-Type: text/plain\r\n\r\nhi\r\n--B\r\n"
        b'Content-Type: application/pdf; name="a.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body + b"--B--\r\n"
    )
    parts, problems = split_attachments_checked(raw)
    assert problems == []
    assert [(p.filename, data) for p, data in parts] == [("a.pdf", payload)]
