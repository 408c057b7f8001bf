"""IMAP's modified UTF-7 for mailbox names (RFC 3501 section 5.1.3): pure functions.

Printable ASCII (0x20-0x7e) stands for itself, except ``&`` which is written ``&-``. Every other
run of characters is UTF-16BE, base64-encoded with ``,`` instead of ``/`` and no padding, between
``&`` and ``-``. Exchange and Dovecot both send and expect this form, so "Entwürfe" travels as
``Entw&APw-rfe``.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["decode_mailbox_name", "encode_mailbox_name"]


def _encode_run(run: str) -> str:
    raw = base64.b64encode(run.encode("utf-16-be")).decode("ascii")
    return "&" + raw.rstrip("=").replace("/", ",") + "-"


def encode_mailbox_name(name: str) -> str:
    """Encode a Unicode mailbox name for the wire."""
    out: list[str] = []
    run: list[str] = []
    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            if run:
                out.append(_encode_run("".join(run)))
                run = []
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def decode_mailbox_name(encoded: str | bytes) -> str:
    """Decode a wire mailbox name; ValueError if the base64 part is malformed.

    Servers that send raw UTF-8 (IMAP4rev2, UTF8=ACCEPT) are tolerated: bytes that are not
    ASCII are decoded as UTF-8 and kept as they are.
    """
    text = encoded.decode("utf-8") if isinstance(encoded, bytes) else encoded
    out: list[str] = []
    pos = 0
    while pos < len(text):
        amp = text.find("&", pos)
        if amp < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:amp])
        end = text.find("-", amp)
        if end < 0:
            raise ValueError(f"unterminated modified UTF-7 run in mailbox name {text!r}")
        chunk = text[amp + 1 : end]
        if not chunk:
            out.append("&")
        else:
            padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
            try:
                out.append(base64.b64decode(padded, validate=True).decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ValueError(f"malformed modified UTF-7 in mailbox name {text!r}") from exc
        pos = end + 1
    return "".join(out)
