"""Jobs over mailboxes, one module or folder per job: ``get`` (list and save), ``send`` (at
once), ``importing/`` (exactly-once import), ``outbox/`` (queued, paced sending); triggers and
approvals come next.

Jobs use mailboxes only through the ``Mailbox`` interface (:mod:`mailgate.protocols.base`);
no job imports another job, and none imports the CLI. Use :mod:`mailgate` (the package face)
or the faces of ``importing`` and ``outbox`` rather than their modules.
"""

from __future__ import annotations

__all__: list[str] = []
