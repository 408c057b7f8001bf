"""The durable outbox (docs/outbox.md): queued messages sent at Exchange's pace, nothing twice.

- :mod:`.operations`: enqueue, drain, list, retry, purge (what the CLI and the Python API call);
- :mod:`.worker`: the leased, paced worker with crash recovery (Sent Items decides);
- :mod:`.states`: the states, their one transition table and the claim decision (pure);
- :mod:`.ratelimit`: Exchange's submission limits as pure functions; :mod:`.retries`: which
  failures are worth another try and when;
- :mod:`._shared`: settings and SQL the operations and the worker share.

May import: ``mailgate.protocols``, ``mail``, ``store``, ``settings``, ``connect``,
``mailboxes``; never ``jobs.importing`` or the CLI. Names load on first use, so importing the
worker alone does not load the operations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate._faces import lazy_face

if TYPE_CHECKING:
    from mailgate.jobs.outbox.operations import (
        STATES,
        OutboxEntry,
        drain,
        enqueue,
        list_entries,
        parse_age,
        purge,
        retry,
    )
    from mailgate.jobs.outbox.states import OutboxState
    from mailgate.jobs.outbox.worker import DrainReport, Mode, OutboxWorker

__all__ = [
    "STATES",
    "DrainReport",
    "Mode",
    "OutboxEntry",
    "OutboxState",
    "OutboxWorker",
    "drain",
    "enqueue",
    "list_entries",
    "parse_age",
    "purge",
    "retry",
]

__getattr__, __dir__ = lazy_face(
    __name__,
    {
        **dict.fromkeys(
            ["STATES", "OutboxEntry", "drain", "enqueue", "list_entries", "parse_age", "purge"],
            "operations",
        ),
        "retry": "operations",
        "OutboxState": "states",
        **dict.fromkeys(["DrainReport", "Mode", "OutboxWorker"], "worker"),
    },
)
