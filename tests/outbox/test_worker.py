"""The outbox worker against a scripted mailbox, on SQLite and PostgreSQL.

A fake clock drives pacing and backoff exactly (no wall-clock assertions); the store is real.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import select, update

from mailgate.jobs.outbox.operations import enqueue, list_entries
from mailgate.jobs.outbox.ratelimit import pacing_interval
from mailgate.jobs.outbox.worker import _HOST, Mode, OutboxWorker
from mailgate.mail.compose import OutgoingMessage
from mailgate.mailboxes import MailboxProfile, MailboxStore
from mailgate.protocols.base import (
    Folder,
    Mailbox,
    MessageRef,
    MessageSummary,
    Operation,
    Protocol,
    SearchCriteria,
)
from mailgate.protocols.smtp import smtp_failure
from mailgate.settings.models import OutboxSettings
from mailgate.store import StateStore, open_store
from mailgate.store.models import OutboxMessage

DEAD_PID = 4_000_000  # above Linux's pid_max: never a live process


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)  # after the rows' enqueue times
        self.start = self.now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)


@dataclass
class Post:
    """What the fake server received and what it will answer."""

    sent: list[tuple[str, bytes, tuple[str, ...], datetime]] = field(default_factory=list)
    script: dict[str, list[Exception]] = field(default_factory=dict)  # subject -> errors
    sent_items: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    clock: Any = None
    delays: dict[str, float] = field(default_factory=dict)  # subject -> seconds to take it

    def subjects(self) -> list[str]:
        return [s for s, *_ in self.sent]


class FakeMailbox(Mailbox):
    protocol: ClassVar[Protocol] = Protocol.GRAPH
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation)

    def __init__(self, post: Post, protocol: Protocol) -> None:
        self.post = post
        self.kind = protocol

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, mime: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        subject = str(message_from_bytes(mime)["Subject"])
        if subject in self.post.delays:  # a large message on a slow link
            await asyncio.sleep(self.post.delays[subject])
        with self.post.lock:
            errors = self.post.script.get(subject)
            if errors:
                raise errors.pop(0)
            when = self.post.clock() if self.post.clock else datetime.now(UTC)
            self.post.sent.append((subject, mime, tuple(recipients), when))
            self.post.sent_items.append(mime)

    async def list_folders(self) -> list[Folder]:
        return [Folder("Inbox", special_use="\\Inbox"), Folder("Sent Items", special_use="\\Sent")]

    async def search(
        self, folder: str, criteria: SearchCriteria, limit: int | None = None
    ) -> list[MessageRef]:
        assert folder == "Sent Items"
        return [MessageRef(folder, str(i)) for i in range(len(self.post.sent_items))]

    async def fetch_headers(self, refs: Sequence[MessageRef]) -> list[MessageSummary]:
        result = []
        for ref in refs:
            parsed = message_from_bytes(self.post.sent_items[int(ref.id)])
            result.append(
                MessageSummary(ref, str(parsed["Subject"]), "", message_id=parsed["Message-ID"])
            )
        return result


class FakeConnector:
    def __init__(self, post: Post) -> None:
        self.post = post

    def adapter(self, profile: MailboxProfile) -> Mailbox:
        return FakeMailbox(self.post, profile.protocol)


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def profiles(tmp_path: Path) -> MailboxStore:
    boxes = MailboxStore(tmp_path / "home")
    for name, protocol in (("out", Protocol.SMTP), ("graph", Protocol.GRAPH)):
        boxes.add(
            MailboxProfile(name=name, credential="c", protocol=protocol, address="desk@contoso.com")
        )
    boxes.add(
        MailboxProfile(name="lone", credential="c", protocol=Protocol.SMTP, address="x@fab.com")
    )
    return boxes


def message(subject: str, *to: str) -> OutgoingMessage:
    return OutgoingMessage(
        sender="desk@contoso.com", to=to or ("a@example.com",), subject=subject, text="hi"
    )


def worker(
    store: StateStore,
    profiles: MailboxStore,
    post: Post,
    clock: FakeClock,
    settings: OutboxSettings,
    **options: Any,
) -> OutboxWorker:
    post.clock = clock
    return OutboxWorker(
        store,
        FakeConnector(post),  # type: ignore[arg-type]
        profiles,
        settings_for=lambda _name: settings,
        clock=clock,
        sleep=clock.sleep,
        jitter=lambda: 0.5,
        **options,
    )


def queue(store: StateStore, profiles: MailboxStore, name: str, *subjects: str) -> list[int]:
    settings = OutboxSettings()
    return [enqueue(store, profiles.get(name), message(s), settings=settings) for s in subjects]


def test_drains_every_message_once_paced_evenly(store: StateStore, profiles: MailboxStore) -> None:
    subjects = [f"m{i}" for i in range(12)]
    queue(store, profiles, "out", *subjects)
    post, clock = Post(), FakeClock()
    settings = OutboxSettings(per_minute=6)
    report = asyncio.run(
        worker(store, profiles, post, clock, settings).run(["out"], Mode.UNTIL_EMPTY)
    )
    assert report.sent == 12 and report.failed == 0
    assert post.subjects() == subjects
    times = [when for *_, when in post.sent]
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {pacing_interval(6)}
    assert all(e.state == "sent" and e.attempts == 1 for e in list_entries(store))


def test_limits_count_every_profile_of_the_address_and_survive_restarts(
    store: StateStore, profiles: MailboxStore
) -> None:
    post, clock = Post(), FakeClock()
    settings = OutboxSettings(per_minute=2)
    queue(store, profiles, "out", "a1", "a2")
    asyncio.run(worker(store, profiles, post, clock, settings).run(["out"], Mode.UNTIL_EMPTY))
    queue(store, profiles, "graph", "b1")
    # a new worker (a restart) for another profile of the same address
    asyncio.run(worker(store, profiles, post, clock, settings).run(["graph"], Mode.UNTIL_EMPTY))
    times = [when for *_, when in post.sent]
    assert times[2] - times[1] >= pacing_interval(2)


def test_recipients_per_day_waits_for_the_window(store: StateStore, profiles: MailboxStore) -> None:
    settings = OutboxSettings(per_minute=100, recipients_per_day=5)
    for i in range(3):
        enqueue(
            store,
            profiles.get("out"),
            message(f"r{i}", "a@example.com", "b@example.com"),
            settings=settings,
        )
    post, clock = Post(), FakeClock()
    asyncio.run(worker(store, profiles, post, clock, settings).run(["out"], Mode.UNTIL_EMPTY))
    times = [when for *_, when in post.sent]
    assert len(times) == 3
    assert times[2] - times[0] == timedelta(hours=24)


def test_transient_failures_back_off_and_succeed(store: StateStore, profiles: MailboxStore) -> None:
    queue(store, profiles, "out", "storm")
    post, clock = Post(), FakeClock()
    post.script["storm"] = [
        smtp_failure(452, "4.3.2 rate limit exceeded; try again in 30 seconds", "data"),
        smtp_failure(421, "4.3.2 Service not available", "mail"),
    ]
    settings = OutboxSettings(backoff_seconds=2, max_backoff_seconds=45)
    report = asyncio.run(
        worker(store, profiles, post, clock, settings).run(["out"], Mode.UNTIL_EMPTY)
    )
    assert (report.sent, report.retried, report.throttled) == (1, 2, 2)
    # the server's "30 seconds", then 421 without a time: the default 60 s, capped at 45
    assert [round(s, 3) for s in clock.slept if s > 0] == [30.0, 45.0]
    (entry,) = list_entries(store)
    assert entry.state == "sent" and entry.attempts == 3 and entry.last_error is None


def test_permanent_failure_is_recorded_with_the_servers_text(
    store: StateStore, profiles: MailboxStore
) -> None:
    queue(store, profiles, "out", "bad", "good")
    post, clock = Post(), FakeClock()
    post.script["bad"] = [smtp_failure(550, "5.1.1 RESOLVER.ADR.RecipNotFound", "rcpt")]
    report = asyncio.run(
        worker(store, profiles, post, clock, OutboxSettings()).run(["out"], Mode.UNTIL_EMPTY)
    )
    assert (report.sent, report.failed) == (1, 1)
    bad, good = list_entries(store)
    assert bad.state == "failed" and "550 5.1.1 RESOLVER.ADR.RecipNotFound" in (
        bad.last_error or ""
    )
    assert bad.attempts == 1 and good.state == "sent"


def test_an_unexpected_error_while_sending_is_an_unknown_outcome_not_a_lost_row(
    store: StateStore, profiles: MailboxStore
) -> None:
    queue(store, profiles, "out", "odd", "good")
    post, clock = Post(), FakeClock()
    post.script["odd"] = [RuntimeError("a library bug")]
    report = asyncio.run(
        worker(store, profiles, post, clock, OutboxSettings()).run(["out"], Mode.UNTIL_EMPTY)
    )
    assert (report.sent, report.unknown) == (1, 1)
    odd, good = list_entries(store)
    assert odd.state == "failed" and "outcome unknown" in (odd.last_error or "")
    assert "RuntimeError" in (odd.last_error or "") and good.state == "sent"


def test_gives_up_after_max_attempts(store: StateStore, profiles: MailboxStore) -> None:
    queue(store, profiles, "out", "busy")
    post, clock = Post(), FakeClock()
    post.script["busy"] = [smtp_failure(451, "4.7.0 busy", "data") for _ in range(5)]
    settings = OutboxSettings(max_attempts=3, max_backoff_seconds=1)
    report = asyncio.run(
        worker(store, profiles, post, clock, settings).run(["out"], Mode.UNTIL_EMPTY)
    )
    (entry,) = list_entries(store)
    assert report.failed == 1 and entry.state == "failed" and entry.attempts == 3
    assert (entry.last_error or "").startswith("gave up after 3 attempts: ")
    assert post.sent == []


def test_once_mode_does_not_wait_for_backoff(store: StateStore, profiles: MailboxStore) -> None:
    queue(store, profiles, "out", "later")
    post, clock = Post(), FakeClock()
    post.script["later"] = [smtp_failure(452, "4.3.2 try again in 300 seconds", "data")]
    report = asyncio.run(
        worker(store, profiles, post, clock, OutboxSettings()).run(["out"], Mode.ONCE)
    )
    assert report.retried == 1 and report.sent == 0
    assert [e.state for e in list_entries(store)] == ["queued"]


def _crash(store: StateStore, outbox_id: int, owner: str, submitted: datetime) -> None:
    with store.session() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == outbox_id)
            .values(
                state="sending",
                lease_owner=owner,
                lease_until=submitted + timedelta(minutes=10),
                submitted_at=submitted,
                attempts=1,
            )
        )


def test_crash_after_acceptance_is_found_in_sent_items_and_not_resent(
    store: StateStore, profiles: MailboxStore
) -> None:
    accepted, lost = queue(store, profiles, "out", "accepted", "lost")
    post, clock = Post(), FakeClock()
    dead = f"{_HOST}:{DEAD_PID}:cafe"
    for outbox_id in (accepted, lost):
        _crash(store, outbox_id, dead, clock.start)
    # the server had accepted "accepted" before the crash: its copy is in Sent Items
    with store.session() as session:
        mime = session.get(OutboxMessage, accepted).mime  # type: ignore[union-attr]
    post.sent_items.append(mime)
    w = worker(store, profiles, post, clock, OutboxSettings(), sent_items_grace=30)
    report = asyncio.run(w.run(["out"], Mode.UNTIL_EMPTY))
    assert post.subjects() == ["lost"]  # sent once, after the check; "accepted" not again
    assert (report.recovered, report.sent) == (1, 2)
    states = {e.id: (e.state, e.last_error) for e in list_entries(store)}
    assert states[accepted][0] == "sent" and "found in Sent Items" in str(states[accepted][1])
    assert states[lost][0] == "sent"
    assert clock.now - clock.start >= timedelta(seconds=30)  # the grace was waited out


def test_crash_without_a_way_to_read_sent_items_is_failed_as_unknown(
    store: StateStore, profiles: MailboxStore
) -> None:
    (outbox_id,) = queue(store, profiles, "lone", "unknown")
    post, clock = Post(), FakeClock()
    _crash(store, outbox_id, f"{_HOST}:{DEAD_PID}:beef", clock.start)
    report = asyncio.run(
        worker(store, profiles, post, clock, OutboxSettings()).run(["lone"], Mode.UNTIL_EMPTY)
    )
    assert report.unknown == 1 and post.sent == []
    (entry,) = list_entries(store)
    assert entry.state == "failed"
    assert entry.last_error == (
        f"outcome unknown after a crash: check Sent Items, then `mailgate outbox retry {outbox_id}`"
    )


def test_a_live_lease_is_left_alone(store: StateStore, profiles: MailboxStore) -> None:
    (outbox_id,) = queue(store, profiles, "lone", "busy elsewhere")
    post, clock = Post(), FakeClock()
    _crash(store, outbox_id, "otherhost:1:abc", clock.start)  # another host, lease valid
    asyncio.run(worker(store, profiles, post, clock, OutboxSettings()).run(["lone"], Mode.ONCE))
    assert post.sent == [] and [e.state for e in list_entries(store)] == ["sending"]
    clock.now = clock.start + timedelta(minutes=11)  # the lease ran out: the owner is gone
    asyncio.run(worker(store, profiles, post, clock, OutboxSettings()).run(["lone"], Mode.ONCE))
    assert [e.state for e in list_entries(store)] == ["failed"]


def test_two_workers_never_send_the_same_message(store: StateStore, profiles: MailboxStore) -> None:
    subjects = [f"w{i}" for i in range(40)]
    queue(store, profiles, "out", *subjects)
    post = Post()
    settings = OutboxSettings(per_minute=100_000)

    def run() -> None:
        w = OutboxWorker(
            store,
            FakeConnector(post),  # type: ignore[arg-type]
            profiles,
            settings_for=lambda _name: settings,
        )
        asyncio.run(w.run(["out"], Mode.UNTIL_EMPTY))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(post.subjects()) == sorted(subjects)
    with store.session() as session:
        owners = session.scalars(select(OutboxMessage.state)).all()
    assert set(owners) == {"sent"}


def test_a_submission_longer_than_the_lease_keeps_it(
    store: StateStore, profiles: MailboxStore
) -> None:
    """Without renewal the second worker would find the lease run out, not find the message in
    Sent Items yet, queue it again and send it a second time."""
    queue(store, profiles, "out", "slow")
    post = Post(delays={"slow": 1.0})
    settings = OutboxSettings()

    def real_time(**options: Any) -> OutboxWorker:
        return OutboxWorker(
            store,
            FakeConnector(post),  # type: ignore[arg-type]
            profiles,
            settings_for=lambda _name: settings,
            jitter=lambda: 0.5,
            **options,
        )

    async def both() -> tuple[Any, Any]:
        first = asyncio.create_task(real_time(lease=timedelta(seconds=0.3)).run(["out"], Mode.ONCE))
        await asyncio.sleep(0.6)  # the first lease would have run out twice by now
        second = await real_time(sent_items_grace=0.0).run(["out"], Mode.ONCE)
        return await first, second

    done, other = asyncio.run(both())
    assert post.subjects() == ["slow"]
    assert done.sent == 1 and done.unknown == 0
    assert other.recovered == other.unknown == other.sent == 0
    assert [e.state for e in list_entries(store)] == ["sent"]
