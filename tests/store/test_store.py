"""The state store on SQLite and a real PostgreSQL: migrations, models, errors, privacy."""

from __future__ import annotations

import multiprocessing
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from mailgate.errors import ConfigurationError, StoreError
from mailgate.store import database_url, open_store
from mailgate.store.models import Base, Cursor, OutboxMessage, ProcessedMessage


def test_migrations_create_exactly_the_models(store_url: str) -> None:
    store = open_store(store_url)
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    store.close()
    assert diff == []


def test_processed_message_key_is_unique_and_times_are_utc(store_url: str) -> None:
    store = open_store(store_url)
    key = {"job": "j", "mailbox": "alice", "folder": "INBOX", "uidvalidity": 7, "item_id": "42"}
    with store.session() as session:
        session.add(ProcessedMessage(**key, state="delivering", content_hash="ab" * 32))
    with store.session() as session:
        row = session.scalars(select(ProcessedMessage)).one()
        assert row.created_at.tzinfo is not None
        assert row.created_at.utcoffset() == UTC.utcoffset(None)
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(ProcessedMessage(**key, state="delivering"))
    store.close()


def test_outbox_and_cursor_round_trip(store_url: str) -> None:
    store = open_store(store_url)
    with store.session() as session:
        session.add(
            OutboxMessage(
                mailbox="alice",
                message_id="<1@contoso.com>",
                state="queued",
                mime=b"Subject: x\r\n\r\nbody\r\n",
                recipients=["bob@contoso.com", "carol@contoso.com"],
                recipient_count=2,
            )
        )
        session.add(Cursor(mailbox="alice", folder="INBOX", kind="graph-delta", value="link"))
    with store.session() as session:
        message = session.scalars(select(OutboxMessage)).one()
        assert message.recipients == ["bob@contoso.com", "carol@contoso.com"]
        assert message.mime.endswith(b"body\r\n")
        assert message.attempts == 0
        assert message.next_attempt_at <= datetime.now(UTC)
        assert session.get(Cursor, ("alice", "INBOX", "graph-delta")) is not None
    store.close()


def test_a_failed_block_is_rolled_back(store_url: str) -> None:
    store = open_store(store_url)
    with pytest.raises(RuntimeError), store.session() as session:
        session.add(Cursor(mailbox="a", folder="f", kind="k", value="v"))
        session.flush()
        raise RuntimeError("boom")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Cursor)) == 0
    store.close()


def test_naive_datetimes_are_refused(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(Exception, match="naive datetime"), store.session() as session:
        session.add(
            Cursor(mailbox="a", folder="f", kind="k", value="v", updated_at=datetime(2026, 1, 1))
        )
    store.close()


def test_default_store_is_a_private_sqlite_file_in_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILGATE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MAILGATE_DATABASE_URL", raising=False)
    store = open_store()
    assert store.dialect == "sqlite"
    with store.session() as session:
        session.add(Cursor(mailbox="a", folder="f", kind="k", value="v"))
    store.close()
    db = tmp_path / "home" / "state.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with db.open("rb") as handle:
        assert handle.read(16) == b"SQLite format 3\x00"


def test_postgres_urls_use_psycopg_and_bad_urls_are_config_errors() -> None:
    assert database_url("postgresql://u:pw@h/db").drivername == "postgresql+psycopg"
    assert database_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ConfigurationError, match="not a database URL"):
        database_url("not a url")
    with pytest.raises(ConfigurationError, match="unsupported database 'mysql'"):
        database_url("mysql://u@h/db")


def test_unreachable_postgres_is_one_readable_error_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://mailgate:hunter2@127.0.0.1:1/state")
    assert "hunter2" not in str(caught.value)
    assert "***" in str(caught.value)
    assert "MAILGATE_DATABASE_URL" in caught.value.remedy


def _open_and_write(url: str, n: int) -> None:
    store = open_store(url)
    with store.session(write=True) as session:
        session.add(Cursor(mailbox=f"m{n}", folder="f", kind="k", value="v"))
    store.close()


def test_processes_opening_a_new_store_together_migrate_once(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_and_write, args=(store_url, n)) for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = open_store(store_url)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Cursor)) == 4
    store.close()


def test_schema_head_is_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import mailgate.store

    config = Config()
    config.set_main_option(
        "script_location", str(Path(mailgate.store.__file__).parent / "migrations")
    )
    assert ScriptDirectory.from_config(config).get_current_head() == mailgate.store.SCHEMA_HEAD


def test_opening_a_current_store_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(url).close()  # creates and migrates it (in this process)
    code = (
        "import sys; from mailgate.store import open_store; "
        f"open_store({url!r}).close(); print('alembic' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False"
    # A new (empty) store still gets its schema through Alembic.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    done = subprocess.run(
        [sys.executable, "-c", code.replace(url, fresh)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.strip() == "True"


def test_a_file_that_is_not_a_database_is_one_readable_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not SQLite at all, just some text that is long enough" * 20)
    with pytest.raises(StoreError) as caught:
        open_store(f"sqlite:///{path}")
    assert "not a database" in caught.value.message
    assert "move" in caught.value.remedy and str(path) in caught.value.remedy


def test_exclusive_lock_is_held_once_across_processes(store_url: str) -> None:
    code = (
        "import sys; from mailgate.store import open_store; "
        "s = open_store(sys.argv[1]); "
        "cm = s.exclusive('job-a'); print(cm.__enter__())"
    )
    store = open_store(store_url)
    with store.exclusive("job-a") as held:
        assert held
        other = subprocess.run(
            [sys.executable, "-c", code, store_url], capture_output=True, text=True, timeout=60
        )
        assert other.stdout.strip() == "False", other.stderr
        with store.exclusive("job-b") as other_name:
            assert other_name  # another name is another lock
    again = subprocess.run(
        [sys.executable, "-c", code, store_url], capture_output=True, text=True, timeout=60
    )
    assert again.stdout.strip() == "True", again.stderr
    store.close()


def test_a_store_made_by_an_older_release_is_upgraded_in_place(store_url: str) -> None:
    """A store at revision 0001 (with the content_hash index) keeps its rows when opened."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, inspect

    import mailgate.store

    engine = create_engine(database_url(store_url))
    config = Config()
    config.set_main_option(
        "script_location", str(Path(mailgate.store.__file__).parent / "migrations")
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(
            "INSERT INTO processed_messages (job, mailbox, folder, uidvalidity, item_id, state,"
            " content_hash, created_at, updated_at) VALUES ('j', 'a', 'INBOX', 1, '5', 'done',"
            " 'ab', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    indexes = {i["name"] for i in inspect(engine).get_indexes("processed_messages")}
    assert "ix_processed_messages_content_hash" in indexes
    engine.dispose()
    store = open_store(store_url)
    with store.session() as session:
        assert session.scalars(select(ProcessedMessage.content_hash)).all() == ["ab"]
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("processed_messages")}
    store.close()
    assert "ix_processed_messages_content_hash" not in indexes
