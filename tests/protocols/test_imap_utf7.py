"""Modified UTF-7 mailbox names (RFC 3501 5.1.3) with the RFC's and Exchange's examples."""

from __future__ import annotations

import pytest

from mailgate.protocols.imap.utf7 import decode_mailbox_name, encode_mailbox_name

CASES = [
    ("INBOX", "INBOX"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("Gelöschte Elemente", "Gel&APY-schte Elemente"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501's example
    ("A & B", "A &- B"),
    ("&", "&-"),
    ('Kunden "Müller"', 'Kunden "M&APw-ller"'),
    ("Ünïcödé", "&ANw-n&AO8-c&APY-d&AOk-"),
    ("emoji 📬", "emoji &2D3c7A-"),
    ("", ""),
]


@pytest.mark.parametrize(("name", "wire"), CASES)
def test_round_trip(name: str, wire: str) -> None:
    assert encode_mailbox_name(name) == wire
    assert decode_mailbox_name(wire) == name
    assert decode_mailbox_name(wire.encode()) == name


def test_control_characters_are_encoded() -> None:
    assert encode_mailbox_name("a\tb") == "a&AAk-b"


@pytest.mark.parametrize("bad", ["&AP", "abc&", "&!!!-"])
def test_malformed_is_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_mailbox_name(bad)


def test_raw_utf8_from_utf8_servers_is_kept() -> None:
    assert decode_mailbox_name("Entwürfe".encode()) == "Entwürfe"
