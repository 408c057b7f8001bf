"""The outbox's states, the one table of moves between them, and the claim decision. Pure.

No clock, no SQL, no I/O: :mod:`mailgate.jobs.outbox.operations` and
:mod:`mailgate.jobs.outbox.worker` read the rows and the time, ask here, and write what the
answer allows.

Theory of operation. A row of table ``outbox`` is in one of four states, stored as the
strings of :class:`OutboxState` (the values are in the database and must never change).
:data:`TRANSITIONS` is the only list of the moves a row may make; every write of a state
(the INSERT of enqueue, every UPDATE) passes its old and new state through
:func:`check_transition`, which raises :class:`OutboxStateError` for a move not in the table.
That is a bug in mailgate, never bad input, so the error is a ``RuntimeError`` and not a
:class:`~mailgate.errors.MailgateError` the CLI would print as advice::

    (enqueue) ──► queued ──claim──► sending ──accepted, or found in Sent Items──► sent
                  ▲ ▲  │                │
                  │ └──┼────────────────┤ transient failure with attempts left,
                  │    │                │ or not in Sent Items after a crash
                  │    │ too many       │
                  │    │ recipients     │ permanent failure, attempts used up,
                  │    ▼ for a day      │ or outcome unknown with no Sent Items to read
                  └─── failed ◄─────────┘
               mailgate outbox retry

``sent`` is terminal: a sent row only leaves the table when purge deletes it. A submission
whose answer was lost after the hand-over stays ``sending`` with its lease dropped: that is no
move, and crash recovery later moves it like a dead worker's row (to ``sent``, ``queued`` or
``failed``).
``sending`` is committed *before* the message goes to the server and ``sent`` *after* it
accepted, so a crash in between leaves ``sending`` and nothing is sent twice blindly.

The claim decision (:func:`decide_claim`): given the due row's recipient count and the
submissions the store recorded (rows in :data:`COUNTED` states), the row either moves to
``sending`` now, stays ``queued`` until the rate limits of
:mod:`mailgate.jobs.outbox.ratelimit` allow it, or moves to ``failed`` because no day could
ever hold its recipients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from mailgate.jobs.outbox.ratelimit import (
    MINUTE,
    TEN_MINUTES,
    SendLimits,
    Submission,
    next_send_time,
)

__all__ = [
    "COUNTED",
    "FINISHED",
    "PENDING",
    "TERMINAL",
    "TRANSITIONS",
    "ClaimDecision",
    "OutboxState",
    "OutboxStateError",
    "check_transition",
    "decide_claim",
    "needs_day",
    "submission_window",
]


class OutboxState(StrEnum):
    """A row's state; the value is what column ``outbox.state`` holds (``String(16)``)."""

    QUEUED = "queued"  # waiting for its next attempt (next_attempt_at)
    SENDING = "sending"  # claimed under a lease; the server may have it
    SENT = "sent"  # the server accepted it
    FAILED = "failed"  # refused, given up, or outcome unknown: last_error says which


class OutboxStateError(RuntimeError):
    """A state write that :data:`TRANSITIONS` does not allow (a programming error)."""


_S = OutboxState  # short, for the table below

TRANSITIONS: Mapping[OutboxState | None, frozenset[OutboxState]] = MappingProxyType(
    {
        None: frozenset({_S.QUEUED}),  # enqueue inserts the row
        _S.QUEUED: frozenset({_S.SENDING, _S.FAILED}),  # claimed, or too many recipients
        _S.SENDING: frozenset({_S.SENT, _S.QUEUED, _S.FAILED}),  # the outcome or recovery
        _S.SENT: frozenset(),  # terminal
        _S.FAILED: frozenset({_S.QUEUED}),  # `mailgate outbox retry`
    }
)
"""Old state (None: no row yet) → the states a write may give the row."""

TERMINAL = frozenset(state for state in OutboxState if not TRANSITIONS[state])
PENDING = (_S.QUEUED, _S.SENDING)  # not finished: the worker visits them, purge wants --force
FINISHED = (_S.SENT, _S.FAILED)  # what purge deletes by default
COUNTED = (_S.SENDING, _S.SENT)  # submissions the rate limits count


def check_transition(old: OutboxState | None, new: OutboxState) -> OutboxState:
    """``new``, if a row in ``old`` (None: a row being inserted) may move to it; otherwise
    :class:`OutboxStateError`. Returned so that a write can only be spelled through here:
    ``.values(state=check_transition(SENDING, SENT))``."""
    if new not in TRANSITIONS.get(old, frozenset()):
        shown = "(new row)" if old is None else repr(str(old))
        raise OutboxStateError(f"outbox row may not move from {shown} to {str(new)!r}")
    return OutboxState(new)


@dataclass(frozen=True)
class ClaimDecision:
    """What to do with the due row: ``move_to`` SENDING (claim it now), FAILED (``reason``
    says why it can never go) or None (leave it queued: the limits allow it at
    ``not_before``)."""

    move_to: OutboxState | None
    not_before: datetime
    reason: str = ""


def submission_window(limits: SendLimits) -> timedelta:
    """How far back the recorded submissions matter to the rate limits (the day's recipient
    total is asked for separately, see :func:`needs_day`)."""
    return TEN_MINUTES if limits.requests_per_10_minutes else MINUTE


def needs_day(day_total: int, recipients: int, limits: SendLimits) -> bool:
    """Whether the last 24 hours' submissions must be loaded one by one: only when their
    recipient total plus this message's exceeds the daily limit (otherwise the sum says
    enough, and 24 hours of rows are not read before every claim)."""
    return day_total + recipients > limits.recipients_per_day


def decide_claim(
    now: datetime,
    limits: SendLimits,
    recipients: int,
    recent: Sequence[Submission],
    day: Sequence[Submission] | None,
) -> ClaimDecision:
    """The due row's fate at ``now``. ``recent`` and ``day`` are as for
    :func:`~mailgate.jobs.outbox.ratelimit.next_send_time` (``day`` None when :func:`needs_day` said
    no)."""
    try:
        at = next_send_time(now, limits, recipients, recent, day)
    except ValueError as exc:  # more recipients than a day allows: it can never go
        return ClaimDecision(_S.FAILED, now, f"{exc}; split the recipient list.")
    if at > now:
        return ClaimDecision(None, at)
    return ClaimDecision(_S.SENDING, now)
