"""The import ledger's batch writes (driver executemany) on SQLite and a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from mailgate.jobs.importing.keys import DELIVERED, DELIVERING, DONE, FAILED, OVERSIZE, ItemKey
from mailgate.jobs.importing.ledger import ImportLedger, LedgerRow
from mailgate.store import open_store
from mailgate.store.models import ProcessedMessage


def test_begin_record_and_read_back(store_url: str) -> None:
    store = open_store(store_url)
    ledger = ImportLedger(store, "nightly", "alice")
    other = ImportLedger(store, "other-job", "alice")  # same keys, another job: apart
    known: dict[ItemKey, LedgerRow] = {}
    keys = [ItemKey("INBOX", 7, str(uid)) for uid in range(1, 251)]
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = ledger.begin(keys, DELIVERING, known)
    other_ids = other.begin(keys[:3], DELIVERING, {})
    assert sorted(ids) == sorted(keys) and len(set(ids.values())) == len(keys)
    assert not set(ids.values()) & set(other_ids.values())
    assert all(known[k].id == ids[k] and known[k].state == DELIVERING for k in keys)
    # A second begin updates rows it knows and inserts the new ones, with an error note.
    more = [*keys[:2], ItemKey("Archive", 9, "x'); DROP TABLE processed_messages;--")]
    ids2 = ledger.begin(more, OVERSIZE, known, error='over 10 bytes: it\'s "big" %s ?')
    assert ids2[keys[0]] == ids[keys[0]]
    changes = [
        {
            "id": ids[k],
            "state": DONE if i % 2 else DELIVERED,
            "message_id": f"<m{i}@example.com>",
            "content_hash": f"{i:064x}",
            "size": 1000 + i,
            "destination": f"/out/{i} ünï ?%s.eml",
            "error": None,
        }
        for i, k in enumerate(keys[2:], start=2)
    ]
    changes.append({"id": ids[keys[2]], "state": FAILED, "error": "webhook: HTTP 500"})
    ledger.record(changes)

    rows = ledger.rows("INBOX")
    assert len(rows) == len(keys)
    assert rows[keys[0]].state == OVERSIZE and rows[keys[2]].state == FAILED
    assert rows[keys[3]].state == DONE and rows[keys[3]].destination == "/out/3 ünï ?%s.eml"
    assert ledger.rows("Archive")[more[2]].state == OVERSIZE
    hashes = ledger.delivered_hashes()
    assert hashes[f"{4:064x}"] == "/out/4 ünï ?%s.eml" and f"{5:064x}" in hashes
    assert f"{2:064x}" not in hashes  # failed: its content does not count as delivered
    with store.session() as session:
        stored = {
            row.item_id: row
            for row in session.scalars(
                select(ProcessedMessage).where(ProcessedMessage.job == "nightly")
            )
        }
    assert stored["1"].error == 'over 10 bytes: it\'s "big" %s ?'
    assert stored["3"].error == "webhook: HTTP 500" and stored["3"].content_hash == f"{2:064x}"
    for row in stored.values():  # timestamps as SQLAlchemy writes them: UTC, comparable
        assert row.created_at.utcoffset() == timedelta(0)
        assert before <= row.created_at <= row.updated_at <= datetime.now(UTC)
    assert other.rows("INBOX").keys() == set(keys[:3])
    store.close()
