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
:mod:`mailgate.jobs.import_keys`): nothing delivered twice, nothing post-processed before its
output was durable. Content hashes catch a message that comes back under a new id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mailgate.errors import MailgateError
from mailgate.jobs.import_files import (
    DirectoryDestination,
    Fetched,
    FetchSink,
    MessageTooLarge,
    SavedFiles,
    SyncMode,
    remove_stale_parts,
)
from mailgate.jobs.import_keys import (
    DELIVERED,
    DELIVERING,
    DONE,
    FAILED,
    OVERSIZE,
    ItemKey,
    Step,
    idempotency_key,
    item_key,
    next_step,
)
from mailgate.jobs.import_state import ImportLedger, LedgerRow
from mailgate.jobs.postprocess import Policy, is_oversize
from mailgate.protocols.base import (
    Mailbox,
    MessageRef,
    Operation,
    Protocol,
    SearchCriteria,
)
from mailgate.protocols.imap.bulk import fetch_many
from mailgate.protocols.imap.mailbox import ImapMailbox, parse_message_id
from mailgate.protocols.imap.parallel import FetchPool, helpers_for
from mailgate.secret import Secret
from mailgate.settings import PostProcess
from mailgate.store import StateStore

if TYPE_CHECKING:
    from mailgate.jobs.webhook import WebhookClient

__all__ = ["ImportOptions", "ImportReport", "MessageOutcome", "run_import"]

# Of mailgate's own variables a command inherits only these paths; the others may hold secrets
# (master key, database URL with its password, webhook and alert keys).
_SHARED_ENV = ("MAILGATE_HOME", "MAILGATE_CONFIG", "MAILGATE_SANDBOX")
_WEBHOOK_CONCURRENCY = 4


@dataclass
class ImportOptions:
    """What to import and where to; the policy comes separately, already checked."""

    folder: str
    job: str
    criteria: SearchCriteria = field(default_factory=SearchCriteria)
    limit: int | None = None
    to: Path | None = None
    webhook: str | None = None
    command: Sequence[str] | None = None
    attachments: bool = True
    batch_size: int = 1000
    # IMAP: helper processes share the fetching (the CLI's default is 2; a library that
    # spawns processes unasked would surprise)
    connections: int = 1
    webhook_secret: Secret | None = None
    sync: SyncMode = SyncMode.BATCH
    spool: Path | None = None  # where .eml files wait for a webhook/command without --to


