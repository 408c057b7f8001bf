"""The outbox worker: claims rows under a lease, paces them, submits, records the outcome.

One asyncio task per mailbox profile. Each loop claims the next due row in one write transaction
that also decides the pacing (:func:`~mailgate.jobs.outbox.ratelimit.next_send_time` over the
submissions the store recorded for the mailbox's address, whichever profile, worker or process
made them). On SQLite the transaction starts with ``BEGIN IMMEDIATE``, so claims are serialised
between processes; on PostgreSQL the row is taken with ``FOR UPDATE SKIP LOCKED`` and a
transaction-scoped advisory lock per address serialises the pacing decision. Either way two
workers never claim the same row and never both take the same pacing slot.

Crash recovery. A row left in ``sending`` whose lease has run out, or whose owner is a dead
process on this host, had an unknown outcome: the server may or may not have accepted it. So
does a submission whose connection broke after the whole message was handed over
(:class:`~mailgate.protocols.base.SubmissionUnknownError`): its row is released in ``sending``
for the same recovery. It is
not resent blindly. If the address can be read (the profile is IMAP/EWS/Graph, or another
profile for the same address is), its Sent Items is searched for the stable Message-ID once
``sent_items_grace`` seconds have passed since the submission (Exchange files the copy within
moments): found means ``sent``; not found means the server never accepted it, and it is queued
again. Without a way to read the mailbox (SMTP only) the row becomes ``failed`` with "outcome
unknown after a crash", and ``mailgate outbox retry ID`` sends it after a person has checked.

Every state this module writes goes through
:func:`~mailgate.jobs.outbox.states.check_transition`, and the claim's pacing verdict is
:func:`~mailgate.jobs.outbox.states.decide_claim`: here are only the queries and the writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from mailgate.connect import MailboxConnector
from mailgate.errors import ConfigurationError, MailgateError
from mailgate.jobs.outbox._shared import HEADER_BYTES, MailboxSender, in_sent_items, outbox_settings
from mailgate.jobs.outbox.ratelimit import DAY, SendLimits, Submission
from mailgate.jobs.outbox.retries import Verdict, classify, retry_delay
from mailgate.jobs.outbox.states import (
    COUNTED,
    PENDING,
    OutboxState,
    check_transition,
    decide_claim,
    needs_day,
    submission_window,
)
from mailgate.mailboxes import MailboxProfile, MailboxStore
from mailgate.paths import data_dir
from mailgate.processes import other_process_alive
from mailgate.protocols.base import Protocol, SubmissionUnknownError
from mailgate.settings.models import OutboxSettings
from mailgate.store import StateStore
from mailgate.store.models import OutboxMessage, utcnow

__all__ = ["READING_PROTOCOLS", "UNKNOWN_OUTCOME", "DrainReport", "Event", "Mode", "OutboxWorker"]

UNKNOWN_OUTCOME = (
    "outcome unknown after a crash: check Sent Items, then `mailgate outbox retry {id}`"
)
READING_PROTOCOLS = (Protocol.GRAPH, Protocol.EWS, Protocol.IMAP)
_LIVE_OWNERS: set[str] = set()  # lease owners running in this process
_HOST = socket.gethostname()[:30]


class Mode(StrEnum):
    """How long :meth:`OutboxWorker.run` keeps going."""

    ONCE = "once"  # send what is due now (pacing waits included), then stop
    UNTIL_EMPTY = "until-empty"  # also wait out retry backoff until nothing is queued
    FOLLOW = "follow"  # keep polling for new messages until stopped


@dataclass(frozen=True)
class Event:
    """Something the worker did, for progress display: ``kind`` is sent, failed, retry,
    uncertain (the answer to a submission was lost: Sent Items will tell), recovered,
    requeued or unknown."""

    kind: str
    outbox_id: int
    mailbox: str
    detail: str = ""


@dataclass
class DrainReport:
    """What one run did."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    throttled: int = 0
    recovered: int = 0
    unknown: int = 0
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class _Claim:
    id: int
    mime: bytes
    envelope_from: str
    recipients: list[str]
    attempts: int
    message_id: str


@dataclass(frozen=True)
class _Wait:
    until: datetime | None  # None: nothing queued at all
    paced: bool = False  # a row is due but the limits say "not yet"


