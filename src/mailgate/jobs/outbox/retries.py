"""What to do after a failed submission: retry later (and when) or give up. Pure functions.

The protocol adapters already turn servers' replies into typed errors
(:mod:`mailgate.protocols.smtp`, ``protocols.graph.shapes``, ``protocols.ews.replies``);
:func:`classify` sorts them:

=====================================================  ==========  ===========================
error                                                  verdict     examples
=====================================================  ==========  ===========================
:class:`~mailgate.protocols.base.ThrottledError`       transient   SMTP 421/450/451/452, HTTP
                                                                   429/503, EWS ErrorServerBusy
                                                                   (carries Retry-After /
                                                                   BackOffMilliseconds)
:class:`~mailgate.errors.TransportError`               transient   connection refused or lost
:class:`~mailgate.errors.AuthenticationError`          transient   token refused or not issued
                                                                   (fixable by an admin; the
                                                                   message itself is fine)
Graph/EWS HTTP 500, 502, 504                           transient   server hiccups
:class:`~mailgate.protocols.base.MailboxAccessError`   permanent   554 5.2.252 SendAsDenied,
                                                                   access policy
:class:`~mailgate.errors.ConfigurationError`           permanent   address the server cannot
                                                                   take, protocol cannot send
other :class:`~mailgate.errors.ProtocolError`          permanent   5xx replies: recipient
                                                                   rejected, 552 too large
=====================================================  ==========  ===========================

A :class:`~mailgate.protocols.base.SubmissionUnknownError` (the answer was lost after the
message was handed over; a 504 to a send is one) never reaches :func:`classify`: the worker
looks in Sent Items instead of retrying.

:func:`retry_delay` is exponential backoff with jitter: attempt *n* waits between half and all
of ``base * 2**(n-1)`` (so workers that failed together do not retry together), at least what
the server asked for, at most ``cap`` (a bogus ``Retry-After`` cannot park the queue for days).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mailgate.errors import (
    AuthenticationError,
    ConfigurationError,
    MailgateError,
    ProtocolError,
    TransportError,
)
from mailgate.protocols.base import MailboxAccessError, ThrottledError, http_status

__all__ = ["Failure", "Verdict", "classify", "retry_delay"]

_TRANSIENT_HTTP = frozenset({500, 502, 504})


class Verdict(StrEnum):
    """Whether a failed submission may succeed if tried again."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Failure:
    """A classified failure: verdict, the text to record, and the server's wait (if it named
    one)."""

    verdict: Verdict
    reason: str
    retry_after: float | None = None
    throttled: bool = False


def classify(exc: MailgateError) -> Failure:
    """Sort one submission failure into transient (retry) or permanent (fail the message)."""
    reason = str(exc)
    if isinstance(exc, ThrottledError):
        wait = exc.retry_after if exc.retry_after > 0 else None
        return Failure(Verdict.TRANSIENT, reason, wait, throttled=True)
    if isinstance(exc, MailboxAccessError | ConfigurationError):
        return Failure(Verdict.PERMANENT, reason)
    if isinstance(exc, TransportError | AuthenticationError):
        return Failure(Verdict.TRANSIENT, reason)
    if isinstance(exc, ProtocolError) and http_status(exc) in _TRANSIENT_HTTP:
        return Failure(Verdict.TRANSIENT, reason)
    return Failure(Verdict.PERMANENT, reason)


def retry_delay(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    jitter: float = 1.0,
) -> float:
    """Seconds to wait before attempt ``attempt + 1`` after ``attempt`` attempts failed.

    ``jitter`` in [0, 1] (a random draw) picks a point between half and all of the
    exponential step; ``retry_after`` is the server's wait, honoured up to ``cap``.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be within [0, 1]")
    step = base * 2.0 ** min(attempt - 1, 62)
    delay = step / 2 + step / 2 * jitter
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, min(delay, cap))
