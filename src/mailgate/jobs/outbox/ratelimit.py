"""When the outbox may submit its next message for a mailbox: pure functions, no clock.

Exchange Online counts per mailbox (design/microsoft-facts.md §6, seed 004): 30 messages per
minute and 10,000 recipients per rolling 24 hours; Graph adds 10,000 requests per 10 minutes per
app and mailbox. The worker passes in what the state store recorded (the submission times and
recipient counts of rows in ``sending`` or ``sent``, whichever worker or process submitted them)
and gets back the earliest moment the next message may go. Limits therefore hold across
restarts and across several workers sharing one store.

Theory of operation: each rule yields an earliest time and the answer is the latest of them.
Every rule only relaxes as time passes (old submissions leave the windows), so the maximum of
the individual answers satisfies all rules at once.

- **Even pacing.** Submissions are spread over the window: one every ``60 / per_minute``
  seconds, stretched by :data:`PACING_MARGIN` (0.5 %), rather than ``per_minute`` at once and then a
  pause. A burst would meet the server's own counter, whose clock and send durations differ
  from ours by some milliseconds: pacing 0.5 % below the limit keeps the server's count of any
  60-second window under the limit even when one submission takes longer than the next.
- **Sliding windows.** At most ``limit`` submissions in any ``window`` seconds (60 s for the
  message rate, 600 s for Graph requests); binds after a restart or with several workers.
- **Daily recipients.** The recipients of the submissions in the last 24 hours plus this
  message's must not exceed ``recipients_per_day``; otherwise wait until enough old ones age out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "DAY",
    "MINUTE",
    "PACING_MARGIN",
    "TEN_MINUTES",
    "SendLimits",
    "Submission",
    "daily_recipients_wait",
    "next_send_time",
    "pacing_interval",
    "window_wait",
]

PACING_MARGIN = 0.005
"""Pace this fraction below the configured rate (see the module docstring)."""

MINUTE = timedelta(seconds=60)
TEN_MINUTES = timedelta(minutes=10)
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class SendLimits:
    """The limits for one mailbox (``requests_per_10_minutes`` only for Graph, else None)."""

    per_minute: int
    recipients_per_day: int
    requests_per_10_minutes: int | None = None

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.recipients_per_day < 1:
            raise ValueError("limits must be at least 1")
        if self.requests_per_10_minutes is not None and self.requests_per_10_minutes < 1:
            raise ValueError("limits must be at least 1")


@dataclass(frozen=True)
class Submission:
    """One recorded submission: when it started and how many envelope recipients it had."""

    at: datetime
    recipients: int


def pacing_interval(per_minute: int) -> timedelta:
    """The gap between two submissions when pacing evenly at ``per_minute``."""
    return timedelta(seconds=60.0 / per_minute * (1.0 + PACING_MARGIN))


def window_wait(times: Sequence[datetime], limit: int, window: timedelta) -> datetime | None:
    """The earliest time at which fewer than ``limit`` of ``times`` lie within ``window``
    before it; None when that is already true at the last of ``times`` (no constraint).

    ``times`` must be sorted and include every submission of the last ``window``.
    """
    if len(times) < limit:
        return None
    # The submission ``limit`` places from the end must leave the window first.
    return times[len(times) - limit] + window


def daily_recipients_wait(
    day: Sequence[Submission], recipients: int, limit: int, now: datetime
) -> datetime | None:
    """The earliest time the last 24 hours' recipients plus ``recipients`` fit in ``limit``.

    ``day`` holds the submissions of the 24 hours before ``now``, oldest first. Returns None if
    the message fits now. Raises ``ValueError`` if it can never fit (more recipients than the
    daily limit): the caller fails that message instead of waiting forever.
    """
    if recipients > limit:
        raise ValueError(f"{recipients} recipients exceed the daily limit of {limit}")
    recent = [s for s in day if s.at > now - DAY]
    total = sum(s.recipients for s in recent) + recipients
    if total <= limit:
        return None
    for submission in recent:
        total -= submission.recipients
        if total <= limit:
            return submission.at + DAY
    raise AssertionError("unreachable: recipients <= limit")  # pragma: no cover


def next_send_time(
    now: datetime,
    limits: SendLimits,
    recipients: int,
    recent: Sequence[Submission],
    day: Sequence[Submission] | None = None,
) -> datetime:
    """The earliest moment (``>= now``) the next message with ``recipients`` may be submitted.

    ``recent``: submissions of the last 10 minutes (60 s suffice without a Graph limit), oldest
    first. ``day``: those of the last 24 hours, oldest first, or None when the caller already
    knows the day's total leaves room for this message (it skips loading 24 hours of rows).
    """
    times = sorted(s.at for s in recent)
    candidates = [now]
    if times:
        candidates.append(times[-1] + pacing_interval(limits.per_minute))
    minute = [t for t in times if t > now - MINUTE]
    waits = [window_wait(minute, limits.per_minute, MINUTE)]
    if limits.requests_per_10_minutes is not None:
        ten = [t for t in times if t > now - TEN_MINUTES]
        waits.append(window_wait(ten, limits.requests_per_10_minutes, TEN_MINUTES))
    if day is not None:
        waits.append(daily_recipients_wait(day, recipients, limits.recipients_per_day, now))
    candidates.extend(w for w in waits if w is not None)
    return max(candidates)
