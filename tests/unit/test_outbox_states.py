"""The outbox's state machine (one table of moves, checked writes) and its claim decision."""

from __future__ import annotations

import ast
import itertools
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import mailgate.jobs.outbox.states as states_module
from mailgate.errors import MailgateError
from mailgate.jobs.outbox.operations import STATES
from mailgate.jobs.outbox.ratelimit import (
    DAY,
    SendLimits,
    Submission,
    next_send_time,
    pacing_interval,
)
from mailgate.jobs.outbox.states import (
    COUNTED,
    FINISHED,
    PENDING,
    TERMINAL,
    TRANSITIONS,
    ClaimDecision,
    OutboxState,
    OutboxStateError,
    check_transition,
    decide_claim,
    needs_day,
    submission_window,
)
from mailgate.store.models import OutboxMessage

JOBS = Path(states_module.__file__).parent
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# Written out again on purpose: a change to the table must be a change to this test too.
EXPECTED: dict[str | None, set[str]] = {
    None: {"queued"},
    "queued": {"sending", "failed"},
    "sending": {"sent", "queued", "failed"},
    "sent": set(),
    "failed": {"queued"},
}


# -- the states and the table ------------------------------------------------------------------


def test_the_values_are_the_ones_the_database_stores() -> None:
    assert [state.value for state in OutboxState] == ["queued", "sending", "sent", "failed"]
    assert STATES == ("queued", "sending", "sent", "failed")
    assert all(type(value) is str for value in STATES)
    length = OutboxMessage.__table__.c.state.type.length
    assert all(len(state.value) <= length for state in OutboxState)


def test_the_table_is_the_expected_one_over_exactly_the_enum() -> None:
    assert {old: set(new) for old, new in TRANSITIONS.items()} == EXPECTED
    assert set(TRANSITIONS) - {None} == set(OutboxState)
    assert all(isinstance(new, OutboxState) for news in TRANSITIONS.values() for new in news)


def test_terminal_states_have_no_exits() -> None:
    assert {OutboxState.SENT} == TERMINAL
    assert all(not TRANSITIONS[state] for state in TERMINAL)
    assert all(TRANSITIONS[state] for state in set(OutboxState) - TERMINAL)


def test_every_state_is_reachable_and_can_end_sent() -> None:
    reached: set[OutboxState | None] = {None}
    frontier: list[OutboxState | None] = [None]
    while frontier:
        for new in TRANSITIONS[frontier.pop()]:
            if new not in reached:
                reached.add(new)
                frontier.append(new)
    assert reached - {None} == set(OutboxState)
    for state in OutboxState:  # nothing is stuck: each state can still end up sent
        seen, todo = {state}, [state]
        while todo:
            for new in TRANSITIONS[todo.pop()]:
                if new not in seen:
                    seen.add(new)
                    todo.append(new)
        assert OutboxState.SENT in seen


@pytest.mark.parametrize(
    ("old", "new"), list(itertools.product([None, *OutboxState], list(OutboxState)))
)
def test_a_write_is_allowed_exactly_when_in_the_table(
    old: OutboxState | None, new: OutboxState
) -> None:
    if new.value in EXPECTED[None if old is None else old.value]:
        assert check_transition(old, new) is new
    else:
        with pytest.raises(OutboxStateError, match="may not move from"):
            check_transition(old, new)


def test_values_read_back_from_the_database_are_checked_alike() -> None:
    assert check_transition(OutboxState("failed"), OutboxState.QUEUED) is OutboxState.QUEUED
    with pytest.raises(OutboxStateError):
        check_transition(OutboxState("sent"), OutboxState.QUEUED)
    with pytest.raises(ValueError):
        OutboxState("delivered")  # not an outbox state: reading such a row fails loudly


def test_unknown_states_are_refused() -> None:
    with pytest.raises(OutboxStateError):
        check_transition("bogus", OutboxState.QUEUED)  # type: ignore[arg-type]
    with pytest.raises(OutboxStateError):
        check_transition(OutboxState.QUEUED, "bogus")  # type: ignore[arg-type]


def test_a_refused_write_is_a_programming_error_not_advice() -> None:
    assert issubclass(OutboxStateError, RuntimeError)
    assert not issubclass(OutboxStateError, MailgateError)


def test_the_groups_of_states() -> None:
    assert PENDING == (OutboxState.QUEUED, OutboxState.SENDING)
    assert FINISHED == (OutboxState.SENT, OutboxState.FAILED)
    assert COUNTED == (OutboxState.SENDING, OutboxState.SENT)
    assert set(PENDING) | set(FINISHED) == set(OutboxState)
    assert not set(PENDING) & set(FINISHED)


# -- every state write goes through check_transition --------------------------------------------


NOT_WRITES = {"OutboxEntry"}  # builds what `outbox list` shows from a row read


def _state_writes(tree: ast.AST) -> list[ast.expr]:
    """The values written to ``state``: any ``f(state=…)`` (``.values``, ``OutboxMessage``,
    the worker's own helpers) but :data:`NOT_WRITES`, and ``….state = …``."""
    writes: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in NOT_WRITES:
                writes.extend(k.value for k in node.keywords if k.arg == "state")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                targets = target.elts if isinstance(target, ast.Tuple) else [target]
                for i, one in enumerate(targets):
                    if isinstance(one, ast.Attribute) and one.attr == "state":
                        value = node.value
                        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                            value = value.elts[i]
                        writes.append(value)
    return writes


