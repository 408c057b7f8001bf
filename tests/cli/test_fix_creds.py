"""Review fixes in `mailgate creds`: exit codes for user mistakes, markup, key handling."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli, assert_no_traceback

TID = "0a1b2c3d-0000-4000-8000-00000000abcd"
CID = "11111111-2222-4333-8444-555555555555"


def _add(cli: Cli, *extra: str, **env: str) -> None:
    result = cli(
        "creds", "add", "daemon", "--kind", "client-secret", "--tenant", TID,
        "--client-id", CID, "--secret-env", "S", *extra, S="s3cret-value", **env,
    )  # fmt: skip
    assert result.code == 0, result.text


def test_markup_in_display_name_is_shown_verbatim(cli: Cli) -> None:
    _add(cli, "--display-name", "[/]")
    result = cli("creds", "show", "daemon")
    assert result.code == 0, result.text
    assert "[/]" in result.out


def test_rotate_with_key_file_replaces_master_key(cli: Cli, tmp_path: Path) -> None:
    _add(cli)
    key_file = tmp_path / "new.key"
    assert cli("creds", "new-key", "--out", str(key_file)).code == 0
    result = cli("creds", "rotate-key", "--new-key-file", str(key_file))
    assert result.code == 0, result.text
    assert (cli.home / "master.key").read_text() == key_file.read_text()
    assert cli("creds", "show", "daemon").code == 0


def test_rotate_with_env_key_says_to_set_the_variable(cli: Cli, tmp_path: Path) -> None:
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    cli("creds", "new-key", "--out", str(old))
    cli("creds", "new-key", "--out", str(new))
    env = {"MAILGATE_MASTER_KEY": old.read_text().strip()}
    _add(cli, **env)
    result = cli("creds", "rotate-key", "--new-key-file", str(new), **env)
    assert result.code == 0, result.text
    assert "MAILGATE_MASTER_KEY" in result.text
    shown = cli("creds", "show", "daemon", MAILGATE_MASTER_KEY=new.read_text().strip())
    assert shown.code == 0, shown.text


def test_rm_keeps_key_id_and_creates_no_key(cli: Cli, tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    cli("creds", "new-key", "--out", str(key))
    env = {"MAILGATE_MASTER_KEY": key.read_text().strip()}
    _add(cli, **env)
    key_id = json.loads((cli.home / "vault.json").read_text())["key_id"]
    result = cli("creds", "rm", "daemon")
    assert result.code == 0, result.text
    assert not (cli.home / "master.key").exists()
    assert json.loads((cli.home / "vault.json").read_text())["key_id"] == key_id


def test_replace_forgets_the_old_token_cache(cli: Cli) -> None:
    _add(cli)
    cache = cli.home / "token-cache" / "daemon.bin"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("old tokens")
    _add(cli, "--replace")
    assert not cache.exists()


def test_malformed_vault_is_exit_1(cli: Cli) -> None:
    cli.home.mkdir(parents=True)
    (cli.home / "vault.json").write_text('{"version": 1, "credentials": []}')
    result = cli("creds", "list")
    assert result.code == 1, result.text
    assert_no_traceback(result)


def test_user_mistakes_are_exit_2(cli: Cli, tmp_path: Path) -> None:
    _add(cli)
    (tmp_path / "bad.key").write_bytes("schlüssel".encode())
    (tmp_path / "afile").write_text("x")
    for args in (
        ["creds", "rotate-key", "--new-key-file", str(tmp_path / "missing.key")],
        ["creds", "rotate-key", "--new-key-file", str(tmp_path / "bad.key")],
        ["creds", "new-key", "--out", str(tmp_path / "afile" / "k.key")],
    ):
        result = cli(*args)
        assert result.code == 2, (args, result.text)
        assert_no_traceback(result)
