"""Helper IMAP connections in child processes, so a bulk fetch uses more than one CPU core.

A bulk save is bound by the client's CPU (TLS, cutting literals, naming and writing files),
and Python runs that on one core however many connections it opens. :class:`FetchPool` starts
helper processes (``python -m mailgate.protocols.imap.parallel``), each with its own IMAP
connection for the same mailbox, and :func:`~mailgate.protocols.imap.bulk.fetch_many` hands
whole batches to them next to the batches it fetches itself.

What crosses the pipes (length-prefixed pickles between this process and children it started,
never from anyone else): the connection recipe with the access token (stdin, not the command
line or the environment, where other local users could read it), then per batch the folder,
its UIDVALIDITY, the UIDs and how to build the sink (:class:`PortableSink`); back come what the
sink completed, or the error as (class, message, remedy).

A helper that cannot start, connect or sign in is dropped before it started its first batch,
which goes back to the queue: the fetch goes on with fewer connections. A helper that fails
during a batch fails the fetch, as the main connection would: files it completed stay
completed (the same rule as one connection); temporary files of a helper that was killed are
removed by the next run, as a killed main process's are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import ssl
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import mailgate
from mailgate import errors
from mailgate.errors import MailgateError, ProtocolError, TransportError
from mailgate.processes import tune_gc_for_bulk_work
from mailgate.protocols import base
from mailgate.protocols.base import Security
from mailgate.protocols.imap import fetching
from mailgate.protocols.imap.bulk import run_batch
from mailgate.protocols.imap.fetching import (
    BATCH,
    PortableSink,
    ReconnectableMailbox,
    UidValidityChangedError,
)

__all__ = [
    "LIGHT_WORK_CORES",
    "MIN_BATCHES_PER_HELPER",
    "ConnectionRecipe",
    "FetchPool",
    "PortableError",
    "decode_frame_size",
    "encode_frame",
    "helpers_for",
    "portable_error",
    "restore_error",
    "usable_cores",
]

MIN_BATCHES_PER_HELPER = 2  # a helper costs a process start, a TLS handshake and a login
_HEADER = struct.Struct("!Q")


@dataclass(frozen=True)
class ConnectionRecipe:
    """Everything a helper needs to open the same IMAP connection (the token included).

    ``mailbox_class`` is the class of the mailbox helped (pickled by reference: the helper
    imports it), so this module needs no import of the adapter, which imports it.
    """

    address: str
    host: str
    port: int
    security: Security
    mechanism: str
    timeout: float
    ca_files: tuple[str, ...]
    token: str = field(repr=False)
    mailbox_class: Callable[..., ReconnectableMailbox] | None = None

    def mailbox(self) -> ReconnectableMailbox:
        if self.mailbox_class is None:
            raise ProtocolError(
                "The helper connection's recipe names no mailbox class.",
                "run again with --connections 1 and report this.",
            )
        context = ssl.create_default_context()
        for path in self.ca_files:
            context.load_verify_locations(cafile=path)
        token = self.token

        async def source() -> str:
            return token

        return self.mailbox_class(
            self.address,
            self.host,
            self.port,
            token_source=source,
            security=self.security,
            ssl_context=context,
            mechanism=self.mechanism,
            timeout=self.timeout,
        )


@dataclass(frozen=True)
class _Job:
    folder: str
    validity: int
    uids: list[int]
    sink: Callable[[], Any]
    mime: bool
    attachments: bool


# -- framing and errors: pure ------------------------------------------------------------------


LIGHT_WORK_CORES = 4
"""Usable cores below which helpers are not started for light work (see :func:`helpers_for`)."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity: containers often get fewer)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def helpers_for(messages: int, connections: int, batch: int = BATCH, *, heavy: bool = True) -> int:
    """How many helper connections to start for ``messages``: none unless each would get
    :data:`MIN_BATCHES_PER_HELPER` batches, never more than ``connections - 1``.

    ``heavy=False`` says the messages are only written, not parsed (no attachments to split):
    then the work per message is so small that a helper only pays off with cores to spare.
    Measured on 2 cores against a local Dovecot, a helper made such a save 10-20 % slower (its
    process and the server's second connection compete for the same two cores), while with
    attachment extraction it gained up to 25 %; so light work gets helpers only from
    :data:`LIGHT_WORK_CORES` usable cores up.
    """
    if not heavy and usable_cores() < LIGHT_WORK_CORES:
        return 0
    return max(0, min(connections - 1, messages // (batch * MIN_BATCHES_PER_HELPER)))


def encode_frame(value: Any) -> bytes:
    """``value`` pickled, behind its length (8 bytes, network order)."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def decode_frame_size(header: bytes) -> int:
    """The length a frame header announces."""
    (size,) = _HEADER.unpack(header)
    return int(size)


PortableError = tuple[str, str, str, dict[str, Any]]
"""An exception as (class name, message, remedy, its other attributes) for the pipe."""


def portable_error(exc: BaseException) -> PortableError:
    """An exception as it crosses the pipe: mailgate errors keep their class and the extra
    attributes they carry (``reply``, ``retry_after``...) where those can be pickled."""
    if isinstance(exc, MailgateError):
        extra: dict[str, Any] = {}
        for key, value in vars(exc).items():
            if key in ("message", "remedy"):
                continue
            # Anything that does not pickle stays behind; the message and remedy still go.
            with contextlib.suppress(Exception):
                pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                extra[key] = value
        return type(exc).__name__, exc.message, exc.remedy, extra
    return (
        "ProtocolError",
        f"A helper connection failed unexpectedly ({type(exc).__name__}: {exc}).",
        "run again with --connections 1 and report this.",
        {},
    )


def restore_error(
    name: str, message: str, remedy: str, extra: dict[str, Any] | None = None
) -> MailgateError:
    """The mailgate error a helper reported, as the same class where that is possible.

    Built without the class's own ``__init__`` (whose parameters may differ, as
    :class:`~mailgate.errors.InvalidInputError`'s do): message and remedy as they were,
    then the attributes that came along.
    """
    error: MailgateError | None = None
    for module in (errors, base, fetching):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, MailgateError):
            error = cls.__new__(cls)
            MailgateError.__init__(error, message, remedy)
            break
    if error is None:
        return MailgateError(message, remedy)
    for key, value in (extra or {}).items():
        setattr(error, key, value)
    return error


# -- this side ---------------------------------------------------------------------------------


class _HelperGone(Exception):
    """The helper could not connect; the batch it was given was not started."""


class _Helper:
    """One child process with its own IMAP connection."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ready = False
        self.busy = False  # a job was sent and its answer has not come back

    async def send(self, value: Any) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(encode_frame(value))
        try:
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise self._gone() from exc

    async def receive(self) -> Any:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            header = await stdout.readexactly(_HEADER.size)
            data = await stdout.readexactly(decode_frame_size(header))
            return pickle.loads(data)  # noqa: S301 - from the child process we started
        except asyncio.IncompleteReadError as exc:
            raise self._gone() from exc

    def _gone(self) -> TransportError:
        return TransportError(
            "A helper connection of the bulk fetch ended unexpectedly.",
            "run again (files already saved stay); use --connections 1 if it keeps happening.",
        )

    async def run(self, job: _Job) -> Any:
        self.busy = True
        if not self.ready:
            # Whatever stops a helper before it is ready (no connection, no sign-in, a crash
            # at start) drops it: nothing of the job was started.
            try:
                await self.send(job)
                kind, value = await self.receive()
            except TransportError as exc:
                raise _HelperGone(exc) from exc
            if kind != "ready":
                raise _HelperGone(restore_error(*value))
            self.ready = True
        else:
            await self.send(job)
        kind, value = await self.receive()
        self.busy = False  # answered: the child waits for the next job
        if kind == "error":
            raise restore_error(*value)
        return value

    async def stop(self) -> None:
        if self.busy and self.process.returncode is None:
            # Stopped mid-batch (the run failed elsewhere or was cancelled): SIGTERM cancels
            # the batch in the child, whose sink removes its half-written temporary file.
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
        with contextlib.suppress(Exception):
            if self.process.returncode is None:
                await self.send(None)
                await asyncio.wait_for(self.process.wait(), 5)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


def _child_env() -> dict[str, str]:
    # The child imports this very mailgate, wherever it was imported from; the root goes last,
    # so that nothing there can stand in for the standard library.
    root = str(Path(mailgate.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return os.environ | {"PYTHONPATH": (path + os.pathsep if path else "") + root}


class FetchPool:
    """Helper connections for bulk fetches of one mailbox; ``async with`` stops them."""

    def __init__(self, helpers: Sequence[_Helper] = ()) -> None:
        self.helpers = list(helpers)
        self.dropped: list[MailgateError] = []  # why helpers that could not connect left
        self.helped = 0  # messages the helpers fetched

    @classmethod
    async def start(cls, box: ReconnectableMailbox, count: int) -> FetchPool:
        """Start ``count`` helpers for ``box`` (none when its TLS trust cannot be rebuilt).

        They connect in the background; the first batch each is given waits for that.
        """
        if count < 1 or box.ca_files is None:
            return cls()
        recipe = ConnectionRecipe(
            box.address,
            box.host,
            box.port,
            box.security,
            box.mechanism,
            box.timeout,
            tuple(box.ca_files),
            await box.access_token(),
            type(box),
        )
        debug = bool(os.environ.get("MAILGATE_DEBUG"))
        pool = cls()
        try:
            for _ in range(count):
                try:
                    process = await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-P",  # not the working directory on sys.path: it may be anyone's
                        "-m",
                        __name__,
                        stdin=asyncio.subprocess.PIPE,
                        stdout=asyncio.subprocess.PIPE,
                        stderr=None if debug else asyncio.subprocess.DEVNULL,
                        env=_child_env(),
                    )
                except OSError:
                    # Out of processes or file descriptors: helpers are an optimisation, so
                    # the fetch goes on with those already started (or none).
                    break
                helper = _Helper(process)
                pool.helpers.append(helper)
                with contextlib.suppress(TransportError):  # gone already: dropped on first use
                    await helper.send(os.getpid())
                    await helper.send(recipe)
        except BaseException:
            await pool.close()  # cancelled mid-start: no helper outlives the pool
            raise
        return pool

    @property
    def size(self) -> int:
        return len(self.helpers)

    async def run(
        self,
        helper: _Helper,
        folder: str,
        validity: int,
        uids: list[int],
        sink: PortableSink,
        mime: bool,
        attachments: bool,
    ) -> bool:
        """Fetch ``uids`` on ``helper`` into ``sink``; False if the helper could not connect
        (it is dropped and nothing was fetched)."""
        job = _Job(folder, validity, uids, sink.recipe(), mime, attachments)
        try:
            exported = await helper.run(job)
        except _HelperGone as gone:
            self.helpers.remove(helper)
            self.dropped.append(gone.args[0])
            await helper.stop()
            return False
        sink.absorb(exported)
        self.helped += len(uids)
        return True

    async def close(self) -> None:
        await asyncio.gather(*(helper.stop() for helper in self.helpers))

    async def __aenter__(self) -> FetchPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


# -- the helper process ------------------------------------------------------------------------


def _read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None  # the parent went away: stop
    return pickle.loads(stream.read(decode_frame_size(header)))  # noqa: S301 - from our parent


def _write_frame(stream: IO[bytes], value: Any) -> None:
    stream.write(encode_frame(value))
    stream.flush()


async def _serve(recipe: ConnectionRecipe, inbound: IO[bytes], outbound: IO[bytes]) -> None:
    try:
        box = recipe.mailbox()
        await box.connect()
    except Exception as exc:
        _read_frame(inbound)  # the first job, which is not started
        _write_frame(outbound, ("error", portable_error(exc)))
        return
    try:
        first = True
        while True:
            # One thing at a time: waiting for the next job blocks, nothing else runs here.
            job = _read_frame(inbound)
            if job is None:
                return
            if first:
                _write_frame(outbound, ("ready", None))
                first = False
            sink = None
            try:
                sink = job.sink()
                validity = await box.select(job.folder)
                if validity != job.validity:
                    raise UidValidityChangedError(
                        f"Folder {job.folder!r} was renumbered by the server during the fetch "
                        f"(UIDVALIDITY {job.validity} is now {validity}).",
                        "run again: the folder is searched afresh.",
                    )
                await run_batch(box, job.folder, job.uids, sink, job.mime, job.attachments)
                reply: tuple[str, Any] = ("done", sink.export())
            except BaseException as exc:
                discard = getattr(sink, "discard_all", None) if sink is not None else None
                if discard is not None:
                    discard()
                if not isinstance(exc, Exception):
                    raise
                reply = ("error", portable_error(exc))
            _write_frame(outbound, reply)
    finally:
        await box.close()


def _die_with(parent: int) -> None:
    """Be killed when ``parent`` dies (Linux ``PR_SET_PDEATHSIG``), however it dies.

    A helper outliving a killed import would go on writing temporary files that the next run
    cannot clean up while the helper lives. Elsewhere the helper ends at its next read of the
    closed pipe.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before that took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _main() -> None:
    inbound, outbound = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # frames only on the pipe: a stray print must not corrupt one
    parent = _read_frame(inbound)
    if parent is None:
        return
    _die_with(parent)
    tune_gc_for_bulk_work()
    recipe = _read_frame(inbound)
    if recipe is not None:
        asyncio.run(_serve_until_terminated(recipe, inbound, outbound))


async def _serve_until_terminated(
    recipe: ConnectionRecipe, inbound: IO[bytes], outbound: IO[bytes]
) -> None:
    """:func:`_serve`, cancelled by SIGTERM: the batch in progress is aborted the way any
    failure aborts it (open files removed), the connection logged out, and the process ends."""
    import signal

    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError):  # no signal handlers on this loop
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await _serve(recipe, inbound, outbound)


if __name__ == "__main__":
    _main()