@dataclass
class MessageOutcome:
    """What became of one message in this run."""

    folder: str
    id: str
    state: str
    subject: str | None = None
    message_id: str | None = None
    destination: str | None = None
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(repr=False)
class ImportReport:
    """Counts and the messages worth naming (failed, oversize, duplicates)."""

    job: str
    found: int = 0
    delivered: int = 0
    redelivered: int = 0  # found at the destination from a run that was interrupted
    postprocessed: int = 0
    skipped: int = 0  # done in an earlier run
    connections: int = 1  # IMAP connections that fetched (helpers included)
    duplicates: list[MessageOutcome] = field(default_factory=list)
    oversize: list[MessageOutcome] = field(default_factory=list)
    failed: list[MessageOutcome] = field(default_factory=list)
    messages: list[MessageOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        # Short: asyncio formats the result of the finished main task when it restores the
        # SIGINT handler, and 10,000 outcomes took 60 ms to format.
        return (
            f"ImportReport(job={self.job!r}, found={self.found}, delivered={self.delivered}, "
            f"failed={len(self.failed)}, messages={len(self.messages)})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "found": self.found,
            "delivered": self.delivered,
            "redelivered": self.redelivered,
            "postprocessed": self.postprocessed,
            "skipped": self.skipped,
            "connections": self.connections,
            "duplicates": [m.as_dict() for m in self.duplicates],
            "oversize": [m.as_dict() for m in self.oversize],
            "failed": [m.as_dict() for m in self.failed],
            "messages": [m.as_dict() for m in self.messages],
            "problems": self.problems,
        }


@dataclass
class _Delivery:
    item: Fetched
    saved: SavedFiles | None = None
    duplicate_of: str | None = None
    error: str | None = None
    path: str | None = None  # the .eml a webhook/command is given (a string: made per message)


class _ImportRun:
    def __init__(
        self,
        mailbox: Mailbox,
        mailbox_name: str,
        policy: Policy,
        options: ImportOptions,
        store: StateStore,
        on_found: Callable[[int], None],
        advance: Callable[[int], None],
    ) -> None:
        self.box = mailbox
        self.name = mailbox_name
        self.policy = policy
        self.options = options
        self.ledger = ImportLedger(store, options.job, mailbox_name)
        self.report = ImportReport(options.job)
        self.on_found = on_found
        self.advance = advance
        self.folder = options.folder
        self.known: dict[ItemKey, LedgerRow] = {}
        self._keys: dict[MessageRef, ItemKey] = {}
        self.hashes: dict[str, str] = {}
        self.created: set[str] = set()
        self.directory: DirectoryDestination | None = None
        self.pool: FetchPool | None = None
        self.larger: set[int] | None = None  # IMAP: UIDs over the size limit
        if options.to is not None:
            self.directory = DirectoryDestination(
                options.to, attachments=options.attachments, sync=options.sync
            )
        self.webhook: WebhookClient | None = None
        if options.webhook:
            # Imported here: httpx is a start-up cost that --to and --command runs skip.
            from mailgate.jobs.webhook import WebhookClient

            self.webhook = WebhookClient(options.webhook, options.webhook_secret)

    # -- keys ----------------------------------------------------------------------------------

    def key(self, ref: MessageRef) -> ItemKey:
        # Asked for several times per message (ledger, names, report): parsed once.
        key = self._keys.get(ref)
        if key is None:
            key = self._keys[ref] = item_key(self.box.protocol, ref)
        return key

    def ref(self, key: ItemKey) -> MessageRef:
        if self.box.protocol is Protocol.IMAP:
            return MessageRef(key.folder, f"{key.uidvalidity}:{key.item_id}")
        return MessageRef(key.folder, key.item_id)

    def token(self, key: ItemKey) -> str:
        return idempotency_key(self.options.job, self.name, key)

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> ImportReport:
        try:
            await self._run()
        finally:
            if self.webhook is not None:
                await self.webhook.aclose()
        return self.report

    async def _run(self) -> None:
        refs = await self.box.search(self.folder, self.options.criteria, self.options.limit)
        self.report.found = len(refs)
        self.on_found(len(refs))
        self.known = self.ledger.rows(self.folder)
        self.hashes = self.ledger.delivered_hashes()
        found = {self.key(ref): ref for ref in refs}
        deliver: list[MessageRef] = []
        postprocess: list[MessageRef] = []
        for key, ref in found.items():
            row = self.known.get(key)
            step = next_step(row.state if row else None)
            if step is Step.SKIP:
                self.report.skipped += 1
            elif step is Step.POSTPROCESS:
                postprocess.append(ref)
            else:
                deliver.append(ref)
        self.advance(self.report.skipped)
        stale = [r for r in self.known.values() if r.state == DELIVERED and r.key not in found]
        if stale:
            postprocess += await self._recover(stale)
        if postprocess:
            await self._postprocess(postprocess)
            self.ledger.record(
                {"id": self.known[self.key(r)].id, "state": DONE} for r in postprocess
            )
            self.advance(len([r for r in postprocess if self.key(r) in found]))
        size = self.options.batch_size
        helpers = 0
        if isinstance(self.box, ImapMailbox):
            heavy = self.options.attachments and self.directory is not None
            helpers = helpers_for(len(deliver), self.options.connections, size, heavy=heavy)
        async with await self._pool(helpers) as self.pool:
            for start in range(0, len(deliver), size):
                await self._batch(deliver[start : start + size])
            self.report.connections = 1 + self.pool.size

    async def _pool(self, helpers: int) -> FetchPool:
        assert isinstance(self.box, ImapMailbox) or not helpers
        if not helpers:
            return FetchPool()
        return await FetchPool.start(cast(ImapMailbox, self.box), helpers)

    def _mark_done(self, refs: list[MessageRef]) -> None:
        self.ledger.record({"id": self.known[self.key(r)].id, "state": DONE} for r in refs)

    async def _recover(self, stale: list[LedgerRow]) -> list[MessageRef]:
        """Rows recorded ``delivered`` whose message the search did not return: post-process
        those still in the folder; the others were post-processed before an interruption."""
        present = {self.key(r) for r in await self.box.search(self.folder, SearchCriteria())}
        validity = await self._uidvalidity()
        again: list[MessageRef] = []
        finished: list[dict[str, Any]] = []
        for row in stale:
            if row.key in present:
                again.append(self.ref(row.key))
            elif self.box.protocol is Protocol.IMAP and row.key.uidvalidity != validity:
                note = "the folder was renumbered (UIDVALIDITY); handled under its new id"
                finished.append({"id": row.id, "state": DONE, "error": note})
            else:
                finished.append({"id": row.id, "state": DONE})
        self.ledger.record(finished)
        return again

    async def _uidvalidity(self) -> int:
        if isinstance(self.box, ImapMailbox):
            return await self.box.select(self.folder)
        return 0

    # -- one batch -----------------------------------------------------------------------------

    async def _sizes(self, refs: list[MessageRef]) -> dict[str, int | None]:
        """Sizes of the messages that matter: IMAP gives only those over the limit (found
        by one SEARCH LARGER per run: sizes never change), the others all they know."""
        if isinstance(self.box, ImapMailbox):
            if self.larger is None:
                self.larger = await self.box.uids_larger(self.folder, self.policy.max_size)
            validity = await self.box.select(self.folder)
            uids = [uid for _, uid in map(parse_message_id, refs) if uid in self.larger]
            if not uids:
                return {}
            items = await self.box.fetch_items(uids, b"(UID RFC822.SIZE)")
            return {
                f"{validity}:{uid}": int(str(v["RFC822.SIZE"]))
                for uid, v in items.items()
                if "RFC822.SIZE" in v
            }
        if self.box.protocol is Protocol.GRAPH:
            return {}  # Graph reports no size: the stream is cut at the limit instead
        return {s.ref.id: s.size for s in await self.box.fetch_headers(refs)}

    async def _batch(self, refs: list[MessageRef]) -> None:
        sizes = await self._sizes(refs)
        over = [r for r in refs if is_oversize(sizes.get(r.id), self.policy.max_size)]
        if over:
            await self._set_aside(over, sizes)
        todo = [r for r in refs if r not in set(over)]
        if not todo:
            return
        self.ledger.begin([self.key(r) for r in todo], DELIVERING, self.known)
        deliveries, too_large = await self._fetch(todo, sizes)
        if too_large:
            await self._set_aside(too_large, {})
        if self.directory is not None:
            self.directory.flush()  # one sync for the batch, before anything is acted on
        await self._deliver_elsewhere(deliveries)
        delivered = await self._record(todo, deliveries, too_large)
        if delivered:
            if self.policy.after is not PostProcess.KEEP:
                await self._postprocess(delivered)
                self._mark_done(delivered)
            self.report.postprocessed += len(delivered)

    async def _fetch(
        self, refs: list[MessageRef], sizes: dict[str, int | None]
    ) -> tuple[dict[str, _Delivery], list[MessageRef]]:
        deliveries: dict[str, _Delivery] = {}
        spool = self.directory.directory if self.directory else self._spool()
        keep = self.directory is not None and self.options.attachments

        def on_fetched(item: Fetched) -> None:
            deliveries[item.ref.id] = self._place(item)
            self.advance(1)

        sink = FetchSink(spool, on_fetched, keep_copies=keep, sync=self.options.sync)
        too_large: list[MessageRef] = []
        try:
            if isinstance(self.box, ImapMailbox):
                await fetch_many(
                    self.box, refs, sink, attachments=False, batch=len(refs), pool=self.pool
                )
            else:
                for ref in refs:
                    sink.limit = None if sizes.get(ref.id) is not None else self.policy.max_size
                    handle = sink.open(ref, None)
                    try:
                        size = await self.box.fetch_mime(ref, handle)
                        sink.complete(ref, None, handle, size)
                    except MessageTooLarge:
                        sink.abort(ref, None, handle)
                        too_large.append(ref)
                    except BaseException:
                        sink.abort(ref, None, handle)
                        raise
        except BaseException:
            sink.discard_all()
            raise
        return deliveries, too_large

    def _spool(self) -> Path:
        assert self.options.spool is not None
        self.options.spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        remove_stale_parts(self.options.spool)
        return self.options.spool

    def _place(self, item: Fetched) -> _Delivery:
        """Dedupe by content, then publish into the directory (or keep the spool file)."""
        delivery = _Delivery(item)
        earlier = self.hashes.get(item.sha256)
        if earlier is not None:
            delivery.duplicate_of = earlier
            item.discard()
            return delivery
        token = self.token(self.key(item.ref))
        if self.directory is not None:
            delivery.saved = self.directory.publish(item, token[:8])
            delivery.path = delivery.saved.file
        else:
            path = Path(item.temp).with_name(f"{token}.eml")
            os.replace(item.temp, path)  # inside our private spool: ours to replace
            delivery.path = str(path)
        self.hashes[item.sha256] = delivery.path
        return delivery

    async def _deliver_elsewhere(self, deliveries: dict[str, _Delivery]) -> None:
        pending = [d for d in deliveries.values() if d.duplicate_of is None]
        if self.webhook is not None:
            gate = asyncio.Semaphore(_WEBHOOK_CONCURRENCY)

            async def post(delivery: _Delivery) -> None:
                async with gate:
                    await self._post(delivery)

            await asyncio.gather(*(post(d) for d in pending))
        if self.options.command:
            for delivery in pending:
                if delivery.error is None:
                    await self._run_command(delivery)
        if self.directory is None:
            for delivery in pending:
                if delivery.path is not None:
                    # Delivered, or failed and fetched afresh next run: the spool copy goes.
                    Path(delivery.path).unlink(missing_ok=True)

    async def _post(self, delivery: _Delivery) -> None:
        from mailgate.jobs.webhook import MessageIdentity, webhook_payload

        assert self.webhook is not None and delivery.path is not None
        item = delivery.item
        key = self.key(item.ref)
        token = self.token(key)
        identity = MessageIdentity(
            job=self.options.job,
            mailbox=self.name,
            folder=key.folder,
            uidvalidity=key.uidvalidity,
            item_id=key.item_id,
            idempotency_key=token,
            sha256=item.sha256,
            size=item.size,
        )
        saved = delivery.saved
        raw = await asyncio.to_thread(Path(delivery.path).read_bytes)
        payload = webhook_payload(
            raw,
            identity,
            eml_path=saved.eml if saved else None,
            attachment_paths=saved.attachments if saved and self.options.attachments else None,
        )
        result = await self.webhook.deliver(payload, token)
        if not result.ok:
            delivery.error = f"webhook: {result.error} after {result.attempts} attempts"

    async def _run_command(self, delivery: _Delivery) -> None:
        assert self.options.command and delivery.path is not None
        key = self.key(delivery.item.ref)
        # The webhook key may come from any variable (settings say env:NAME): drop it by value.
        hidden = {self.options.webhook_secret.reveal()} if self.options.webhook_secret else set()
        env = {
            k: v
            for k, v in os.environ.items()
            if (k in _SHARED_ENV or not k.startswith("MAILGATE_")) and v not in hidden
        }
        env |= {
            "MAILGATE_IDEMPOTENCY_KEY": self.token(key),
            "MAILGATE_JOB": self.options.job,
            "MAILGATE_MAILBOX": self.name,
            "MAILGATE_FOLDER": key.folder,
            "MAILGATE_MESSAGE_ID": delivery.item.message_id or "",
        }
        argv = [*self.options.command, delivery.path]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
            _, stderr = await process.communicate()
        except OSError as exc:
            delivery.error = f"command {argv[0]!r} could not start: {exc.strerror or exc}"
            return
        if process.returncode != 0:
            last = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            delivery.error = f"command exited with {process.returncode} {last[0][:200]}".strip()

    async def _record(
        self,
        refs: list[MessageRef],
        deliveries: dict[str, _Delivery],
        too_large: list[MessageRef],
    ) -> list[MessageRef]:
        """Record delivered/failed for the batch in one transaction; returns the delivered."""
        changes: list[dict[str, Any]] = []
        delivered: list[MessageRef] = []
        skip = set(too_large)
        # A copy of a message whose own delivery failed in this batch was not delivered either.
        failed_originals = {
            d.path: d.error for d in deliveries.values() if d.error and d.path is not None
        }
        for ref in refs:
            if ref in skip:
                continue
            row_id = self.known[self.key(ref)].id
            delivery = deliveries.get(ref.id)
            if delivery is None:
                note = "not fetched: the message left the folder during the import"
                changes.append({"id": row_id, "state": FAILED, "error": note})
                self.report.failed.append(MessageOutcome(ref.folder, ref.id, FAILED, note=note))
                continue
            item = delivery.item
            outcome = MessageOutcome(
                ref.folder,
                ref.id,
                DELIVERED,
                subject=item.subject,
                message_id=item.message_id,
                destination=delivery.duplicate_of or delivery.path,
            )
            change: dict[str, Any] = {
                "id": row_id,
                "message_id": item.message_id,
                "content_hash": item.sha256,
                "size": item.size,
                "destination": outcome.destination if self.directory else None,
                "error": None,
            }
            original_error = failed_originals.get(delivery.duplicate_of or "")
            if delivery.duplicate_of is not None and original_error is not None:
                delivery.error = f"same content as {delivery.duplicate_of}, which failed: "
                delivery.error += original_error
                change["content_hash"] = None  # never counts as delivered content
            if delivery.error is not None:
                change |= {"state": FAILED, "error": delivery.error}
                outcome.state, outcome.note = FAILED, delivery.error
                self.report.failed.append(outcome)
                self.hashes.pop(item.sha256, None)
            else:
                # Keeping the message is all its post-processing: done once delivered, with no
                # second transaction per batch.
                change["state"] = DONE if self.policy.after is PostProcess.KEEP else DELIVERED
                delivered.append(ref)
                if delivery.duplicate_of is not None:
                    outcome.note = f"duplicate of {delivery.duplicate_of}"
                    change["error"] = outcome.note
                    self.report.duplicates.append(outcome)
                elif delivery.saved is not None and delivery.saved.existing:
                    outcome.note = "already at the destination from an interrupted run"
                    self.report.redelivered += 1
                else:
                    self.report.delivered += 1
                if delivery.saved is not None:
                    self.report.problems += [
                        f"{delivery.saved.eml.name}: {p}" for p in delivery.saved.problems
                    ]
            changes.append(change)
            self.report.messages.append(outcome)
        self.ledger.record(changes)
        return delivered

    # -- acting on the mailbox -----------------------------------------------------------------

    async def _ensure_folder(self, name: str) -> None:
        if name in self.created or Operation.CREATE_FOLDER not in self.box.operations:
            return
        await self.box.create_folder(name)
        self.created.add(name)

    async def _postprocess(self, refs: list[MessageRef]) -> None:
        after = self.policy.after
        if after is PostProcess.KEEP or not refs:
            return
        if after is PostProcess.MARK_READ:
            await self.box.set_flags(refs, seen=True)
        elif after is PostProcess.MOVE:
            assert self.policy.move_to is not None
            await self._ensure_folder(self.policy.move_to)
            await self.box.move(refs, self.policy.move_to)
        elif after is PostProcess.DELETE:
            await self.box.delete(refs)
        else:
            await self.box.delete_permanently(refs)

    async def _set_aside(self, refs: list[MessageRef], sizes: dict[str, int | None]) -> None:
        folder = self.policy.oversize_folder
        limit = self.policy.max_size
        if folder is not None:
            await self._ensure_folder(folder)
            await self.box.move(refs, folder)
            note = f"over {limit} bytes: moved to {folder!r}, not fetched"
        else:
            note = (
                f"over {limit} bytes: left in the mailbox ({self.box.protocol.value} cannot move)"
            )
        keys = [self.key(r) for r in refs]
        self.ledger.begin(keys, OVERSIZE, self.known, error=note)
        for ref in refs:
            size = sizes.get(ref.id)
            self.report.oversize.append(
                MessageOutcome(
                    ref.folder,
                    ref.id,
                    OVERSIZE,
                    note=f"{size} bytes; {note}" if size else note,
                )
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
    run = _ImportRun(mailbox, mailbox_name, policy, options, store, on_found, advance)
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
            return await run.run()
    finally:
        if options.spool is not None and options.to is None:
            with contextlib.suppress(OSError):
                for leftover in options.spool.glob(".mailgate-import-*.part"):
                    leftover.unlink()
                if not any(options.spool.iterdir()):
                    shutil.rmtree(options.spool, ignore_errors=True)