@pytest.mark.parametrize("module", ["operations.py", "worker.py", "_shared.py"])
def test_every_state_write_goes_through_check_transition(module: str) -> None:
    tree = ast.parse((JOBS / module).read_text(encoding="utf-8"))
    for value in _state_writes(tree):
        assert isinstance(value, ast.Call), ast.unparse(value)
        assert getattr(value.func, "id", None) == "check_transition", ast.unparse(value)


def test_the_write_finder_finds_the_writes() -> None:
    writes = _state_writes(ast.parse((JOBS / "worker.py").read_text(encoding="utf-8")))
    writes += _state_writes(ast.parse((JOBS / "operations.py").read_text(encoding="utf-8")))
    # enqueue, retry, the claim, and _finish (which every outcome goes through)
    assert len(writes) == 4
    caught = _state_writes(ast.parse('row.state = "sent"\nq.values(state="failed")'))
    assert len(caught) == 2


# -- no cycle, a pure module --------------------------------------------------------------------


def _imported(module: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse((JOBS / module).read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_worker_and_the_io_do_not_import_the_outbox() -> None:
    for module in ("worker.py", "_shared.py", "states.py"):
        assert "mailgate.jobs.outbox.operations" not in _imported(module), module
    assert "mailgate.jobs.outbox.worker" not in _imported("_shared.py")


def test_the_states_module_is_pure() -> None:
    assert _imported("states.py") <= {
        "__future__",
        "collections.abc",
        "dataclasses",
        "datetime",
        "enum",
        "types",
        "mailgate.jobs.outbox.ratelimit",
    }
    source = (JOBS / "states.py").read_text(encoding="utf-8")
    assert ".now(" not in source and "utcnow" not in source


def test_importing_the_worker_does_not_load_the_outbox() -> None:
    code = (
        "import sys, mailgate.jobs.outbox.worker\n"
        "assert 'mailgate.jobs.outbox.operations' not in sys.modules, 'outbox loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def s(seconds: float, recipients: int = 1) -> Submission:
    return Submission(T0 + timedelta(seconds=seconds), recipients)


def test_the_window_is_ten_minutes_only_with_a_graph_limit() -> None:
    assert submission_window(SendLimits(30, 10_000)) == timedelta(seconds=60)
    assert submission_window(SendLimits(30, 10_000, 10_000)) == timedelta(minutes=10)


def test_the_day_is_loaded_only_when_the_total_does_not_fit() -> None:
    limits = SendLimits(30, 100)
    assert not needs_day(0, 100, limits)
    assert not needs_day(99, 1, limits)
    assert needs_day(99, 2, limits)
    assert needs_day(0, 101, limits)


def test_nothing_sent_is_claimed_now() -> None:
    assert decide_claim(T0, SendLimits(30, 10_000), 1, [], None) == ClaimDecision(
        OutboxState.SENDING, T0
    )


def test_a_paced_row_stays_queued_until_the_limits_allow() -> None:
    decision = decide_claim(T0 + timedelta(seconds=1), SendLimits(30, 10_000), 1, [s(0)], None)
    assert decision == ClaimDecision(None, T0 + pacing_interval(30))


def test_more_recipients_than_a_day_allows_fails_the_row() -> None:
    decision = decide_claim(T0, SendLimits(30, 10), 11, [], [])
    assert decision.move_to is OutboxState.FAILED and decision.not_before == T0
    assert decision.reason == (
        "11 recipients exceed the daily limit of 10; split the recipient list."
    )
    assert OutboxState.FAILED in TRANSITIONS[OutboxState.QUEUED]


def test_a_full_day_waits_until_old_recipients_age_out() -> None:
    day = [s(-23 * 3600, 9_000)]
    decision = decide_claim(T0, SendLimits(30, 10_000), 2_000, day[-1:], day)
    assert decision == ClaimDecision(None, T0 - timedelta(hours=23) + DAY)


def test_the_decision_follows_next_send_time_and_the_day_shortcut() -> None:
    rng = random.Random(20261207)
    for _ in range(500):
        limits = SendLimits(
            rng.randint(1, 40), rng.randint(1, 50), rng.choice([None, rng.randint(1, 60)])
        )
        day = sorted(
            (s(-rng.uniform(0, 86_000), rng.randint(1, 10)) for _ in range(rng.randint(0, 30))),
            key=lambda sub: sub.at,
        )
        recent = [sub for sub in day if sub.at > T0 - submission_window(limits)]
        recipients = rng.randint(1, 60)
        total = sum(sub.recipients for sub in day)
        loaded = day if needs_day(total, recipients, limits) else None
        decision = decide_claim(T0, limits, recipients, recent, loaded)
        if recipients > limits.recipients_per_day:
            assert loaded is not None and decision.move_to is OutboxState.FAILED
            continue
        at = next_send_time(T0, limits, recipients, recent, day)  # always with the whole day
        assert decision.not_before == at
        assert decision.move_to is (OutboxState.SENDING if at == T0 else None)
