"""Non-ASCII envelope addresses: IDNA domains, SMTPUTF8 local parts, a clear error without it."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from mailgate.errors import InvalidInputError
from mailgate.protocols.base import Security
from mailgate.protocols.smtp import SmtpMailbox, envelope_address, prepare_envelope


@pytest.mark.parametrize("smtputf8", [False, True])
def test_ascii_addresses_pass_unchanged(smtputf8: bool) -> None:
    assert envelope_address("Jo.Smith+x@Example.COM", "sender", smtputf8) == (
        "Jo.Smith+x@Example.COM",
        False,
    )
    assert envelope_address("", "sender", smtputf8) == ("", False)  # null reverse-path


@pytest.mark.parametrize("smtputf8", [False, True])
def test_non_ascii_domain_is_idna_encoded(smtputf8: bool) -> None:
    assert envelope_address("user@bücher.de", "recipient", smtputf8) == (
        "user@xn--bcher-kva.de",
        False,
    )
    # IDNA 2008: ß is its own letter, not "ss" (a different domain).
    assert envelope_address("a@straße.de", "recipient", smtputf8)[0] == "a@xn--strae-oqa.de"
    assert envelope_address("a@BÜCHER.de", "recipient", smtputf8)[0] == "a@xn--bcher-kva.de"


def test_invalid_idna_domain_is_refused() -> None:
    with pytest.raises(InvalidInputError) as caught:
        envelope_address("a@bü..de", "recipient", True)
    assert caught.value.field == "recipient" and "bü..de" in str(caught.value)


def test_non_ascii_local_part_needs_smtputf8() -> None:
    with pytest.raises(InvalidInputError) as caught:
        envelope_address("jörg@example.com", "sender", False)
    message = str(caught.value)
    assert "jörg@example.com" in message and "SMTPUTF8" in message
    assert caught.value.field == "sender" and caught.value.exit_code == 2
    assert envelope_address("jörg@bücher.de", "sender", True) == ("jörg@xn--bcher-kva.de", True)


def test_prepare_envelope_adds_smtputf8_only_when_needed() -> None:
    assert prepare_envelope("a@x.de", ["b@bücher.de"], False) == (
        "a@x.de",
        ["b@xn--bcher-kva.de"],
        [],
    )
    assert prepare_envelope("a@x.de", ["b@x.de", "jörg@x.de"], True) == (
        "a@x.de",
        ["b@x.de", "jörg@x.de"],
        ["SMTPUTF8"],
    )
    with pytest.raises(InvalidInputError, match="recipient"):
        prepare_envelope("a@x.de", ["b@x.de", "jörg@x.de"], False)


class _Recorder:
    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], list[str]]] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert envelope.mail_from is not None
        self.envelopes.append(
            (envelope.mail_from, list(envelope.rcpt_tos), list(envelope.mail_options))
        )
        return "250 OK"


@pytest.fixture(params=[False, True], ids=["plain-server", "smtputf8-server"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[Controller, _Recorder, bool]]:
    recorder = _Recorder()
    # The controller probes its own port after starting, so it needs a concrete one.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(
        recorder, hostname="127.0.0.1", port=port, enable_SMTPUTF8=request.param
    )
    controller.start()
    try:
        yield controller, recorder, request.param
    finally:
        controller.stop()


async def _no_token() -> str:  # pragma: no cover - the test never authenticates
    raise AssertionError("no token needed")


def test_send_over_the_wire(server: tuple[Controller, _Recorder, bool]) -> None:
    controller, recorder, utf8 = server
    port = controller.port
    box = SmtpMailbox("a@x.de", "127.0.0.1", port, token_source=_no_token, security=Security.PLAIN)
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        smtp.ehlo()
        mime = b"Subject: t\r\n\r\nbody\r\n"
        box._send(smtp, mime, "a@x.de", ["b@bücher.de"])
        if utf8:
            box._send(smtp, mime, "a@x.de", ["jörg@bücher.de"])
        else:
            with pytest.raises(InvalidInputError, match="SMTPUTF8"):
                box._send(smtp, mime, "a@x.de", ["jörg@bücher.de"])
    finally:
        smtp.quit()
    expected = [("a@x.de", ["b@xn--bcher-kva.de"], ["SIZE=20"])]
    if utf8:
        expected.append(("a@x.de", ["jörg@xn--bcher-kva.de"], ["SIZE=20", "SMTPUTF8"]))
    assert recorder.envelopes == expected
