"""Classifying submission failures and the backoff between attempts."""

from __future__ import annotations

import pytest

from mailgate.errors import (
    ConfigurationError,
    InvalidInputError,
    ProtocolError,
    TokenRequestError,
    TransportError,
)
from mailgate.jobs.outbox.retries import Verdict, classify, retry_delay
from mailgate.protocols.base import (
    MailAuthenticationError,
    MailboxAccessError,
    Operation,
    Protocol,
    ThrottledError,
    UnsupportedOperation,
)
from mailgate.protocols.ews.replies import error_for_code, error_from_http
from mailgate.protocols.graph.shapes import GraphError, error_from_response
from mailgate.protocols.smtp import smtp_failure


@pytest.mark.parametrize(
    ("code", "text", "phase"),
    [
        (421, "4.3.2 Service not available, closing transmission channel", "mail"),
        (450, "4.2.1 Mailbox unavailable", "rcpt"),
        (451, "4.7.500 Server busy. Please try again later", "data"),
        (452, "4.3.2 Message rate limit exceeded (30 per minute); try again later", "data"),
    ],
)
def test_smtp_4xx_is_transient(code: int, text: str, phase: str) -> None:
    failure = classify(smtp_failure(code, text, phase))
    assert failure.verdict is Verdict.TRANSIENT and failure.throttled
    assert str(code) in failure.reason


def test_smtp_retry_time_from_the_reply_is_kept() -> None:
    failure = classify(smtp_failure(451, "4.7.0 try again in 30 seconds", "data"))
    assert failure.retry_after == 30


@pytest.mark.parametrize(
    ("code", "text", "phase", "words"),
    [
        (550, "5.1.1 RESOLVER.ADR.RecipNotFound; not found", "rcpt", "RecipNotFound"),
        (554, "5.2.252 SendAsDenied; a not allowed to send as b", "mail", "SendAsDenied"),
        (552, "5.3.4 Message size exceeds fixed maximum message size", "data", "too large"),
        (
            554,
            "5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
            "data",
            "SubmissionQuotaExceeded",
        ),
    ],
)
def test_smtp_5xx_is_permanent_with_the_servers_text(
    code: int, text: str, phase: str, words: str
) -> None:
    failure = classify(smtp_failure(code, text, phase))
    assert failure.verdict is Verdict.PERMANENT
    assert words in failure.reason and failure.retry_after is None


def test_graph_429_and_503_honour_retry_after() -> None:
    for status in (429, 503):
        exc = error_from_response(
            status, {"retry-after": "17"}, b"{}", mailbox="a@b.c", action="send"
        )
        failure = classify(exc)
        assert failure.verdict is Verdict.TRANSIENT and failure.retry_after == 17


def test_graph_server_errors_transient_client_errors_permanent() -> None:
    assert classify(GraphError("x", status=502)).verdict is Verdict.TRANSIENT
    assert classify(GraphError("x", status=400)).verdict is Verdict.PERMANENT
    forbidden = error_from_response(403, {}, b"{}", mailbox="a@b.c", action="send")
    assert classify(forbidden).verdict is Verdict.PERMANENT


def test_ews_bare_http_server_errors_are_transient() -> None:
    """A proxy's 502 in front of EWS has no SOAP body: its status is in the error's code."""
    for status, verdict in (
        (500, Verdict.TRANSIENT),
        (502, Verdict.TRANSIENT),
        (404, Verdict.PERMANENT),
    ):
        exc = error_from_http(
            status, {}, b"<html>bad gateway</html>", mailbox="a@b.c", app_only=True
        )
        assert classify(exc).verdict is verdict, status


def test_ews_server_busy_carries_back_off_milliseconds() -> None:
    exc = error_for_code(
        "ErrorServerBusy", "busy", mailbox="a@b.c", app_only=True, back_off_ms=29_500
    )
    failure = classify(exc)
    assert failure.verdict is Verdict.TRANSIENT and failure.retry_after == pytest.approx(29.5)


def test_other_errors() -> None:
    assert classify(TransportError("reset")).verdict is Verdict.TRANSIENT
    assert classify(MailAuthenticationError("535")).verdict is Verdict.TRANSIENT
    assert classify(TokenRequestError("AADSTS7000222")).verdict is Verdict.TRANSIENT
    assert classify(MailboxAccessError("denied")).verdict is Verdict.PERMANENT
    assert classify(ConfigurationError("bad")).verdict is Verdict.PERMANENT
    assert classify(InvalidInputError("recipient", "ascii")).verdict is Verdict.PERMANENT
    unsupported = UnsupportedOperation(Protocol.POP3, Operation.SEND, "use SMTP")
    assert classify(unsupported).verdict is Verdict.PERMANENT
    assert classify(ProtocolError("odd")).verdict is Verdict.PERMANENT
    # a throttle without a wait time leaves the choice to the backoff
    assert classify(ThrottledError("slow down")).retry_after is None


def test_retry_delay_doubles_within_jitter_bounds() -> None:
    for attempt, step in ((1, 2.0), (2, 4.0), (3, 8.0), (6, 64.0)):
        low = retry_delay(attempt, base=2.0, cap=900, jitter=0.0)
        high = retry_delay(attempt, base=2.0, cap=900, jitter=1.0)
        assert (low, high) == (step / 2, step)
        assert low < retry_delay(attempt, base=2.0, cap=900, jitter=0.5) < high


def test_retry_delay_honours_server_wait_and_cap() -> None:
    assert retry_delay(1, base=2.0, cap=900, retry_after=60, jitter=1.0) == 60
    assert retry_delay(5, base=2.0, cap=900, retry_after=1, jitter=1.0) == 32
    assert retry_delay(30, base=2.0, cap=900, jitter=1.0) == 900
    assert retry_delay(1, base=2.0, cap=900, retry_after=86_400) == 900
    assert retry_delay(10_000, base=2.0, cap=5) == 5  # no overflow


def test_retry_delay_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        retry_delay(0, base=1, cap=1)
    with pytest.raises(ValueError):
        retry_delay(1, base=1, cap=1, jitter=1.5)
