"""A state.db that is cut short, not a database or damaged: the CLI names the file, what is wrong
and how to start again (never "check MAILGATE_DATABASE_URL" or "check the disk")."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli, CliResult, assert_no_traceback


@pytest.fixture
def state_db(cli: Cli) -> Path:
    """A real, fresh state.db made by the CLI (its connections closed, so no -wal beside it)."""
    assert cli("outbox", "list", "--json").code == 0
    path = cli.home / "state.db"
    for extra in ("state.db-wal", "state.db-shm"):
        (cli.home / extra).unlink(missing_ok=True)
    return path


def _assert_says_what_and_how(result: CliResult, path: Path, what: str) -> None:
    assert result.code == 1, result.text
    assert f"{path} is {what}" in result.err, result.err
    fix = result.err.split("fix:", 1)[1]
    assert "MAILGATE_DATABASE_URL" not in fix and "disk" not in fix, fix
    assert f"mv {path} {path}.damaged" in fix
    assert "import ledger" in fix and "outbox" in fix
    assert_no_traceback(result)


def test_truncated_state_db(cli: Cli, state_db: Path) -> None:
    state_db.write_bytes(state_db.read_bytes()[:100])
    result = cli("outbox", "list")
    _assert_says_what_and_how(result, state_db, "damaged: cut short, 100 of ")


def test_garbage_state_db(cli: Cli, state_db: Path) -> None:
    state_db.write_bytes(b"\x00garbage, not SQLite\xff" * 300)
    result = cli("outbox", "list")
    _assert_says_what_and_how(result, state_db, "not a mailgate state database")


def test_damaged_page_found_while_reading(cli: Cli, state_db: Path) -> None:
    # The store opens (its schema pages are fine); the outbox table's first page is not.
    with sqlite3.connect(state_db) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'outbox'"
        ).fetchone()[0]
    connection.close()
    data = bytearray(state_db.read_bytes())
    data[(root - 1) * page_size : root * page_size] = b"\x5a" * page_size
    state_db.write_bytes(bytes(data))
    result = cli("outbox", "list")
    _assert_says_what_and_how(result, state_db, "damaged (SQLite: database disk image")


def test_moving_it_aside_starts_again(cli: Cli, state_db: Path) -> None:
    state_db.write_bytes(b"not a database" * 100)
    assert cli("outbox", "list").code == 1
    state_db.rename(state_db.with_name("state.db.damaged"))
    result = cli("outbox", "list", "--json")
    assert result.code == 0 and result.out.strip() == "[]", result.text
