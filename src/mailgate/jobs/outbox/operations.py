"""The durable outbox: accept a message only once it is on disk, send it later within limits.

Python API::

    from mailgate.jobs.outbox.operations import enqueue, drain
    from mailgate.store import open_store

    store = open_store()
    outbox_id = enqueue(store, profile, OutgoingMessage(...))   # committed when it returns
    report = asyncio.run(drain(store, connector))               # sends everything due

The life of a row (table ``outbox``), its states and the one table of the moves between them
are in :mod:`mailgate.jobs.outbox.states`; every state this module writes goes through its
:func:`~mailgate.jobs.outbox.states.check_transition`. ``sending`` and ``submitted_at`` are
committed *before* the message goes to the server and ``sent`` *after* it accepted, so a crash
in between leaves ``sending``; the worker that finds such a row never resends it blindly (see
:mod:`mailgate.jobs.outbox.worker`). The worker itself lives there; this module holds
enqueueing and the queries behind ``mailgate outbox``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from mailgate.errors import ConfigurationError, InvalidInputError
from mailgate.jobs.outbox._shared import HEADER_BYTES, outbox_settings
from mailgate.jobs.outbox.states import FINISHED, PENDING, OutboxState, check_transition
from mailgate.mail.compose import OutgoingMessage
from mailgate.mail.outgoing import prepare_outgoing
from mailgate.mailboxes import MailboxProfile
from mailgate.protocols.base import Operation, Protocol, UnsupportedOperation
from mailgate.settings.models import OutboxSettings
from mailgate.store import StateStore
from mailgate.store.models import OutboxMessage, utcnow

if TYPE_CHECKING:
    from mailgate.jobs.outbox.worker import DrainReport

__all__ = [
    "SENDING_PROTOCOLS",
    "STATES",
    "OutboxEntry",
    "drain",
    "enqueue",
    "list_entries",
    "parse_age",
    "purge",
    "retry",
]

STATES = tuple(state.value for state in OutboxState)  # what `--state` accepts
SENDING_PROTOCOLS = frozenset({Protocol.SMTP, Protocol.EWS, Protocol.GRAPH})


def enqueue(
    store: StateStore,
    profile: MailboxProfile,
    message: OutgoingMessage | bytes,
    *,
    settings: OutboxSettings | None = None,
    envelope_from: str | None = None,
    recipients: Sequence[str] | None = None,
) -> int:
    """Persist ``message`` for sending through ``profile``; returns its outbox id.

    The MIME is built (or checked, for raw bytes) once, with a stable Message-ID, and the row is
    committed before this returns: SQLite with ``synchronous=FULL`` has it on disk, PostgreSQL
    has it committed. Enqueueing the same Message-ID with the same bytes again returns the first
    id (a caller that retries after a crash does not send twice); different bytes under a
    Message-ID already queued are refused.
    """
    if profile.protocol not in SENDING_PROTOCOLS:
        raise UnsupportedOperation(profile.protocol, Operation.SEND, "use SMTP, EWS or Graph.")
    settings = settings or outbox_settings(profile.name)
    prepared = prepare_outgoing(
        message,
        max_size=settings.max_message_size,
        envelope_from=envelope_from,
        recipients=recipients,
    )
    if len(prepared.recipients) > settings.recipients_per_day:
        raise InvalidInputError(
            "recipients",
            f"at most {settings.recipients_per_day} (outbox.recipients_per_day); split the list",
            str(len(prepared.recipients)),
        )
    now = utcnow()
    row = OutboxMessage(
        mailbox=profile.name,
        message_id=prepared.message_id,
        state=check_transition(None, OutboxState.QUEUED),
        mime=prepared.mime,
        envelope_from=prepared.envelope_from,
        recipients=list(prepared.recipients),
        recipient_count=len(prepared.recipients),
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    try:
        with store.session() as session:
            session.add(row)
            session.flush()
            return row.id
    except IntegrityError:
        pass
    with store.session() as session:
        existing = session.scalars(
            select(OutboxMessage).where(OutboxMessage.message_id == prepared.message_id)
        ).one()
        if existing.mailbox == profile.name and existing.mime == prepared.mime:
            return existing.id
        raise ConfigurationError(
            f"Message-ID {prepared.message_id} is already in the outbox (id {existing.id}) "
            "with different content.",
            "give the message a new Message-ID, or leave it out and mailgate makes one.",
        )


async def drain(
    store: StateStore,
    connector: Any,
    mailbox: str | None = None,
    *,
    until_empty: bool = True,
) -> DrainReport:
    """Send what is queued (for ``mailbox`` or all), within each mailbox's limits.

    ``until_empty``: wait through pacing and retry backoff until nothing is left queued;
    otherwise send only what is due now. Returns a
    :class:`~mailgate.jobs.outbox.worker.DrainReport`. For clocks, callbacks and following
    the queue, use :class:`~mailgate.jobs.outbox.worker.OutboxWorker` directly.
    """
    # Imported here so that enqueueing (`mailgate send --queue`) does not load the worker.
    from mailgate.jobs.outbox.worker import Mode, OutboxWorker

    worker = OutboxWorker(store, connector)
    mode = Mode.UNTIL_EMPTY if until_empty else Mode.ONCE
    return await worker.run([mailbox] if mailbox else None, mode)


@dataclass(frozen=True)
class OutboxEntry:
    """One outbox row as ``mailgate outbox list`` shows it (no MIME body)."""

    id: int
    mailbox: str
    state: str
    message_id: str
    subject: str
    envelope_from: str | None
    recipients: list[str]
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    submitted_at: datetime | None
    sent_at: datetime | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key, value in data.items():
            if isinstance(value, datetime):
                data[key] = value.isoformat(timespec="seconds")
        return data


def _subject(head: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(head.split(b"\r\n\r\n")[0] + b"\n\n")
    raw = headers.get("Subject")
    if raw is None:
        return ""
    try:
        return str(make_header(decode_header(str(raw))))
    except (ValueError, LookupError):
        return str(raw)


def _check_state(state: str | None) -> None:
    if state is not None and state not in STATES:
        raise InvalidInputError("--state", f"one of {', '.join(STATES)}", state)


def list_entries(
    store: StateStore,
    *,
    state: str | None = None,
    mailbox: str | None = None,
    ids: Sequence[int] = (),
) -> list[OutboxEntry]:
    """Outbox rows, oldest first, optionally of one state and/or mailbox, or only ``ids``."""
    _check_state(state)
    columns = [c for c in OutboxMessage.__table__.columns if c.name != "mime"]
    head = func.substr(OutboxMessage.mime, 1, HEADER_BYTES).label("head")
    query = select(*columns, head).order_by(OutboxMessage.id)
    if state:
        query = query.where(OutboxMessage.state == state)
    if mailbox:
        query = query.where(OutboxMessage.mailbox == mailbox)
    if ids:
        query = query.where(OutboxMessage.id.in_(ids))
    with store.session() as session:
        rows = session.execute(query).all()
    entries = []
    for row in rows:
        data = row._mapping
        entries.append(
            OutboxEntry(
                id=data["id"],
                mailbox=data["mailbox"],
                state=data["state"],
                message_id=data["message_id"],
                subject=_subject(bytes(data["head"] or b"")),
                envelope_from=data["envelope_from"],
                recipients=list(data["recipients"] or []),
                attempts=data["attempts"],
                created_at=data["created_at"],
                next_attempt_at=data["next_attempt_at"],
                submitted_at=data["submitted_at"],
                sent_at=data["sent_at"],
                last_error=data["last_error"],
            )
        )
    return entries


def retry(store: StateStore, ids: Sequence[int] = (), *, all_failed: bool = False) -> list[int]:
    """Queue failed messages again (attempts start over); returns the ids re-queued.

    Unknown ids, and ids not in state ``failed``, are refused before anything changes.
    """
    if not ids and not all_failed:
        raise InvalidInputError("ID", "an outbox id (see `mailgate outbox list`) or --all-failed")
    now = utcnow()
    with store.session(write=True) as session:
        query = select(OutboxMessage.id, OutboxMessage.state)
        if ids:
            query = query.where(OutboxMessage.id.in_(list(ids)))
        else:
            query = query.where(OutboxMessage.state == OutboxState.FAILED)
        found = dict(session.execute(query).all())
        missing = sorted(set(ids) - set(found))
        if missing:
            raise InvalidInputError(
                "ID", "ids of outbox messages (see `mailgate outbox list`)", _ids(missing)
            )
        not_failed = sorted(i for i, s in found.items() if s != OutboxState.FAILED)
        if not_failed:
            raise ConfigurationError(
                f"outbox message {_ids(not_failed)} is not failed "
                f"({', '.join(sorted({found[i] for i in not_failed}))}); only failed messages "
                "can be retried.",
                "list failed ones with `mailgate outbox list --state failed`.",
            )
        chosen = sorted(found)
        if chosen:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(chosen), OutboxMessage.state == OutboxState.FAILED)
                .values(
                    state=check_transition(OutboxState.FAILED, OutboxState.QUEUED),
                    attempts=0,
                    next_attempt_at=now,
                    lease_owner=None,
                    lease_until=None,
                )
            )
    return chosen


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in ids)


_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_age(value: str, field_name: str = "--sent-before") -> timedelta:
    """``7d``, ``12h``, ``30m``, ``90s``, ``2w`` as a duration."""
    match = _AGE.match(value.lower())
    if not match:
        raise InvalidInputError(field_name, "an age such as 7d, 12h, 30m or 2w", value)
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def purge(
    store: StateStore,
    *,
    older_than: timedelta = timedelta(days=7),
    states: Sequence[str] = FINISHED,
    ids: Sequence[int] = (),
    force: bool = False,
) -> int:
    """Delete finished rows older than ``older_than`` (or the given ids); returns how many.

    Rows still ``queued`` or ``sending`` are only deleted with ``force`` (they would never be
    sent). Without ``force``, ``sent`` rows of the last 24 hours are kept whatever the age
    asked for: they count toward the rolling recipients-per-day limit.
    """
    for state in states:
        _check_state(state)
    unfinished = sorted(s for s in PENDING if s in states)
    if unfinished and not force:
        raise ConfigurationError(
            f"refusing to purge {' and '.join(unfinished)} messages: they have not been sent.",
            "add --force if they really must go (they will never be sent).",
        )
    now = utcnow()
    cutoff = now - older_than
    with store.session(write=True) as session:
        if ids:
            found = dict(
                session.execute(
                    select(OutboxMessage.id, OutboxMessage.state).where(
                        OutboxMessage.id.in_(list(ids))
                    )
                ).all()
            )
            missing = sorted(set(ids) - set(found))
            if missing:
                raise InvalidInputError(
                    "ID", "ids of outbox messages (see `mailgate outbox list`)", _ids(missing)
                )
            busy = sorted(i for i, s in found.items() if s in PENDING)
            if busy and not force:
                raise ConfigurationError(
                    f"outbox message {_ids(busy)} has not been sent yet.",
                    "add --force to delete it anyway (it will never be sent).",
                )
            result = session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(list(ids))))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
        finished_at = func.coalesce(OutboxMessage.sent_at, OutboxMessage.created_at)
        query = delete(OutboxMessage).where(
            OutboxMessage.state.in_(list(states)), finished_at < cutoff
        )
        if not force:
            keep_from = now - timedelta(hours=24)
            query = query.where(
                or_(OutboxMessage.state != OutboxState.SENT, OutboxMessage.sent_at < keep_from)
            )
        result = session.execute(query)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
