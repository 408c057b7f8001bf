"""The state store: what import jobs processed, the outbox, watch cursors.

SQLite in the data directory by default; PostgreSQL when ``MAILGATE_DATABASE_URL`` names one
(several workers then share mailboxes through row leases). The schema is managed by Alembic:
:func:`open_store` upgrades it to the newest revision, once per process and database, under a
lock so that two processes starting together do not both migrate.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from mailgate.errors import ConfigurationError, StoreError
from mailgate.fileio import exclusive_lock
from mailgate.paths import data_dir

__all__ = ["ENV_DATABASE_URL", "SCHEMA_HEAD", "StateStore", "database_url", "open_store"]

ENV_DATABASE_URL = "MAILGATE_DATABASE_URL"
_MIGRATION_LOCK_ID = 0x6D61696C  # "mail": the PostgreSQL advisory lock guarding migrations
# The newest Alembic revision. Opening a store whose ``alembic_version`` already says so needs
# one SELECT and no Alembic at all (importing Alembic and reading its scripts costs a fifth of a
# second on every ``mailgate import``); tests/store keeps this equal to the scripts' head.
SCHEMA_HEAD = "0002"
_migrated: set[str] = set()
_migrate_guard = threading.Lock()


def database_url(url: str | None = None) -> URL:
    """The store's URL: ``url``, ``$MAILGATE_DATABASE_URL`` or SQLite in the data directory.

    ``postgresql://`` and ``postgres://`` use the psycopg 3 driver.
    """
    raw = url or os.environ.get(ENV_DATABASE_URL) or f"sqlite:///{data_dir() / 'state.db'}"
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        raise ConfigurationError(
            f"{ENV_DATABASE_URL} is not a database URL.",
            "use sqlite:////path/to/state.db or postgresql://user:password@host:5432/dbname.",
        ) from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigurationError(
            f"unsupported database {parsed.get_backend_name()!r} in {ENV_DATABASE_URL}.",
            "use SQLite (the default) or PostgreSQL.",
        )
    return parsed


def _shown(url: URL) -> str:
    return url.render_as_string(hide_password=True)


class StateStore:
    """An open state store: an engine plus sessions that commit on success.

    On SQLite every transaction is a real ``BEGIN`` (pysqlite's implicit transactions are turned
    off); ``session(write=True)`` starts with ``BEGIN IMMEDIATE`` so that a read-then-claim
    cannot race another process. On PostgreSQL use ``SELECT … FOR UPDATE SKIP LOCKED`` instead.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect: str = engine.dialect.name
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )

    @property
    def url(self) -> str:
        """The URL with any password hidden, for messages."""
        return _shown(self.engine.url)

    @contextlib.contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session committed when the block ends normally, rolled back otherwise."""
        factory = self._write_sessions if write else self._sessions
        try:
            with factory() as session, session.begin():
                yield session
        except IntegrityError:
            raise  # a constraint the caller relies on (e.g. "already queued"): theirs to handle
        except DBAPIError as exc:
            unusable = _unusable_file(self.engine.url, exc)
            if unusable is not None:
                raise unusable from exc
            raise StoreError(
                f"the state store at {self.url} failed: {_reason(exc)}.",
                "check that the database is reachable and the disk is not full, then retry.",
            ) from exc

    @contextlib.contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Hold the lock ``name`` for the block, across processes (and hosts, on PostgreSQL).

        Yields False, without waiting, when someone else holds it. SQLite: ``flock`` on a file
        beside the database; PostgreSQL: a session advisory lock on a dedicated connection.
        """
        digest = hashlib.sha256(name.encode("utf-8")).digest()
        if self.dialect == "postgresql":
            key = int.from_bytes(digest[:8], "big", signed=True)
            with self.engine.connect() as connection:
                held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
                connection.commit()
                try:
                    yield held
                finally:
                    if held:
                        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        connection.commit()
            return
        database = self.engine.url.database
        where = Path(database).parent if database and database != ":memory:" else data_dir()
        lock_file = where / f".lock-{digest.hex()[:16]}"
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the flock

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _reason(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(exc).__name__


# SQLite's primary result codes (https://sqlite.org/rescode.html) for a file that is no SQLite
# database at all, and for one whose pages are damaged (cut short, overwritten).
_SQLITE_NOTADB = 26
_SQLITE_CORRUPT = 11


def _unusable_file(url: URL, exc: BaseException) -> StoreError | None:
    """The error for a SQLite state file that is not a database or is damaged, else None.

    Such a file never heals by retrying or by checking the URL, the server or the disk: the
    message names the file and what is wrong with it, the remedy how to start again and what
    that loses.
    """
    path = url.database
    if url.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return None
    code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    reason = _reason(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
    if primary == _SQLITE_NOTADB or "not a database" in reason:
        what = f"{path} is not a mailgate state database (SQLite: {reason})"
    elif primary == _SQLITE_CORRUPT or "malformed" in reason:
        what = f"{path} is damaged{_truncation(Path(path))} (SQLite: {reason})"
    else:
        return None
    quoted = shlex.quote(path)
    return StoreError(
        f"{what}.",
        # The -wal and -shm files go too: SQLite would replay an old WAL into the new file.
        f"move it aside with its -wal and -shm files if any (mv {quoted} {quoted}.damaged) "
        "and run again: mailgate creates a new, "
        "empty state database, which has lost the import ledger (imports deliver again the mail "
        "still in their folders) and the outbox (queued messages are not sent). Restore a backup "
        "of the file instead if you have one.",
    )


def _truncation(path: Path) -> str:
    """``": cut short, N of M bytes"`` when the file is shorter than its header says."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            header = handle.read(100)
    except OSError:
        return ""
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return ""
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    expected = page_size * int.from_bytes(header[28:32], "big")
    return f": cut short, {size} of {expected} bytes" if 0 <= size < expected else ""


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    if database and database != ":memory:":
        path = Path(database)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create it private before SQLite does (it holds mail); -wal/-shm copy its mode.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, which the outbox and exactly-once import rely on.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _current_revision(engine: Engine) -> str | None:
    """The store's recorded revision, or None (new store, or not readable this way)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None  # no such table yet: the full migration below creates it


def _migrate(engine: Engine, url: URL) -> None:
    if _current_revision(engine) == SCHEMA_HEAD:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    lock: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if engine.dialect.name == "sqlite" and url.database not in (None, "", ":memory:"):
        lock = exclusive_lock(Path(f"{url.database}.migrate.lock"))
    with lock, engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            lock_sql = text("SELECT pg_advisory_xact_lock(:id)")
            connection.execute(lock_sql, {"id": _MIGRATION_LOCK_ID})
        current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def open_store(url: str | None = None) -> StateStore:
    """Open (and if needed create or upgrade) the state store."""
    parsed = database_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            engine = _sqlite_engine(parsed)
        else:
            engine = create_engine(parsed, pool_pre_ping=True)
        key = _shown(parsed)
        with _migrate_guard:
            if key not in _migrated:
                _migrate(engine, parsed)
                _migrated.add(key)
    except ImportError as exc:
        raise ConfigurationError(
            f"the database driver for {parsed.drivername} is not installed ({exc.name}).",
            "reinstall mailgate (its dependencies include psycopg for PostgreSQL).",
        ) from exc
    except (DBAPIError, OSError) as exc:
        unusable = _unusable_file(parsed, exc)
        if unusable is not None:
            raise unusable from exc
        reason = _reason(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
        raise StoreError(
            f"cannot open the state store at {_shown(parsed)}: {reason}.",
            f"check {ENV_DATABASE_URL}, that the server is running and accepts this user "
            "(with the right to create tables), and that the data directory is writable.",
        ) from exc
    return StateStore(engine)
