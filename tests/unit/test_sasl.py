"""SASL XOAUTH2 / OAUTHBEARER against byte literals from the protocol documents."""

from __future__ import annotations

import base64

import pytest

from mailgate.protocols.sasl import (
    b64,
    oauthbearer_initial_response,
    parse_failure_challenge,
    parse_initial_response,
    xoauth2_initial_response,
)


def test_xoauth2_matches_microsoft_documented_form() -> None:
    # Microsoft's IMAP/POP/SMTP OAuth page: base64("user=" + userName + "^Aauth=Bearer " +
    # accessToken + "^A^A"); Google's XOAUTH2 page gives the same bytes for this input.
    raw = xoauth2_initial_response(
        "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    )
    assert raw == (
        b"user=someuser@example.com\x01"
        b"auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01"
    )
    assert b64(raw) == (
        "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSF"
        "JoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_oauthbearer_matches_rfc7628_shape() -> None:
    raw = oauthbearer_initial_response(
        "user@example.com", "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg=="
    )
    assert (
        raw == b"n,a=user@example.com,\x01"
        b"auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\x01\x01"
    )


@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_round_trip(mech: str) -> None:
    build = xoauth2_initial_response if mech == "XOAUTH2" else oauthbearer_initial_response
    creds = parse_initial_response(mech, build("shared@contoso.com", "a.b.c"))
    assert (creds.user, creds.token, creds.mechanism) == ("shared@contoso.com", "a.b.c", mech)
    assert "a.b.c" not in repr(creds)


@pytest.mark.parametrize(
    ("user", "token"),
    [("", "t"), ("a\x01b", "t"), ("a@b", ""), ("a@b", "t t"), ("a\r\n@b", "t"), ("a@b", "t\x01")],
)
def test_bad_inputs_refused(user: str, token: str) -> None:
    with pytest.raises(ValueError):
        xoauth2_initial_response(user, token)


@pytest.mark.parametrize(
    ("mech", "data"),
    [
        ("XOAUTH2", b"user=a@b\x01auth=Basic x\x01\x01"),
        ("XOAUTH2", b"user=a@b\x01auth=Bearer t\x01"),
        ("OAUTHBEARER", b"a=x,\x01auth=Bearer t\x01\x01"),
        ("PLAIN", b"\x00a\x00b"),
        ("XOAUTH2", b"\xff\xfe"),
    ],
)
def test_malformed_responses(mech: str, data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_initial_response(mech, data)


def test_failure_challenge() -> None:
    dovecot = base64.b64encode(b'{"status":"401","schemes":"bearer","scope":"mail"}')
    assert parse_failure_challenge(dovecot).status == "401"  # type: ignore[union-attr]
    assert parse_failure_challenge(base64.b64encode(b'{"status":"invalid_token"}')) is not None
    assert parse_failure_challenge("not base64!") is None
    assert parse_failure_challenge(base64.b64encode(b"[1]")) is None
    assert parse_failure_challenge("") is None
