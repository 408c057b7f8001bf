"""The outbox's send pacing and limits (pure functions over recorded submissions)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from mailgate.jobs.outbox.ratelimit import (
    DAY,
    PACING_MARGIN,
    SendLimits,
    Submission,
    daily_recipients_wait,
    next_send_time,
    pacing_interval,
    window_wait,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def s(seconds: float, recipients: int = 1) -> Submission:
    return Submission(T0 + timedelta(seconds=seconds), recipients)


def test_pacing_interval_is_the_even_spacing_plus_margin() -> None:
    assert pacing_interval(30) == timedelta(seconds=2 * (1 + PACING_MARGIN))
    assert pacing_interval(300).total_seconds() == pytest.approx(0.2 * (1 + PACING_MARGIN))


def test_nothing_sent_means_now() -> None:
    assert next_send_time(T0, SendLimits(30, 10_000), 1, []) == T0


def test_next_send_waits_one_interval_after_the_last() -> None:
    limits = SendLimits(30, 10_000)
    assert next_send_time(T0 + timedelta(seconds=1), limits, 1, [s(0)]) == T0 + pacing_interval(30)
    # long after the last send: now
    later = T0 + timedelta(seconds=50)
    assert next_send_time(later, limits, 1, [s(0)]) == later


def test_window_wait() -> None:
    times = [T0 + timedelta(seconds=i) for i in range(5)]
    assert window_wait(times, 6, timedelta(seconds=60)) is None
    assert window_wait(times, 5, timedelta(seconds=60)) == T0 + timedelta(seconds=60)
    assert window_wait(times, 2, timedelta(seconds=60)) == T0 + timedelta(seconds=63)


def test_a_burst_left_by_another_worker_is_honoured() -> None:
    # 30 submissions within one second (e.g. a misconfigured worker): the 31st waits for
    # the first to leave the 60 s window, not just one pacing interval.
    burst = [s(i / 30) for i in range(30)]
    now = T0 + timedelta(seconds=2)
    assert next_send_time(now, SendLimits(30, 10_000), 1, burst) == T0 + timedelta(seconds=60)


def test_graph_ten_minute_window() -> None:
    limits = SendLimits(per_minute=1000, recipients_per_day=10_000, requests_per_10_minutes=3)
    recent = [s(0), s(100), s(200)]
    now = T0 + timedelta(seconds=250)
    assert next_send_time(now, limits, 1, recent) == T0 + timedelta(seconds=600)
    assert next_send_time(now, SendLimits(1000, 10_000), 1, recent) == now


def test_daily_recipients() -> None:
    now = T0 + timedelta(hours=10)
    day = [s(0, 4000), s(3600, 4000), s(7200, 1000)]
    assert daily_recipients_wait(day, 1000, 10_000, now) is None
    # 9,000 + 2,000 > 10,000: the first 4,000 must age out
    assert daily_recipients_wait(day, 2000, 10_000, now) == T0 + DAY
    # 9,000 + 6,000: the first two must age out
    assert daily_recipients_wait(day, 6000, 10_000, now) == T0 + timedelta(seconds=3600) + DAY
    # submissions older than 24 h do not count
    assert daily_recipients_wait(day, 2000, 10_000, T0 + DAY + timedelta(seconds=1)) is None
    with pytest.raises(ValueError, match="exceed the daily limit"):
        daily_recipients_wait([], 10_001, 10_000, now)


def test_next_send_combines_daily_with_pacing() -> None:
    limits = SendLimits(30, 10)
    day = [s(0, 6), s(10, 4)]
    now = T0 + timedelta(seconds=20)
    assert next_send_time(now, limits, 1, day, day) == T0 + DAY
    assert next_send_time(now, limits, 1, day, None) == now  # caller said the day has room


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        SendLimits(0, 1)
    with pytest.raises(ValueError):
        SendLimits(1, 1, 0)


@pytest.mark.parametrize("per_minute", [1, 7, 30, 300])
def test_simulated_sender_never_exceeds_any_window(per_minute: int) -> None:
    """A sender that always submits at the earliest allowed time, with random send durations
    and random arrival of work, never puts more than ``per_minute`` in any 60 s window and
    reaches the rate within the margin."""
    rng = random.Random(per_minute)
    limits = SendLimits(per_minute, 10_000_000)
    sent: list[Submission] = []
    now = T0
    for _ in range(per_minute * 5):
        now += timedelta(seconds=rng.random() * 0.05)  # the send itself took a moment
        at = next_send_time(now, limits, 1, [x for x in sent if x.at > now - timedelta(minutes=10)])
        assert at >= now
        sent.append(Submission(at, 1))
        now = at
    times = [x.at for x in sent]
    for i, start in enumerate(times):
        inside = [t for t in times[i:] if t < start + timedelta(seconds=60)]
        assert len(inside) <= per_minute
    span = (times[-1] - times[0]).total_seconds()
    rate = (len(times) - 1) / span * 60
    assert per_minute * 0.97 <= rate <= per_minute
