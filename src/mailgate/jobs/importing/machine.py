"""The import's state machine: the states a message is recorded in, the one table of the moves
between them, and the step each recorded state asks of the next run. Pure.

Theory of operation
-------------------
A message has no row (``None`` below) until a run first acts on it; from then on its row in
``processed_messages`` holds one of :class:`ImportState`'s values (the stored text: these values
never change, there is no schema change behind them). Every write of a state goes through
:func:`check_transition`, which allows exactly the moves in :data:`TRANSITIONS` and raises
:class:`IllegalTransition` on any other: a bug that would deliver twice, or post-process before
the output was durable, fails loudly instead of corrupting the ledger. ::

                        after = keep: done at once
                  ┌─────────────────────────────────────────┐
                  │                                         ▼
    (none) ──► delivering ──► delivered ──(post-processed)──► done
       │        ▲ │ ▲  ↺ (resumed)
       │        │ ▼ │
       │       failed ─────────────┐
       │                           ▼
       └────────────────────────► oversize (set aside, never fetched; also from
                                            delivering when cut while streaming)

A run writes ``delivering`` for a batch before fetching it, then ``delivered`` (or ``done``,
``failed``, ``oversize``) once its output is durable, then ``done`` after post-processing.
``done`` and ``oversize`` are final. On restart (:data:`STEPS`) ``done`` and ``oversize`` are
skipped, ``delivered`` is only post-processed, and ``delivering`` (interrupted) and ``failed``
are delivered again, idempotently (same names, same ``Idempotency-Key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "DELIVERED",
    "DELIVERING",
    "DONE",
    "FAILED",
    "OVERSIZE",
    "STEPS",
    "TRANSITIONS",
    "IllegalTransition",
    "ImportState",
    "Step",
    "check_transition",
    "next_step",
    "parse_state",
]


class ImportState(StrEnum):
    """A message's recorded state (the value is what ``processed_messages.state`` stores)."""

    DELIVERING = "delivering"  # the batch was begun: fetching and delivering
    DELIVERED = "delivered"  # output durable (sync, 2xx, exit 0); not yet post-processed
    DONE = "done"  # delivered and post-processed (or kept): nothing more to do
    FAILED = "failed"  # a destination refused it: not post-processed, delivered again next run
    OVERSIZE = "oversize"  # over the size limit: set aside, never delivered


DELIVERING = ImportState.DELIVERING
DELIVERED = ImportState.DELIVERED
DONE = ImportState.DONE
FAILED = ImportState.FAILED
OVERSIZE = ImportState.OVERSIZE


class Step(StrEnum):
    """What a run does with a message, given its recorded state."""

    DELIVER = "deliver"  # never seen, or delivery did not finish / failed: deliver (again)
    POSTPROCESS = "postprocess"  # output durable, post-processing not recorded
    SKIP = "skip"  # done or set aside


TRANSITIONS: Mapping[ImportState | None, frozenset[ImportState]] = MappingProxyType(
    {
        None: frozenset({DELIVERING, OVERSIZE}),
        DELIVERING: frozenset({DELIVERING, DELIVERED, DONE, FAILED, OVERSIZE}),
        FAILED: frozenset({DELIVERING, OVERSIZE}),
        DELIVERED: frozenset({DONE}),
        DONE: frozenset(),
        OVERSIZE: frozenset(),
    }
)
"""Recorded state (None: no row yet) → the states a write may move it to."""

STEPS: Mapping[ImportState | None, Step] = MappingProxyType(
    {
        None: Step.DELIVER,
        DELIVERING: Step.DELIVER,
        FAILED: Step.DELIVER,
        DELIVERED: Step.POSTPROCESS,
        DONE: Step.SKIP,
        OVERSIZE: Step.SKIP,
    }
)
"""Recorded state → what the next run does with the message."""


class IllegalTransition(RuntimeError):
    """A write would move a message's state along no edge of :data:`TRANSITIONS`."""

    def __init__(self, old: str | None, new: str, detail: str = "") -> None:
        shown = "(no row)" if old is None else repr(str(old))
        super().__init__(
            f"import state {shown} cannot become {str(new)!r}" + (f": {detail}" if detail else "")
        )
        self.old = old
        self.new = new


def parse_state(value: str | None) -> ImportState | None:
    """The state a stored value names (None stays None: no row); ValueError if it names none."""
    if value is None:
        return None
    try:
        return ImportState(value)
    except ValueError:
        raise ValueError(f"unknown import state {value!r}") from None


def check_transition(old: str | None, new: str) -> ImportState:
    """``new`` as a state, if a row in ``old`` (None: no row) may move to it; else raises
    :class:`IllegalTransition` (an unknown value on either side is illegal too)."""
    try:
        before, after = parse_state(old), ImportState(new)
    except ValueError as exc:
        raise IllegalTransition(old, new, str(exc)) from None
    if after not in TRANSITIONS[before]:
        raise IllegalTransition(old, new)
    return after


def next_step(state: str | None) -> Step:
    """The step for a recorded ``state`` (None: not recorded); ValueError for an unknown one."""
    return STEPS[parse_state(state)]
