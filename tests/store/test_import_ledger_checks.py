"""The import ledger checks every state it writes against the transition table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgate.jobs.importing.keys import ItemKey
from mailgate.jobs.importing.ledger import ImportLedger, LedgerRow
from mailgate.jobs.importing.machine import DELIVERED, DELIVERING, DONE, FAILED, IllegalTransition
from mailgate.store import open_store


def test_illegal_writes_raise_before_anything_is_written(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    ledger = ImportLedger(store, "job", "alice")
    known: dict[ItemKey, LedgerRow] = {}
    a, b = ItemKey("INBOX", 1, "1"), ItemKey("INBOX", 1, "2")
    ids = ledger.begin([a, b], DELIVERING, known)
    ledger.record([{"id": ids[a], "state": DONE}])
    with pytest.raises(IllegalTransition, match="'done' cannot become 'delivering'"):
        ledger.begin([b, a], DELIVERING, known)  # a is done: the whole batch is refused
    with pytest.raises(IllegalTransition, match="'done' cannot become 'failed'"):
        ledger.record([{"id": ids[b], "state": DELIVERED}, {"id": ids[a], "state": FAILED}])
    with pytest.raises(IllegalTransition, match="not read or written by this ledger"):
        ledger.record([{"id": 999_999, "state": DONE}])
    with pytest.raises(IllegalTransition, match="cannot become 'delivered'"):
        ledger.begin([ItemKey("INBOX", 1, "3")], DELIVERED, known)  # no row yet
    rows = ImportLedger(store, "job", "alice").rows("INBOX")  # a fresh reader
    assert {k: r.state for k, r in rows.items()} == {a: "done", b: "delivering"}
    # Rows read back are checked from their stored state; values are stored as plain text.
    again = ImportLedger(store, "job", "alice")
    known = again.rows("INBOX")
    again.record([{"id": known[b].id, "state": DELIVERED}])
    with pytest.raises(IllegalTransition):
        again.record([{"id": known[b].id, "state": FAILED}])
    assert type(again.rows("INBOX")[b].state) is str
    store.close()
