"""The import's ledger in the state store: ``processed_messages`` rows of one job and mailbox.

Every change is one statement over a whole batch (an executemany of inserts or of updates by
primary key) in its own transaction, so recording 1,000 messages costs one commit, not 1,000.
The commit is what makes a state durable (SQLite ``synchronous=FULL``, PostgreSQL's WAL).
The statements are Core ones on the table: the ORM's bulk update spends Python time on every
row (a tenth of an import's client time in the import benchmark), the driver's executemany
does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update

from mailgate.jobs.import_keys import DELIVERED, DONE, ItemKey
from mailgate.store import StateStore
from mailgate.store.models import ProcessedMessage, utcnow

__all__ = ["ImportLedger", "LedgerRow"]

_TABLE: Table = ProcessedMessage.__table__  # type: ignore[assignment]


def _update_by_id(session: Any, changes: Sequence[dict[str, Any]]) -> None:
    """UPDATE rows by id, one executemany per set of columns changed (usually one)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        groups.setdefault(tuple(change), []).append(change)
    for columns, rows in groups.items():
        statement = (
            update(_TABLE)
            .where(_TABLE.c.id == bindparam("row_id"))
            .values({name: bindparam(name) for name in columns if name != "id"})
        )
        session.execute(statement, [row | {"row_id": row["id"]} for row in rows])


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
            ProcessedMessage.state.in_((DELIVERED, DONE)),
            ProcessedMessage.content_hash.is_not(None),
        )
        with self.store.session() as session:
            return {digest: dest or "" for digest, dest in session.execute(query).all() if digest}

    def begin(
        self, keys: Sequence[ItemKey], state: str, known: dict[ItemKey, LedgerRow], **values: Any
    ) -> dict[ItemKey, int]:
        """Record ``state`` for ``keys`` (inserting rows not in ``known``); returns row ids."""
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
                rows = [
                    {
                        "job": self.job,
                        "mailbox": self.mailbox,
                        "folder": key.folder,
                        "uidvalidity": key.uidvalidity,
                        "item_id": key.item_id,
                        "state": state,
                        "created_at": now,
                        "updated_at": now,
                    }
                    | values
                    for key in new
                ]
                returned = (
                    session.execute(
                        insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True), rows
                    )
                    .scalars()
                    .all()
                )
                ids.update(zip(new, returned, strict=True))
        for key, row_id in ids.items():
            known[key] = LedgerRow(row_id, key, state, None, None)
        return ids

    def record(self, changes: Iterable[dict[str, Any]]) -> None:
        """Update rows by ``id`` (each dict: id + the columns to set), in one transaction."""
        now = utcnow()
        batch = [change | {"updated_at": now} for change in changes]
        if not batch:
            return
        with self.store.session(write=True) as session:
            _update_by_id(session, batch)
