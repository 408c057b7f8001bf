"""The import's decisions, one small function each. Pure: no I/O, no clock.

- :func:`plan_run`: which found messages a run delivers, post-processes or skips (by their
  recorded state, :data:`~mailgate.jobs.importing.machine.STEPS`), and which rows recorded
  ``delivered`` the search no longer returns;
- :func:`recover`: what becomes of those rows (post-processed again if still in the folder,
  else done);
- :func:`settle`: what one message of a delivered batch is recorded as, and how it counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailgate.jobs.importing.keys import ItemKey
from mailgate.jobs.importing.machine import DELIVERED, DONE, FAILED, Step, next_step
from mailgate.jobs.importing.options import Kind, MessageOutcome
from mailgate.protocols.base import MessageRef

if TYPE_CHECKING:
    from mailgate.jobs.importing.delivery.common import Delivery
    from mailgate.jobs.importing.ledger import LedgerRow

__all__ = ["MISSING_NOTE", "RENUMBERED_NOTE", "Plan", "Settled", "plan_run", "recover", "settle"]

MISSING_NOTE = "not fetched: the message left the folder during the import"
RENUMBERED_NOTE = "the folder was renumbered (UIDVALIDITY); handled under its new id"


@dataclass
class Plan:
    """What a run does with what it found."""

    deliver: list[MessageRef] = field(default_factory=list)
    postprocess: list[MessageRef] = field(default_factory=list)
    skipped: int = 0  # done or set aside in an earlier run
    stale: list[LedgerRow] = field(default_factory=list)  # delivered, not found by the search


def plan_run(found: dict[ItemKey, MessageRef], known: dict[ItemKey, LedgerRow]) -> Plan:
    """Each found message by the step its recorded state asks for."""
    plan = Plan()
    for key, ref in found.items():
        row = known.get(key)
        step = next_step(row.state if row else None)
        if step is Step.SKIP:
            plan.skipped += 1
        elif step is Step.POSTPROCESS:
            plan.postprocess.append(ref)
        else:
            plan.deliver.append(ref)
    plan.stale = [r for r in known.values() if r.state == DELIVERED and r.key not in found]
    return plan


def recover(
    stale: Sequence[LedgerRow], present: set[ItemKey], validity: int
) -> tuple[list[ItemKey], list[dict[str, Any]]]:
    """Rows recorded ``delivered`` that the search did not return: the keys of those still in
    the folder (``present``: post-process them), and the ledger changes for the others, which
    were post-processed before an interruption (or renumbered: ``validity`` is the folder's
    UIDVALIDITY now, 0 where ids have none)."""
    again: list[ItemKey] = []
    finished: list[dict[str, Any]] = []
    for row in stale:
        if row.key in present:
            again.append(row.key)
        elif row.key.uidvalidity != validity:
            finished.append({"id": row.id, "state": DONE, "error": RENUMBERED_NOTE})
        else:
            finished.append({"id": row.id, "state": DONE})
    return again, finished


@dataclass
class Settled:
    """One message of a batch: its ledger change, its outcome, and how it counts."""

    kind: Kind
    outcome: MessageOutcome
    change: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return self.kind not in (Kind.FAILED, Kind.MISSING)


def settle(
    ref: MessageRef,
    row_id: int,
    delivery: Delivery | None,
    failed_originals: dict[str, str],
    *,
    keep: bool,
    to_directory: bool,
) -> Settled:
    """Record ``delivered`` (``done`` when ``keep``: keeping is all its post-processing) or
    ``failed``. ``failed_originals``: path → error of the batch's messages a destination
    refused (a copy of one of those was not delivered either)."""
    if delivery is None:
        outcome = MessageOutcome(ref.folder, ref.id, FAILED.value, note=MISSING_NOTE)
        return Settled(
            Kind.MISSING, outcome, {"id": row_id, "state": FAILED, "error": MISSING_NOTE}
        )
    item, duplicate_of = delivery.item, delivery.duplicate_of
    outcome = MessageOutcome(
        ref.folder,
        ref.id,
        DELIVERED.value,
        subject=item.subject,
        message_id=item.message_id,
        destination=duplicate_of or delivery.path,
    )
    change: dict[str, Any] = {
        "id": row_id,
        "message_id": item.message_id,
        "content_hash": item.sha256,
        "size": item.size,
        "destination": outcome.destination if to_directory else None,
        "error": None,
    }
    error = delivery.error
    original_error = failed_originals.get(duplicate_of or "")
    if duplicate_of is not None and original_error is not None:
        error = f"same content as {duplicate_of}, which failed: {original_error}"
        change["content_hash"] = None  # never counts as delivered content
    if error is not None:
        change |= {"state": FAILED, "error": error}
        outcome.state, outcome.note = FAILED.value, error
        return Settled(Kind.FAILED, outcome, change)
    change["state"] = DONE if keep else DELIVERED
    saved = delivery.saved
    kind = Kind.DELIVERED
    if duplicate_of is not None:
        outcome.note = change["error"] = f"duplicate of {duplicate_of}"
        kind = Kind.DUPLICATE
    elif saved is not None and saved.existing:
        outcome.note = "already at the destination from an interrupted run"
        kind = Kind.REDELIVERED
    problems = [f"{saved.eml.name}: {p}" for p in saved.problems] if saved else []
    return Settled(kind, outcome, change, problems)
