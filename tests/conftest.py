"""Shared fixtures: an isolated data directory and a way to run the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mailgate.testing import SandboxController

from tests.postgres import PostgresServer, fresh_database, start_postgres


@dataclass
class CliResult:
    """What one run of ``mailgate`` printed and returned."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class Cli:
    """Runs ``python -m mailgate`` in a subprocess with its own MAILGATE_HOME."""

    home: Path
    env: dict[str, str]

    def __call__(self, *args: str, input: str | None = None, **env: str) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "mailgate", *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env={**self.env, **env},
            timeout=120,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    env.update({"MAILGATE_HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"})
    yield Cli(home, env)


def add_sandbox_credential(
    cli: Cli, idp: SandboxController, name: str = "daemon", app: str = "mailgate-daemon"
) -> None:
    """Point ``cli`` at the running sandbox and store ``app``'s unexpired client secret as
    credential ``name`` (the way a user adds one: ``creds add --secret-stdin``)."""
    cli.env["MAILGATE_SANDBOX"] = str(Path(idp.state_dir) / "sandbox.json")
    registered = idp.app(app)
    secret = next(s for s in registered["secrets"] if not s["expired"])["value"]
    result = cli(
        "creds", "add", name, "--kind", "client-secret", "--cloud", "sandbox",
        "--tenant", idp.tenant("contoso")["id"], "--client-id", registered["client_id"],
        "--secret-stdin", input=secret + "\n",
    )  # fmt: skip
    assert result.code == 0, result.text


def assert_no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.text, result.text
    assert "internal error" not in result.text, result.text


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole session (started on first use)."""
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with fresh_database(postgres_server) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state store URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
