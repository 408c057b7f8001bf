"""Settings layering: defaults → file → environment → mailbox → job → command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailgate.errors import ConfigurationError
from mailgate.settings import PostProcess, load_settings, parse_size

CONFIG = """
[import]
after = "mark-read"
max_size = "10MB"

[outbox]
per_minute = 20

[mailboxes.alice.import]
after = "move"
move_to = "Processed"

[mailboxes.alice.outbox]
per_minute = 25

[jobs.nightly]
mailbox = "alice"

[jobs.nightly.import]
after = "delete"
webhook_secret = "env:HOOK_KEY"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, "utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    resolved = load_settings(path=tmp_path / "none.toml", environ={})
    assert resolved.settings.import_.after is PostProcess.KEEP
    assert resolved.settings.import_.max_size == 25 * 1024 * 1024
    assert resolved.settings.outbox.per_minute == 30
    assert resolved.settings.outbox.recipients_per_day == 10_000
    assert set(resolved.sources.values()) == {"default"}


def test_each_layer_overrides_the_one_below_and_names_itself(config: Path) -> None:
    env = {"MAILGATE_OUTBOX_PER_MINUTE": "22", "MAILGATE_IMPORT_BATCH_SIZE": "500", "HOOK_KEY": "k"}
    glob = load_settings(path=config, environ=env)
    assert glob.settings.import_.after is PostProcess.MARK_READ
    assert glob.settings.import_.max_size == 10_000_000
    assert glob.settings.outbox.per_minute == 22
    assert glob.sources["outbox.per_minute"] == "environment MAILGATE_OUTBOX_PER_MINUTE"
    assert glob.sources["import.after"] == f"{config} [import]"

    box = load_settings(mailbox="alice", path=config, environ=env)
    assert box.settings.import_.after is PostProcess.MOVE
    assert box.settings.outbox.per_minute == 25
    assert box.sources["outbox.per_minute"] == f"{config} mailboxes.alice [outbox]"

    job = load_settings(job="nightly", path=config, environ=env)
    assert job.mailbox == "alice"
    assert job.settings.import_.after is PostProcess.DELETE
    assert job.settings.import_.move_to == "Processed"  # inherited from the mailbox
    assert job.settings.import_.batch_size == 500
    secret = job.settings.import_.webhook_secret
    assert secret is not None and secret.reveal() == "k"
    assert ("import.webhook_secret", "***", f"{config} jobs.nightly [import]") in job.rows()

    cli = load_settings(job="nightly", overrides={"import.after": "keep"}, path=config, environ=env)
    assert cli.settings.import_.after is PostProcess.KEEP
    assert cli.sources["import.after"] == "command line"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[import]\nafter = "shred"\n', "import.after"),
        ("[outbox]\nper_minute = 0\n", "outbox.per_minute"),
        ('[import]\nmax_size = "lots"\n', "import.max_size"),
        ('[import]\nwebhook_secret = "s3cret-in-clear"\n', "holds a secret in clear"),
        ('[import]\nwebhook_secret = "env:NOPE"\n', "NOPE, which is not set"),
        ("[import]\nafterr = 1\n", "unknown setting 'import.afterr'"),
        ("[imports]\n", "unknown table 'imports'"),
        ("[oauth]\nstore_enabled = false\n", "basic authentication"),
        ("[jobs.x]\nmailbox = 'a'\nafter = 'keep'\n", "unknown key 'after' in jobs.x"),
        ("[import\n", "not valid TOML"),
    ],
)
def test_bad_settings_are_one_readable_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(job="x" if "jobs.x" in text else None, path=path, environ={})
    assert message in str(caught.value)
    assert "s3cret-in-clear" not in str(caught.value)


def test_unknown_job_and_bad_override(config: Path) -> None:
    with pytest.raises(ConfigurationError, match="no job named 'weekly'"):
        load_settings(job="weekly", path=config, environ={"HOOK_KEY": "k"})
    with pytest.raises(ConfigurationError, match=r"command line: import\.after") as caught:
        load_settings(overrides={"import.after": "nope"}, path=config, environ={})
    assert "permanent-delete" in caught.value.remedy


@pytest.mark.parametrize(
    ("text", "size"),
    [("25MB", 25_000_000), ("35 MiB", 35 * 1024**2), ("1048576", 1048576), (512, 512)],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-5MB", "ten", "5 parsecs", True])
def test_bad_sizes(text: str | bool) -> None:
    with pytest.raises(ValueError):
        parse_size(text)
