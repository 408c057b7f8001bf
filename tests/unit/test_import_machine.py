"""The import's state machine: every (from, to) pair against the one table, and the steps."""

from __future__ import annotations

import itertools

import pytest

from mailgate.jobs.importing import keys as import_keys
from mailgate.jobs.importing.machine import (
    STEPS,
    TRANSITIONS,
    IllegalTransition,
    ImportState,
    Step,
    check_transition,
    next_step,
    parse_state,
)

S = ImportState
# Written out on its own, not derived from TRANSITIONS: the test states the design.
ALLOWED = {
    (None, S.DELIVERING),  # a batch is begun
    (None, S.OVERSIZE),  # over the limit before it was ever begun
    (S.DELIVERING, S.DELIVERING),  # an interrupted batch begun again
    (S.DELIVERING, S.DELIVERED),
    (S.DELIVERING, S.DONE),  # after = keep: done once delivered
    (S.DELIVERING, S.FAILED),
    (S.DELIVERING, S.OVERSIZE),  # cut while streaming (size unknown in advance)
    (S.FAILED, S.DELIVERING),  # retried next run
    (S.FAILED, S.OVERSIZE),
    (S.DELIVERED, S.DONE),  # post-processed
}
FROM: list[ImportState | None] = [None, *ImportState]
PAIRS = list(itertools.product(FROM, list(ImportState)))


def test_the_stored_values_never_change() -> None:
    assert {s.value for s in ImportState} == {
        "delivering",
        "delivered",
        "done",
        "failed",
        "oversize",
    }
    assert (import_keys.DELIVERING, import_keys.DELIVERED, import_keys.DONE) == (
        "delivering",
        "delivered",
        "done",
    )
    assert (import_keys.FAILED, import_keys.OVERSIZE) == ("failed", "oversize")


def test_the_table_covers_every_state_and_only_the_allowed_moves() -> None:
    assert set(TRANSITIONS) == set(FROM) and set(STEPS) == set(FROM)
    table = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
    assert table == ALLOWED


@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_every_pair(old: ImportState | None, new: ImportState) -> None:
    for shown_old in (old, None if old is None else old.value):  # member or stored text
        if (old, new) in ALLOWED:
            assert check_transition(shown_old, new.value) is new
            assert check_transition(shown_old, new) is new
        else:
            with pytest.raises(IllegalTransition) as raised:
                check_transition(shown_old, new.value)
            assert isinstance(raised.value, RuntimeError)
            assert (raised.value.old, raised.value.new) == (shown_old, new.value)
            assert repr(new.value) in str(raised.value)


def test_final_states_go_nowhere() -> None:
    assert not TRANSITIONS[S.DONE] and not TRANSITIONS[S.OVERSIZE]


@pytest.mark.parametrize(("old", "new"), [("bogus", "done"), (None, "bogus"), ("done", "")])
def test_unknown_values_are_illegal(old: str | None, new: str) -> None:
    with pytest.raises(IllegalTransition, match=r"unknown import state|not a valid"):
        check_transition(old, new)


def test_steps_follow_the_recorded_state() -> None:
    assert {state: next_step(state) for state in FROM} == {
        None: Step.DELIVER,
        S.DELIVERING: Step.DELIVER,
        S.FAILED: Step.DELIVER,
        S.DELIVERED: Step.POSTPROCESS,
        S.DONE: Step.SKIP,
        S.OVERSIZE: Step.SKIP,
    }
    with pytest.raises(ValueError, match="unknown import state 'bogus'"):
        next_step("bogus")


def test_a_state_the_next_run_delivers_again_may_be_begun_again() -> None:
    # Consistency of the two tables: what STEPS sends back to delivery can be recorded
    # ``delivering``; what it skips can never be written again.
    for state, step in STEPS.items():
        begun = S.DELIVERING in TRANSITIONS[state]
        assert begun == (step is Step.DELIVER)
        if step is Step.SKIP:
            assert not TRANSITIONS[state]


def test_parse_state() -> None:
    assert parse_state(None) is None and parse_state("done") is S.DONE
    with pytest.raises(ValueError, match="unknown import state"):
        parse_state("Done")
