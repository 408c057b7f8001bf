"""The post-processing policy of an import, checked before anything is fetched. Pure.

Seed 003's users lost mail because an import *permanently* deleted what it had imported, where
they expected Deleted Items. So here:

- the default is ``keep``; ``delete`` means Deleted Items (recoverable);
- ``permanent-delete`` needs the value named where it cannot come from a shared default (the
  command line, or the job's own settings) **and** a confirmation
  (``--yes-permanently-delete`` or ``confirm_permanent_delete = true`` in the job);
- ``move`` needs a folder;
- what the protocol cannot do (POP3: only keep or permanently delete) is refused up front,
  naming what it can do, so no message is fetched under a policy that would then fail.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mailgate.errors import ConfigurationError
from mailgate.protocols.base import Operation, Protocol, UnsupportedOperation
from mailgate.settings import PostProcess

__all__ = ["Policy", "check_policy", "explicit_source", "is_oversize", "required_operations"]

_OPERATION = {
    PostProcess.KEEP: None,
    PostProcess.MARK_READ: Operation.FLAGS,
    PostProcess.MOVE: Operation.MOVE,
    PostProcess.DELETE: Operation.DELETE,
    PostProcess.PERMANENT_DELETE: Operation.DELETE_PERMANENTLY,
}


@dataclass(frozen=True)
class Policy:
    """A checked policy: what to do after delivery, and where oversize mail goes."""

    after: PostProcess
    move_to: str | None
    max_size: int
    oversize_folder: str | None  # None: the protocol cannot move, oversize mail stays put


def explicit_source(source: str) -> bool:
    """True for a value set on the command line or in a ``[jobs.<name>]`` table.

    Global and per-mailbox settings are shared defaults: a permanent delete must not ride in
    on one of those unnoticed.
    """
    return source == "command line" or " jobs." in source


def required_operations(after: PostProcess) -> set[Operation]:
    """Mailbox operations the post-processing needs."""
    operation = _OPERATION[after]
    return {operation} if operation else set()


def _alternative(protocol: Protocol, after: PostProcess) -> str:
    if protocol is Protocol.POP3:
        return (
            "POP3 can only keep messages or delete them for good: use --after keep, or "
            "--after permanent-delete --yes-permanently-delete; for mark-read, move or delete "
            "to Deleted Items use an IMAP, EWS or Graph mailbox."
        )
    return f"use --after keep, or an IMAP, EWS or Graph mailbox for --after {after.value}."


def check_policy(
    after: PostProcess,
    *,
    after_source: str,
    confirmed: bool,
    move_to: str | None,
    max_size: int,
    oversize_folder: str,
    protocol: Protocol,
    operations: Iterable[Operation],
) -> Policy:
    """The policy to run with, or the error that explains why not (before any fetch)."""
    supported = set(operations)
    if after is PostProcess.PERMANENT_DELETE:
        if not explicit_source(after_source):
            raise ConfigurationError(
                f"import.after = permanent-delete comes from {after_source}, a shared default; "
                "mailgate permanently deletes only when the command line or the job itself "
                "says so.",
                "use --after delete (to Deleted Items, recoverable), or name permanent-delete "
                "with --after or in [jobs.<name>.import] and confirm it.",
            )
        if not confirmed:
            raise ConfigurationError(
                "--after permanent-delete removes imported mail for good (not to Deleted Items) "
                "and needs confirmation.",
                "use --after delete to move imported mail to Deleted Items (recoverable), or add "
                "--yes-permanently-delete (job setting: confirm_permanent_delete = true).",
            )
    if after is PostProcess.MOVE and not (move_to and move_to.strip()):
        raise ConfigurationError(
            "--after move needs the folder to move imported mail to.",
            "add --move-to FOLDER (job setting: move_to), e.g. --move-to Processed.",
        )
    for operation in required_operations(after):
        if operation not in supported:
            raise UnsupportedOperation(protocol, operation, _alternative(protocol, after))
    return Policy(
        after=after,
        move_to=move_to.strip() if after is PostProcess.MOVE and move_to else None,
        max_size=max_size,
        oversize_folder=oversize_folder if Operation.MOVE in supported else None,
    )


def is_oversize(size: int | None, max_size: int) -> bool:
    """True when a known size is over the limit (unknown sizes are checked while streaming)."""
    return size is not None and size > max_size
