"""``mailgate config``: effective settings with sources, ESM import, errors."""

from __future__ import annotations

import json
import stat

from tests.conftest import Cli, assert_no_traceback

ESM = """\
# ESM platform settings, as seed 004 prints them
mail.store.oauth.enabled = true
mail.transport.oauth.enabled = true
mail.oauth.authorize.endpoint =
https://login.microsoftonline.com/b921b89c-a960-4187-9872-28191e34a8f3/oauth2/v2.0/authorize
mail.oauth.client.id = 46a662fb-0fed-4f72-a212-95216e5b0f28
mail.oauth.scopes =
https://outlook.office365.com/IMAP.AccessAsUser.All,https://outlook.office365.com/SMTP.Send
mail.smtp.host = smtp.office365.com
"""


def test_effective_settings_name_their_source(cli: Cli) -> None:
    cli.home.mkdir(parents=True)
    (cli.home / "config.toml").write_text(
        '[outbox]\nper_minute = 20\n\n[mailboxes.alice.import]\nafter = "move"\n'
        'move_to = "Done"\n\n[jobs.nightly]\nmailbox = "alice"\n\n'
        '[jobs.nightly.import]\nafter = "delete"\n',
        "utf-8",
    )
    result = cli(
        "config", "show", "nightly", "--effective", "--json", MAILGATE_OUTBOX_MAX_ATTEMPTS="3"
    )
    assert result.code == 0, result.text
    data = json.loads(result.out)
    settings = data["settings"]
    assert data["mailbox"] == "alice"
    assert settings["import.after"]["value"] == "delete"
    assert settings["import.after"]["source"].endswith("jobs.nightly [import]")
    assert settings["import.move_to"]["value"] == "Done"
    assert settings["import.move_to"]["source"].endswith("mailboxes.alice [import]")
    assert settings["outbox.per_minute"]["source"].endswith("config.toml [outbox]")
    assert settings["outbox.max_attempts"] == {
        "value": "3",
        "source": "environment MAILGATE_OUTBOX_MAX_ATTEMPTS",
    }
    assert settings["outbox.recipients_per_day"] == {"value": "10000", "source": "default"}
    table = cli("config", "show", "nightly", "--effective")
    assert table.code == 0 and "import.after" in table.out and "jobs.nightly" in table.out


def test_esm_settings_import_into_a_job(cli: Cli) -> None:
    source = cli.home.parent / "esm.properties"
    source.write_text(ESM, "utf-8")
    result = cli("config", "import", str(source), "--job", "servicedesk", "--mailbox", "alice")
    assert result.code == 0, result.text
    assert "mail.oauth.client.id → oauth.client_id" in result.out
    assert "ignored mail.smtp.host" in result.err
    config = cli.home / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    shown = json.loads(cli("config", "show", "servicedesk", "--effective", "--json").out)
    settings = shown["settings"]
    assert shown["mailbox"] == "alice"
    assert settings["oauth.client_id"]["value"] == "46a662fb-0fed-4f72-a212-95216e5b0f28"
    assert settings["oauth.scopes"]["value"] == (
        "https://outlook.office365.com/IMAP.AccessAsUser.All "
        "https://outlook.office365.com/SMTP.Send"
    )
    assert settings["oauth.authorize_endpoint"]["source"].endswith("jobs.servicedesk [oauth]")


def test_esm_basic_auth_and_placeholders_are_refused_and_nothing_is_written(cli: Cli) -> None:
    source = cli.home.parent / "esm.properties"
    for text, message in [
        ("mail.store.oauth.enabled = false\n", "basic authentication"),
        ("mail.oauth.client.id = {clientId}\n", "mail.oauth.client.id"),
        (
            "mail.oauth.authorize.endpoint =\n"
            "https://login.microsoftonline.com/{tenantID}/oauth2/v2.0/authorize\n",
            "authorize endpoint",
        ),
        ("this is not a setting\n", "line 1"),
        ("mail.smtp.host = x\n", "none of the mail.oauth settings"),
    ]:
        source.write_text(text, "utf-8")
        result = cli("config", "import", str(source))
        assert result.code == 2, result.text
        assert message in result.err
        assert_no_traceback(result)
        assert not (cli.home / "config.toml").exists()


def test_broken_config_file_is_one_readable_error(cli: Cli) -> None:
    cli.home.mkdir(parents=True)
    (cli.home / "config.toml").write_text('[import]\nafter = "shred"\n', "utf-8")
    result = cli("config", "show", "--effective")
    assert result.code == 2
    assert "import.after" in result.err and "permanent-delete" in result.err
    assert_no_traceback(result)
    missing = cli("config", "show", "nope", "--effective")
    assert missing.code == 2 and "no job named 'nope'" in missing.err
    assert cli("config", "import", str(cli.home / "absent.txt")).code == 2


def test_a_data_directory_others_can_write_is_refused(cli: Cli) -> None:
    cli.home.mkdir(parents=True)
    cli.home.chmod(0o777)
    result = cli("creds", "list")
    assert result.code == 2
    assert "can be written by other users" in result.err and "chmod 700" in result.err
    assert_no_traceback(result)
    assert not (cli.home / "master.key").exists()
