"""The import's ledger in the state store: ``processed_messages`` rows of one job and mailbox.

Every change is one statement over a whole batch (an executemany of inserts or of updates by
primary key) in its own transaction, so recording 1,000 messages costs one commit, not 1,000.
The commit is what makes a state durable (SQLite ``synchronous=FULL``, PostgreSQL's WAL).
The batch writes go to the database driver's own ``executemany`` with plain tuples: through
SQLAlchemy (the ORM's bulk update, and Core's per-row parameter processing after it) the same
writes cost four times as much, a tenth of an import's client time. Timestamps are converted
once per batch by the column type, so the stored values are the ones SQLAlchemy would write.

Every state it writes is checked first against :data:`mailgate.jobs.importing.machine.TRANSITIONS`
(from the state the row had when this ledger last read or wrote it: within one ``record`` batch,
the state before the batch), and an illegal one raises
:class:`~mailgate.jobs.importing.machine.IllegalTransition` before anything is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from mailgate.jobs.importing.keys import ItemKey
from mailgate.jobs.importing.machine import (
    DELIVERED,
    DONE,
    IllegalTransition,
    ImportState,
    check_transition,
)
from mailgate.store import StateStore
from mailgate.store.models import ProcessedMessage, utcnow

__all__ = ["ImportLedger", "LedgerRow"]

_TABLE: Table = ProcessedMessage.__table__  # type: ignore[assignment]


def _execute_many(session: Session, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """``sql`` (written with ``?``) for each row, by the driver's executemany."""
    connection = session.connection()
    if connection.dialect.paramstyle != "qmark":  # psycopg: format / pyformat
        sql = sql.replace("?", "%s")
    connection.exec_driver_sql(sql, list(rows))


def _stored(session: Session, column: str, value: Any) -> Any:
    """``value`` as the column's type binds it on this database (UtcDateTime: UTC; as text
    on SQLite), the conversion SQLAlchemy's own statements apply."""
    dialect = session.connection().dialect
    processor = _TABLE.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor is not None else value


def _update_by_id(session: Session, changes: Sequence[dict[str, Any]]) -> None:
    """UPDATE rows by id, one executemany per set of columns changed (usually one)."""
    stamps: dict[tuple[str, Any], Any] = {}  # a batch shares its timestamp: convert it once

    def stored(name: str, value: Any) -> Any:
        if name not in _TIMESTAMPS:
            return value
        if (name, value) not in stamps:
            stamps[name, value] = _stored(session, name, value)
        return stamps[name, value]

    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(name for name in change if name != "id"), []).append(change)
    for columns, rows in groups.items():
        assignments = ", ".join(f"{_TABLE.c[name].name} = ?" for name in columns)
        values = [(*(stored(name, row[name]) for name in columns), row["id"]) for row in rows]
        # Column names come from the table (unknown ones raise KeyError above); values are bound.
        sql = f"UPDATE {_TABLE.name} SET {assignments} WHERE id = ?"  # noqa: S608
        _execute_many(session, sql, values)


_TIMESTAMPS = frozenset({"created_at", "updated_at"})
_INSERTED = ("job", "mailbox", "folder", "uidvalidity", "item_id", "state")
_INSERTED_AT = ("created_at", "updated_at")


@dataclass
class LedgerRow:
    """What the store knows about one message of the job."""

    id: int
    key: ItemKey
    state: str
    content_hash: str | None
    destination: str | None


