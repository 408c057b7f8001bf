"""``mailgate import`` (docs/import.md): a mailbox's mail to a directory, a webhook or a
command, exactly once across crashes, then post-processed.

- :mod:`.run`: :func:`run_import`, the orchestration of one run;
- :mod:`.options`: :class:`ImportOptions`, :class:`ImportReport`, :class:`MessageOutcome`;
- :mod:`.keys` (message keys) and :mod:`.machine` (the states and their one transition
  table), :mod:`.plan` (what a run does with each message), :mod:`.postprocess` (keep, mark
  read, move, delete): pure;
- :mod:`.ledger` (the processed-messages rows), :mod:`.files` (hashed temporary files, names,
  syncs), :mod:`.actions` (post-processing and oversize mail against the mailbox);
- :mod:`.webhook` (payload, signature, retries) and :mod:`.delivery` (one class per
  destination).

May import: ``mailgate.protocols`` (through the ``Mailbox`` interface only), ``mail``, ``store``,
``settings``, ``connect``, ``mailboxes``; never ``jobs.outbox`` or the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate._faces import lazy_face

if TYPE_CHECKING:
    from mailgate.jobs.importing.options import ImportOptions, ImportReport, MessageOutcome
    from mailgate.jobs.importing.run import run_import

__all__ = ["ImportOptions", "ImportReport", "MessageOutcome", "run_import"]

__getattr__, __dir__ = lazy_face(
    __name__,
    {
        "ImportOptions": "options",
        "ImportReport": "options",
        "MessageOutcome": "options",
        "run_import": "run",
    },
)