def _lock_key(address: str) -> int:
    return int.from_bytes(hashlib.sha256(address.lower().encode()).digest()[:8], "big", signed=True)


def _submissions(session: Session, counted: Sequence[Any], *, since: datetime) -> list[Submission]:
    """Submissions (time, recipients) of the rows matching ``counted`` since ``since``, oldest
    first: what the pacing rules count against."""
    rows = session.execute(
        select(OutboxMessage.submitted_at, OutboxMessage.recipient_count)
        .where(*counted, OutboxMessage.submitted_at > since)
        .order_by(OutboxMessage.submitted_at)
    )
    return [Submission(at, n) for at, n in rows if at is not None]


def _owner_alive(owner: str) -> bool:
    """Whether the lease owner ``host:pid:token`` may still be running."""
    if owner in _LIVE_OWNERS:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _HOST or not pid_text.isdigit():
        return True  # another host: only the lease expiry tells
    return other_process_alive(int(pid_text))


class OutboxWorker:
    """Drains the outbox. ``clock``, ``sleep`` and ``jitter`` are injectable for tests."""

    def __init__(
        self,
        store: StateStore,
        connector: MailboxConnector,
        profiles: MailboxStore | None = None,
        *,
        settings_for: Callable[[str], OutboxSettings] = outbox_settings,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
        lease: timedelta = timedelta(minutes=10),
        sent_items_grace: float = 60.0,
        poll_interval: float = 5.0,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.store = store
        self.connector = connector
        self.profiles = profiles or MailboxStore(data_dir())
        self.settings_for = settings_for
        self.clock = clock
        self.sleep = sleep
        self.jitter = jitter
        self.lease = lease
        self.sent_items_grace = sent_items_grace
        self.poll_interval = poll_interval
        self.on_event = on_event
        self.owner = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.report = DrainReport()
        self._stopping = False
        self._released = False  # a row was left "sending" with an unknown outcome just now

    def stop(self) -> None:
        """Finish the submissions in flight, then return from :meth:`run`."""
        self._stopping = True

    def _emit(self, kind: str, outbox_id: int, mailbox: str, detail: str = "") -> None:
        event = Event(kind, outbox_id, mailbox, detail)
        self.report.events.append(event)
        if self.on_event is not None:
            self.on_event(event)

    def pending_mailboxes(self) -> list[str]:
        """Profile names with queued or sending rows."""
        with self.store.session() as session:
            names = session.scalars(
                select(OutboxMessage.mailbox).where(OutboxMessage.state.in_(PENDING)).distinct()
            ).all()
        return sorted(names)

    async def run(
        self, mailboxes: Sequence[str] | None = None, mode: Mode = Mode.ONCE
    ) -> DrainReport:
        """Drain ``mailboxes`` (default: every mailbox with queued messages) in parallel."""
        _LIVE_OWNERS.add(self.owner)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                for name in list(mailboxes) if mailboxes else self.pending_mailboxes():
                    if name in running and not running[name].done():
                        continue
                    try:
                        profile = self.profiles.get(name)
                    except ConfigurationError as exc:
                        if mailboxes:
                            raise
                        self._emit("skipped", 0, name, exc.message)
                        continue
                    running[name] = asyncio.create_task(self._drain(profile, mode))
                if mode is not Mode.FOLLOW or mailboxes:
                    break
                await self.sleep(self.poll_interval)
                if self._stopping:
                    break
                for task in [t for t in running.values() if t.done()]:
                    task.result()  # re-raise a failed mailbox's error
            await asyncio.gather(*running.values())
            return self.report
        finally:
            for task in running.values():
                task.cancel()
            _LIVE_OWNERS.discard(self.owner)

    # -- one mailbox ---------------------------------------------------------------------------

    def _siblings(self, profile: MailboxProfile) -> list[MailboxProfile]:
        """Every profile for the same address: Exchange counts limits per mailbox."""
        same = [p for p in self.profiles.list() if p.address == profile.address]
        return same or [profile]

    async def _drain(self, profile: MailboxProfile, mode: Mode) -> None:
        settings = self.settings_for(profile.name)
        graph = profile.protocol is Protocol.GRAPH
        limits = SendLimits(
            settings.per_minute,
            settings.recipients_per_day,
            settings.graph_requests_per_10_minutes if graph else None,
        )
        siblings = self._siblings(profile)
        gate = asyncio.Semaphore(settings.graph_concurrency if graph else 1)
        sender = MailboxSender(self.connector, profile)
        tasks: set[asyncio.Task[None]] = set()
        try:
            waiting_recovery, recovered_at = False, None
            while not self._stopping:
                # Dead workers' rows are looked for every poll interval, not before every
                # claim: the query would otherwise delay each paced submission a little.
                now = self.clock()
                if (
                    self._released
                    or recovered_at is None
                    or (now - recovered_at).total_seconds()
                    >= min(self.poll_interval, max(0.05, self.sent_items_grace / 4))
                ):
                    # Also at once after a submission's outcome became unknown, so that a run
                    # does not end before it has looked in Sent Items for that message.
                    self._released = False
                    waiting_recovery = await self._recover(profile, siblings)
                    recovered_at = now
                await gate.acquire()
                step = self._claim(profile, siblings, limits)
                if isinstance(step, _Claim):
                    task = asyncio.create_task(self._submit(sender, profile, settings, step, gate))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    continue
                gate.release()
                now = self.clock()
                if step.paced and step.until is not None:
                    await self.sleep(max(0.0, (step.until - now).total_seconds()))
                    continue
                if tasks:  # a send in flight may put its row back in the queue
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if mode is Mode.ONCE:
                    break
                waits = []
                if step.until is not None:  # retry backoff
                    waits.append((step.until - now).total_seconds())
                if waiting_recovery:
                    waits.append(max(0.05, self.sent_items_grace / 4))
                if mode is Mode.FOLLOW:
                    waits.append(self.poll_interval)
                if not waits:
                    break
                await self.sleep(max(0.0, min(waits)))
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            await sender.close()

    def _claim(
        self, profile: MailboxProfile, siblings: list[MailboxProfile], limits: SendLimits
    ) -> _Claim | _Wait:
        names = [p.name for p in siblings]
        with self.store.session(write=True) as session:
            now = self.clock()
            if self.store.dialect == "postgresql":
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _lock_key(profile.address)}
                )
            query = (
                select(OutboxMessage)
                .where(
                    OutboxMessage.mailbox == profile.name,
                    OutboxMessage.state == OutboxState.QUEUED,
                    OutboxMessage.next_attempt_at <= now,
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(1)
            )
            if self.store.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = session.scalars(query).first()
            if row is None:
                later = session.scalar(
                    select(func.min(OutboxMessage.next_attempt_at)).where(
                        OutboxMessage.mailbox == profile.name,
                        OutboxMessage.state == OutboxState.QUEUED,
                    )
                )
                return _Wait(later)
            counted = (
                OutboxMessage.mailbox.in_(names),
                OutboxMessage.state.in_(COUNTED),
                OutboxMessage.submitted_at.is_not(None),
            )
            recent = _submissions(session, counted, since=now - submission_window(limits))
            day_total = session.scalar(
                select(func.coalesce(func.sum(OutboxMessage.recipient_count), 0)).where(
                    *counted, OutboxMessage.submitted_at > now - DAY
                )
            )
            day: list[Submission] | None = None
            if needs_day(int(day_total or 0), row.recipient_count, limits):
                day = _submissions(session, counted, since=now - DAY)
            decision = decide_claim(now, limits, row.recipient_count, recent, day)
            if decision.move_to is None:
                return _Wait(decision.not_before, paced=True)
            row.state = check_transition(OutboxState(row.state), decision.move_to)
            if decision.move_to is OutboxState.FAILED:
                row.last_error = decision.reason
                self._emit("failed", row.id, profile.name, decision.reason)
                self.report.failed += 1
                return _Wait(decision.not_before)
            row.submitted_at = now
            row.last_error = None  # while sending, it can only hold why the outcome is unknown
            row.attempts += 1
            row.lease_owner = self.owner
            row.lease_until = now + self.lease
            return _Claim(
                row.id,
                row.mime,
                row.envelope_from or profile.address,
                list(row.recipients),
                row.attempts,
                row.message_id,
            )

    async def _submit(
        self,
        sender: MailboxSender,
        profile: MailboxProfile,
        settings: OutboxSettings,
        claim: _Claim,
        gate: asyncio.Semaphore,
    ) -> None:
        renewal = asyncio.create_task(self._renew(claim.id))
        try:
            try:
                await sender.send(claim.mime, claim.envelope_from, claim.recipients)
            except SubmissionUnknownError as exc:
                # The server may have the message: as after a crash, not sent again blindly.
                # The row stays "sending" without a lease; _recover looks in Sent Items (after
                # the grace) or, with nothing to read, fails it for a person to check.
                self._release(claim.id, exc.message)
                self._released = True
                self._emit("uncertain", claim.id, profile.name, exc.message)
                return
            except MailgateError as exc:
                self._failed(profile, settings, claim, exc)
                return
            except Exception as exc:  # not ours to classify: the server may have taken it
                reason = (
                    f"outcome unknown after an unexpected {type(exc).__name__} while sending: "
                    f"check Sent Items, then `mailgate outbox retry {claim.id}`"
                )
                self._finish(claim.id, OutboxState.FAILED, last_error=reason)
                self.report.unknown += 1
                self._emit("unknown", claim.id, profile.name, reason)
                return
            if self._finish(claim.id, OutboxState.SENT, sent_at=self.clock(), last_error=None):
                self.report.sent += 1
                self._emit("sent", claim.id, profile.name, claim.message_id)
            else:  # the lease ran out mid-send and another worker took the row over
                self.report.unknown += 1
                self._emit("unknown", claim.id, profile.name, "lease lost while sending")
        finally:
            renewal.cancel()  # a renewal after the outcome was recorded matches no row
            gate.release()

    async def _renew(self, outbox_id: int) -> None:
        """Extend this worker's lease on a row every third of the lease while its submission
        runs: a large message on a slow link may take longer than the lease, and another
        worker finding it expired would look in Sent Items too early and send it again.
        Real time (``asyncio.sleep``), not the injectable clock: the lease is about a live
        worker."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            with contextlib.suppress(MailgateError), self.store.session(write=True) as session:
                # A store that fails here fails the outcome's write too, which says so.
                session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.id == outbox_id,
                        OutboxMessage.state == OutboxState.SENDING,
                        OutboxMessage.lease_owner == self.owner,
                    )
                    .values(lease_until=self.clock() + self.lease)
                )

    def _finish(self, outbox_id: int, to: OutboxState, **values: Any) -> bool:
        """Move the row out of ``sending`` to ``to`` and drop the lease, if this worker still
        holds it; False if it does not (nothing is written then)."""
        return self._write_held(
            outbox_id, state=check_transition(OutboxState.SENDING, to), **values
        )

    def _release(self, outbox_id: int, why: str) -> None:
        """Drop the lease but leave the row in ``sending``, ``why`` its outcome is unknown:
        crash recovery resolves it as it would a dead worker's row."""
        self._write_held(outbox_id, last_error=why)

    def _write_held(self, outbox_id: int, **values: Any) -> bool:
        """Update a row in ``sending`` whose lease this worker holds, ending the lease."""
        with self.store.session(write=True) as session:
            result = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == outbox_id,
                    OutboxMessage.state == OutboxState.SENDING,
                    OutboxMessage.lease_owner == self.owner,
                )
                .values(lease_owner=None, lease_until=None, **values)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def _failed(
        self, profile: MailboxProfile, settings: OutboxSettings, claim: _Claim, exc: MailgateError
    ) -> None:
        failure = classify(exc)
        if failure.throttled:
            self.report.throttled += 1
        if failure.verdict is Verdict.TRANSIENT and claim.attempts < settings.max_attempts:
            delay = retry_delay(
                claim.attempts,
                base=settings.backoff_seconds,
                cap=settings.max_backoff_seconds,
                retry_after=failure.retry_after,
                jitter=self.jitter(),
            )
            self._finish(
                claim.id,
                OutboxState.QUEUED,
                next_attempt_at=self.clock() + timedelta(seconds=delay),
                last_error=failure.reason,
            )
            self.report.retried += 1
            self._emit("retry", claim.id, profile.name, f"in {delay:.1f} s: {failure.reason}")
            return
        reason = failure.reason
        if failure.verdict is Verdict.TRANSIENT:
            reason = f"gave up after {claim.attempts} attempts: {reason}"
        self._finish(claim.id, OutboxState.FAILED, last_error=reason)
        self.report.failed += 1
        self._emit("failed", claim.id, profile.name, reason)

    # -- crash recovery ------------------------------------------------------------------------

    def _reader(
        self, profile: MailboxProfile, siblings: list[MailboxProfile]
    ) -> MailboxProfile | None:
        for protocol in READING_PROTOCOLS:
            for candidate in [profile, *siblings]:
                if candidate.protocol is protocol:
                    return candidate
        return None

    async def _recover(self, profile: MailboxProfile, siblings: list[MailboxProfile]) -> bool:
        """Resolve rows of dead workers; True if some must wait for the Sent Items grace."""
        now = self.clock()
        with self.store.session(write=True) as session:
            stale = session.execute(
                select(
                    OutboxMessage.id,
                    OutboxMessage.lease_owner,
                    OutboxMessage.lease_until,
                    OutboxMessage.submitted_at,
                ).where(
                    OutboxMessage.mailbox == profile.name,
                    OutboxMessage.state == OutboxState.SENDING,
                )
            ).all()
        waiting = False
        for outbox_id, owner, until, submitted in stale:
            expired = until is None or until <= now
            if not expired and owner and _owner_alive(owner):
                continue
            reader = self._reader(profile, siblings)
            young = (
                submitted is not None and (now - submitted).total_seconds() < self.sent_items_grace
            )
            if reader is not None and young:
                waiting = True
                continue
            if not self._take_over(outbox_id, owner):
                continue
            await self._resolve(profile, reader, outbox_id)
        return waiting

    def _take_over(self, outbox_id: int, owner: str | None) -> bool:
        with self.store.session(write=True) as session:
            result = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == outbox_id,
                    OutboxMessage.state == OutboxState.SENDING,
                    OutboxMessage.lease_owner == owner
                    if owner is not None
                    else OutboxMessage.lease_owner.is_(None),
                )
                .values(lease_owner=self.owner, lease_until=self.clock() + self.lease)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _resolve(
        self, profile: MailboxProfile, reader: MailboxProfile | None, outbox_id: int
    ) -> None:
        with self.store.session() as session:
            row = session.get(OutboxMessage, outbox_id)
            assert row is not None
            message_id, submitted, head = row.message_id, row.submitted_at, row.mime[:HEADER_BYTES]
            why = row.last_error  # set when the connection broke after the hand-over
        if reader is None:
            reason = UNKNOWN_OUTCOME.format(id=outbox_id)
            if why:
                reason = f"outcome unknown ({why}): check Sent Items, then " + (
                    f"`mailgate outbox retry {outbox_id}`"
                )
            self._finish(outbox_id, OutboxState.FAILED, last_error=reason)
            self.report.unknown += 1
            self._emit("unknown", outbox_id, profile.name, reason)
            return
        try:
            found = await in_sent_items(self.connector, reader, message_id, submitted, head)
        except MailgateError as exc:
            reason = (
                UNKNOWN_OUTCOME.format(id=outbox_id)
                + f" (Sent Items of {reader.name} could not be read: {exc.message})"
            )
            self._finish(outbox_id, OutboxState.FAILED, last_error=reason)
            self.report.unknown += 1
            self._emit("unknown", outbox_id, profile.name, reason)
            return
        if found:
            self._finish(
                outbox_id,
                OutboxState.SENT,
                sent_at=self.clock(),
                last_error="interrupted after submission; found in Sent Items, so not resent",
            )
            self.report.recovered += 1
            self.report.sent += 1
            self._emit("recovered", outbox_id, profile.name, "found in Sent Items")
        else:
            self._finish(
                outbox_id,
                OutboxState.QUEUED,
                next_attempt_at=self.clock(),
                last_error="interrupted before the server accepted it (not in Sent Items); "
                "queued again",
            )
            self._emit("requeued", outbox_id, profile.name, "not in Sent Items")
