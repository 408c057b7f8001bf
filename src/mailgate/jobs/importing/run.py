"""``import``: deliver matching messages to a directory, a webhook or a command, exactly once,
then post-process them (keep, mark read, move, delete to Deleted Items, permanently delete).

The Python API under ``mailgate import``. Per batch (``import.batch_size`` messages):

1. sizes first (IMAP: one ``SEARCH LARGER`` per run, then ``RFC822.SIZE`` of just those;
   EWS/POP3 from the headers step); messages over ``max_size`` are never fetched but moved to
   the oversize folder (created if missing), recorded ``oversize`` and reported, and the
   import goes on (seed 004). Graph gives no size: the stream is cut at the limit and the
   message moved after;
2. the batch is recorded ``delivering`` (one transaction), then fetched (IMAP: one bulk
   ``UID FETCH``) into hashed temporary files and published under deterministic names;
3. one sync makes the batch's files durable; webhooks get their 2xx, commands their exit 0;
4. the batch is recorded ``delivered`` (or ``failed``: not post-processed, retried next run);
5. post-processing, then ``done`` (with ``after = keep`` step 4 records ``done`` at once).

A crash anywhere leaves each message in a state the next run finishes from (see
:mod:`mailgate.jobs.importing.keys`): nothing delivered twice, nothing post-processed before its
output was durable. Content hashes catch a message that comes back under a new id.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Sequence

from mailgate.errors import MailgateError
from mailgate.jobs.importing.actions import MailboxActions
from mailgate.jobs.importing.delivery.common import Delivery
from mailgate.jobs.importing.delivery.route import route
from mailgate.jobs.importing.files import Fetched, FetchSink
from mailgate.jobs.importing.keys import DELIVERING, DONE, OVERSIZE, ItemKey, KeyBook
from mailgate.jobs.importing.ledger import ImportLedger, LedgerRow
from mailgate.jobs.importing.options import ImportOptions, ImportReport, MessageOutcome
from mailgate.jobs.importing.plan import plan_run, recover, settle
from mailgate.jobs.importing.postprocess import Policy
from mailgate.protocols.base import BulkFetch, Mailbox, MessageRef, SearchCriteria
from mailgate.settings import PostProcess
from mailgate.store import StateStore

__all__ = ["ImportOptions", "ImportReport", "MessageOutcome", "run_import"]


class _ImportRun:
    """One run: finds, plans, then per batch checks sizes, fetches, delivers, records and
    post-processes; every decision is a unit of its own (see the imports above)."""

    def __init__(
        self,
        mailbox: Mailbox,
        mailbox_name: str,
        policy: Policy,
        options: ImportOptions,
        store: StateStore,
        advance: Callable[[int], None],
    ) -> None:
        self.box, self.policy, self.options, self.advance = mailbox, policy, options, advance
        self.folder = options.folder
        self.keys = KeyBook(mailbox.protocol, options.job, mailbox_name)
        self.ledger = ImportLedger(store, options.job, mailbox_name)
        self.report = ImportReport(options.job)
        self.actions = MailboxActions(mailbox, policy)
        self.known: dict[ItemKey, LedgerRow] = {}
        self.hashes: dict[str, str] = {}  # content delivered before → where it went
        self.landing, self.destinations = route(options, mailbox_name)

    async def run(self, on_found: Callable[[int], None]) -> ImportReport:
        try:
            await self._run(on_found)
        finally:
            for destination in self.destinations:
                await destination.aclose()
        return self.report

    async def _run(self, on_found: Callable[[int], None]) -> None:
        refs = await self.box.search(self.folder, self.options.criteria, self.options.limit)
        self.report.found = len(refs)
        on_found(len(refs))
        self.known = self.ledger.rows(self.folder)
        self.hashes = self.ledger.delivered_hashes()
        found = {self.keys.key(ref): ref for ref in refs}
        plan = plan_run(found, self.known)
        self.report.skipped = plan.skipped
        self.advance(plan.skipped)
        postprocess = plan.postprocess
        if plan.stale:
            postprocess += await self._recover(plan.stale)
        if postprocess:
            await self.actions.postprocess(postprocess)
            self._mark_done(postprocess)
            self.advance(len([r for r in postprocess if self.keys.key(r) in found]))
        size, deliver = self.options.batch_size, plan.deliver
        heavy = self.options.attachments and self.options.to is not None
        connections = self.options.connections
        fetch = await self.box.bulk_fetch(
            len(deliver), connections=connections, batch=size, heavy=heavy
        )
        async with fetch:
            for start in range(0, len(deliver), size):
                await self._batch(fetch, deliver[start : start + size])
            self.report.connections = fetch.connections

    def _mark_done(self, refs: Sequence[MessageRef]) -> None:
        self.ledger.record({"id": self.known[self.keys.key(r)].id, "state": DONE} for r in refs)

    async def _recover(self, stale: list[LedgerRow]) -> list[MessageRef]:
        present = {self.keys.key(r) for r in await self.box.search(self.folder, SearchCriteria())}
        again, finished = recover(stale, present, await self.box.uidvalidity(self.folder))
        self.ledger.record(finished)
        return [self.keys.ref(key) for key in again]

    async def _batch(self, fetch: BulkFetch, refs: list[MessageRef]) -> None:
        sizes = await fetch.sizes_over(refs, self.policy.max_size)
        over = [r for r in refs if r.id in sizes.over]
        if over:
            await self._set_aside(over, sizes.over)
        todo = [r for r in refs if r.id not in sizes.over]
        if not todo:
            return
        self.ledger.begin([self.keys.key(r) for r in todo], DELIVERING, self.known)
        limits = {r.id: self.policy.max_size for r in todo if r.id in sizes.unknown}
        deliveries, too_large = await self._fetch(fetch, todo, limits)
        if too_large:
            await self._set_aside(too_large, {})
        pending = [d for d in deliveries.values() if d.duplicate_of is None]
        for destination in self.destinations:  # the landing's sync first, before any other
            await destination.deliver([d for d in pending if d.error is None])
        for destination in self.destinations:
            await destination.finish(pending)
        delivered = self._record(todo, deliveries, too_large)
        if delivered:
            if self.policy.after is not PostProcess.KEEP:
                await self.actions.postprocess(delivered)
                self._mark_done(delivered)
            self.report.postprocessed += len(delivered)

    async def _fetch(
        self, fetch: BulkFetch, refs: list[MessageRef], limits: dict[str, int]
    ) -> tuple[dict[str, Delivery], list[MessageRef]]:
        deliveries: dict[str, Delivery] = {}

        def on_fetched(item: Fetched) -> None:
            deliveries[item.ref.id] = self._place(item)
            self.advance(1)

        landing = self.landing
        where, keep = landing.prepare(), landing.keep_copies
        sink = FetchSink(where, on_fetched, keep_copies=keep, sync=self.options.sync, limits=limits)
        try:
            too_large = await fetch.fetch(refs, sink)
        except BaseException:
            sink.discard_all()
            raise
        return deliveries, too_large

    def _place(self, item: Fetched) -> Delivery:
        """Dedupe by content, else land the file (published, or kept in the spool)."""
        key = self.keys.key(item.ref)
        delivery = Delivery(item, key, self.keys.token(key))
        delivery.duplicate_of = self.hashes.get(item.sha256)
        if delivery.duplicate_of is not None:
            item.discard()
            return delivery
        self.landing.land(delivery)
        assert delivery.path is not None
        self.hashes[item.sha256] = delivery.path
        return delivery

    def _record(
        self, refs: list[MessageRef], deliveries: dict[str, Delivery], too_large: list[MessageRef]
    ) -> list[MessageRef]:
        """Record delivered/failed for the batch in one transaction; returns the delivered."""
        failed = {d.path: d.error for d in deliveries.values() if d.error and d.path is not None}
        keep, to_directory = self.policy.after is PostProcess.KEEP, self.options.to is not None
        changes, delivered, skip = [], [], set(too_large)
        for ref in refs:
            if ref in skip:
                continue
            delivery = deliveries.get(ref.id)
            row_id = self.known[self.keys.key(ref)].id
            settled = settle(ref, row_id, delivery, failed, keep=keep, to_directory=to_directory)
            self.report.tally(settled.kind, settled.outcome, settled.problems)
            changes.append(settled.change)
            if settled.delivered:
                delivered.append(ref)
            elif delivery is not None:
                self.hashes.pop(delivery.item.sha256, None)
        self.ledger.record(changes)
        return delivered

    async def _set_aside(self, refs: list[MessageRef], sizes: dict[str, int]) -> None:
        note = await self.actions.set_aside(refs)
        self.ledger.begin([self.keys.key(r) for r in refs], OVERSIZE, self.known, error=note)
        for ref in refs:
            size = sizes.get(ref.id)
            shown = f"{size} bytes; {note}" if size else note
            self.report.oversize.append(
                MessageOutcome(ref.folder, ref.id, OVERSIZE.value, note=shown)
            )
        self.advance(len(refs))


async def run_import(
    mailbox: Mailbox,
    mailbox_name: str,
    policy: Policy,
    options: ImportOptions,
    store: StateStore,
    *,
    on_found: Callable[[int], None] = lambda _n: None,
    advance: Callable[[int], None] = lambda _n: None,
) -> ImportReport:
    """Run one import over a connected ``mailbox`` (see the module doc for the order)."""
    run = _ImportRun(mailbox, mailbox_name, policy, options, store, advance)
    try:
        # Two runs of one job would both deliver what neither has finished: one at a time.
        with store.exclusive(f"import:{options.job}:{mailbox_name}") as held:
            if not held:
                raise MailgateError(
                    f"the import job {options.job!r} of mailbox {mailbox_name!r} is already "
                    "running.",
                    "wait for that run to finish (or stop it), then run again; nothing was "
                    "fetched or changed.",
                )
            return await run.run(on_found)
    finally:
        if options.spool is not None and options.to is None:
            with contextlib.suppress(OSError):
                for leftover in options.spool.glob(".mailgate-import-*.part"):
                    leftover.unlink()
                if not any(options.spool.iterdir()):
                    shutil.rmtree(options.spool, ignore_errors=True)
