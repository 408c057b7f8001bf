"""Constants the CLI spells out itself (to keep heavy modules out of start-up) stay equal to
the ones of the modules they come from."""

from __future__ import annotations

from mailgate.admin.apply import GRAPH_CLI_CLIENT_ID as APPLY_CLIENT_ID
from mailgate.cli.outbox import STATES_HELP
from mailgate.identity.clouds import GRAPH_CLI_CLIENT_ID
from mailgate.jobs.importing.files import SyncMode as FilesSyncMode
from mailgate.jobs.importing.keys import SyncMode
from mailgate.jobs.outbox.operations import STATES


def test_outbox_states_in_the_help_are_the_outbox_states() -> None:
    assert tuple(STATES_HELP) == tuple(STATES)


def test_moved_constants_are_the_same_objects() -> None:
    assert APPLY_CLIENT_ID == GRAPH_CLI_CLIENT_ID == "14d82eec-204b-4c2f-b7e8-296a70dab67e"
    assert FilesSyncMode is SyncMode
    assert [m.value for m in SyncMode] == ["batch", "message"]


def test_setup_option_defaults_are_the_planners() -> None:
    from mailgate.admin.plan import SECRET_DAYS
    from mailgate.admin.render import FORMATS
    from mailgate.cli import setup

    assert setup.SECRET_DAYS == SECRET_DAYS
    assert setup.FORMATS == FORMATS