class ImportLedger:
    """Reads and writes the rows of (job, mailbox)."""

    def __init__(self, store: StateStore, job: str, mailbox: str) -> None:
        self.store = store
        self.job = job
        self.mailbox = mailbox
        # Each row's state as this ledger last read or wrote it: what a write is checked from.
        self._states: dict[int, str] = {}

    def _where(self) -> tuple[Any, ...]:
        return (ProcessedMessage.job == self.job, ProcessedMessage.mailbox == self.mailbox)

    def rows(self, folder: str) -> dict[ItemKey, LedgerRow]:
        """Every row of the job in ``folder`` (all UIDVALIDITYs), by key."""
        query = select(
            ProcessedMessage.id,
            ProcessedMessage.uidvalidity,
            ProcessedMessage.item_id,
            ProcessedMessage.state,
            ProcessedMessage.content_hash,
            ProcessedMessage.destination,
        ).where(*self._where(), ProcessedMessage.folder == folder)
        with self.store.session() as session:
            found = session.execute(query).all()
        self._states.update((row_id, state) for row_id, _v, _i, state, _d, _t in found)
        return {
            ItemKey(folder, validity, item): LedgerRow(
                row_id, ItemKey(folder, validity, item), state, digest, destination
            )
            for row_id, validity, item, state, digest, destination in found
        }

    def delivered_hashes(self) -> dict[str, str]:
        """sha256 → destination of every message the job delivered from this mailbox.

        A message that comes back under a new key (UIDVALIDITY changed, moved out and back) is
        recognised by its content and not delivered twice.
        """
        query = select(ProcessedMessage.content_hash, ProcessedMessage.destination).where(
            *self._where(),
            ProcessedMessage.state.in_((DELIVERED.value, DONE.value)),
            ProcessedMessage.content_hash.is_not(None),
        )
        with self.store.session() as session:
            return {digest: dest or "" for digest, dest in session.execute(query).all() if digest}

    def begin(
        self, keys: Sequence[ItemKey], state: str, known: dict[ItemKey, LedgerRow], **values: Any
    ) -> dict[ItemKey, int]:
        """Record ``state`` for ``keys`` (inserting rows not in ``known``); returns row ids."""
        for key in keys:
            row = known.get(key)
            check_transition(self._states.get(row.id, row.state) if row else None, state)
        state = ImportState(state).value  # the plain text, as stored
        now = utcnow()
        ids = {key: known[key].id for key in keys if key in known}
        new = [key for key in keys if key not in known]
        with self.store.session(write=True) as session:
            if ids:
                _update_by_id(
                    session,
                    [
                        {"id": row_id, "state": state, "error": None, "updated_at": now} | values
                        for row_id in ids.values()
                    ],
                )
            if new:
                ids.update(self._insert(session, new, state, now, values))
        for key, row_id in ids.items():
            known[key] = LedgerRow(row_id, key, state, None, None)
            self._states[row_id] = state
        return ids

    def _insert(
        self,
        session: Session,
        keys: Sequence[ItemKey],
        state: str,
        now: datetime,
        values: dict[str, Any],
    ) -> dict[ItemKey, int]:
        """Insert a row per key; their ids, read back by the insert's own timestamp."""
        stamp = _stored(session, "created_at", now)
        columns = [_TABLE.c[name].name for name in (*_INSERTED, *_INSERTED_AT, *values)]
        extra = tuple(values.values())
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {_TABLE.name} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        job, mailbox = self.job, self.mailbox
        rows = [
            (job, mailbox, k.folder, k.uidvalidity, k.item_id, state, stamp, stamp, *extra)
            for k in keys
        ]
        _execute_many(session, sql, rows)
        # Every row of this insert has ``now`` as created_at (one run of a job at a time); the
        # unique key maps them back, whatever else shares the timestamp.
        query = select(_TABLE.c.id, _TABLE.c.folder, _TABLE.c.uidvalidity, _TABLE.c.item_id)
        query = query.where(*self._where(), _TABLE.c.created_at == now)
        found = {
            ItemKey(folder, validity, item): row_id
            for row_id, folder, validity, item in session.execute(query)
        }
        return {key: found[key] for key in keys}

    def record(self, changes: Iterable[dict[str, Any]]) -> None:
        """Update rows by ``id`` (each dict: id + the columns to set), in one transaction."""
        now = utcnow()
        batch = [change | {"updated_at": now} for change in changes]
        if not batch:
            return
        states = {change["id"]: self._checked(change) for change in batch if "state" in change}
        with self.store.session(write=True) as session:
            _update_by_id(session, batch)
        self._states.update(states)

    def _checked(self, change: dict[str, Any]) -> str:
        """The state ``change`` writes, as stored text, if its row may move there."""
        row_id = change["id"]
        if row_id not in self._states:
            raise IllegalTransition(
                None, change["state"], f"row {row_id} was not read or written by this ledger"
            )
        state: ImportState = check_transition(self._states[row_id], change["state"])
        change["state"] = state.value
        return state.value
