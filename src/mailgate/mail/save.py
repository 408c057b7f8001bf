"""Saving fetched messages as ``.eml`` files and extracting their attachments, safely.

A message is streamed to a hidden temporary file in the target directory and renamed onto a
name reserved with ``O_EXCL`` only when complete, so an interrupted fetch never leaves a
truncated ``.eml`` that looks whole, and no existing file is ever overwritten. Attachments go to
``<stem>.attachments/`` beside it, each name made safe by :mod:`mailgate.mail.filenames`.
Broken MIME never stops a run: the raw ``.eml`` is kept and the problem is reported.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar, cast

from mailgate.errors import MailgateError
from mailgate.mail.attachments import split_attachments_checked
from mailgate.mail.filenames import (
    create_file,
    publish_at,
    publish_file,
    reserve_path,
    safe_filename,
    write_all,
)
from mailgate.mail.headers import (
    HeaderFields,
    header_block,
    header_fields,
    subject_and_date,
    summary_from_fields,
)
from mailgate.mail.summary import MessageRef, MessageSummary

if TYPE_CHECKING:
    from email.message import Message

__all__ = [
    "DirectorySink",
    "SavedMessage",
    "attachment_dir",
    "eml_filename",
    "eml_stem",
    "extract_attachments",
    "io_error",
]


class SavedMessage:
    """Where a message went and what could not be done with it.

    ``summary`` is made from the kept header ``fields`` when first asked: a bulk save names
    its files from Subject and Date alone, and most callers never look further. Paths are
    kept as strings (``file``, ``attachment_files``) and ``eml_path``/``attachments`` made
    from them on use: building a ``Path`` per file cost more than the system calls that saved
    it.
    """

    __slots__ = ("_summary", "attachment_files", "fields", "file", "problems", "ref", "size")

    def __init__(
        self,
        eml_path: str | Path,
        size: int,
        attachments: list[str] | list[Path] | None = None,
        problems: list[str] | None = None,
        ref: MessageRef | None = None,
        fields: HeaderFields | None = None,
    ) -> None:
        self.file = os.fspath(eml_path)
        self.size = size
        self.attachment_files: list[str] = [os.fspath(f) for f in attachments or ()]
        self.problems: list[str] = problems if problems is not None else []
        self.ref = ref
        self.fields = fields
        self._summary: MessageSummary | None = None

    @property
    def eml_path(self) -> Path:
        return Path(self.file)

    @property
    def attachments(self) -> list[Path]:
        """The attachment files written (a new list: add to ``attachment_files``)."""
        return [Path(f) for f in self.attachment_files]

    @property
    def summary(self) -> MessageSummary | None:
        if self._summary is None and self.ref is not None and self.fields is not None:
            self._summary = summary_from_fields(self.ref, self.fields, size=self.size)
        return self._summary

    def __getstate__(self) -> tuple[Any, ...]:  # helper processes send these back in bulk
        return (self.file, self.size, self.attachment_files, self.problems, self.ref, self.fields)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.__init__(*state)  # type: ignore[misc]

    def __repr__(self) -> str:
        files = self.attachment_files
        return f"SavedMessage({self.file!r}, size={self.size}, attachments={files!r})"


def io_error(action: str, path: str | Path, exc: OSError) -> MailgateError:
    """A file-system failure while saving as a mailgate error naming the path and a remedy."""
    reason = exc.strerror or exc.__class__.__name__
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG):
        remedy = "free space on that disk (or raise the quota) or save to another directory."
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        remedy = "make the directory writable for this user or save to another directory."
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        remedy = "that path (or a parent of it) is a file: give a directory path to save into."
    else:
        remedy = "check that the directory exists and is writable, or save to another one."
    return MailgateError(f"Cannot {action} {path}: {reason}.", remedy)


P = TypeVar("P", str, Path)

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_SPACES = re.compile(r"\s+")


def eml_filename(subject: str, date: datetime | None, ref_id: str) -> str:
    """``2026-11-23 Invoice 4711 [a1b2c3d4].eml`` (the short id keeps same-subject mail apart)."""
    # Formatted by hand: strftime was a tenth of a bulk save's naming time.
    stamp = (
        f"{date.year:04d}-{date.month:02d}-{date.day:02d} {date.hour:02d}{date.minute:02d}"
        if date
        else "undated"
    )
    # IMAP ids are "<uidvalidity>:<uid>": no regex needed for those (bulk saves name 10,000s).
    plain = ref_id.replace(":", "")
    short = (plain if plain.isascii() and plain.isalnum() else _NOT_ALNUM.sub("", ref_id))[-8:]
    short = short or "msg"
    # Slashes in a subject are not paths; keep the whole subject visible.
    title = (subject or "no subject").replace("/", "_").replace("\\", "_")
    if not title.isprintable() or "  " in title:  # else no run of white space to fold
        title = _SPACES.sub(" ", title)
    title = title.strip()[:80]
    return safe_filename(f"{stamp} {title} [{short}].eml", fallback="message.eml")


def eml_stem(path: str) -> str:
    """The stem of a saved message's path (``/d/x.eml`` → ``x``), beside which its
    ``.attachments`` directory goes; without a ``Path``, saved files being named ``<...>.eml``."""
    name = path.rpartition("/")[2]
    return name[:-4] if name.endswith(".eml") and len(name) > 4 else Path(name).stem


def attachment_dir(path: P) -> P:
    """Create ``path`` for a message's attachments, or accept it only as a plain directory.

    A symlink planted under that name would otherwise send attachment files elsewhere.
    """
    _attachment_names(path)
    return path


def _attachment_names(path: str | Path) -> set[str]:
    """:func:`attachment_dir`, returning the casefolded names already in it (the ``taken`` set
    of :func:`~mailgate.mail.filenames.create_file`): none when it was just made, so the bulk
    path pays no listing."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if os.path.islink(path) or not os.path.isdir(path):
            raise MailgateError(
                f"{path} exists and is not a plain directory; attachments were not written.",
                "remove or rename it and save again.",
            ) from None
        try:
            return {name.casefold() for name in os.listdir(path)}
        except OSError as exc:
            raise io_error("list the attachment directory", path, exc) from exc
    except OSError as exc:
        raise io_error("create the attachment directory", path, exc) from exc
    return set()


def _attachment_parts(message: Message) -> list[Message]:
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = (part.get("Content-Disposition") or "").lower()
        if part.get_filename() or disposition.startswith("attachment"):
            parts.append(part)
    return parts


def extract_attachments(eml_path: Path) -> tuple[list[Path], list[str]]:
    """Write the attachments of the saved message beside it; returns (paths, problems)."""
    # The email package's full parser is loaded on use: the bulk path never needs it.
    import email
    from email import policy

    problems: list[str] = []
    try:
        with open(eml_path, "rb") as handle:
            message = email.message_from_binary_file(handle, policy=policy.compat32)
    except Exception as exc:  # the email package may raise many types on hostile input
        return [], [f"could not parse the MIME ({exc.__class__.__name__}); the .eml is kept"]
    problems.extend(
        f"MIME defect: {defect.__class__.__name__}" for defect in getattr(message, "defects", [])
    )
    parts = _attachment_parts(message)
    if not parts:
        return [], problems
    target = eml_path.with_name(eml_path.stem + ".attachments")
    taken = _attachment_names(target)  # names must differ in more than case: see filenames
    written: list[Path] = []
    for index, part in enumerate(parts, start=1):
        try:
            data = part.get_payload(decode=True)
            name = part.get_filename() or f"attachment-{index}"
        except Exception as exc:
            problems.append(f"attachment {index} could not be decoded ({exc.__class__.__name__})")
            continue
        if not isinstance(data, bytes):
            problems.append(f"attachment {index} has no content")
            continue
        try:
            path = reserve_path(target, str(name), taken=taken)
        except OSError as exc:
            raise io_error("create an attachment file in", target, exc) from exc
        try:
            path.write_bytes(data)
        except OSError as exc:
            path.unlink(missing_ok=True)  # a cut-off attachment must not look whole
            raise io_error("write the attachment", path, exc) from exc
        written.append(path)
    return written, problems


_HEAD_LIMIT = 64 * 1024  # header blocks longer than this are cut (summaries only)
_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
_TRUNCATE = os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW


def _open_fd(path: str | Path, flags: int) -> int:
    return os.open(path, flags, 0o600)


class _Writer(io.BufferedWriter):
    """A file writer whose file-system errors (disk full, I/O error) are mailgate errors."""

    def __init__(self, path: Path, flags: int) -> None:
        super().__init__(io.FileIO(_open_fd(path, flags), "wb"))
        self.path = path

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            raise io_error("write", self.path, exc) from exc

    def finish(self) -> None:
        """Flush and close; a failing flush is the disk-full case most often."""
        try:
            self.close()
        except OSError as exc:
            raise io_error("write", self.path, exc) from exc

    def discard(self) -> None:
        """Close without caring whether buffered bytes reach the disk: the file goes anyway."""
        with contextlib.suppress(OSError):
            self.close()


class _HeadKeepingWriter(_Writer):
    """A file writer that also keeps the first bytes written: the message's header block."""

    def __init__(self, path: Path, limit: int = _HEAD_LIMIT) -> None:
        super().__init__(path, _EXCLUSIVE)
        self.head = bytearray()
        self._limit = limit
        self._capturing = True

    def write(self, data: Any) -> int:
        if self._capturing:
            self.head += data[: self._limit - len(self.head)]
            # Stop copying at the end of the header block: the body is not needed here.
            if b"\r\n\r\n" in self.head or b"\n\n" in self.head or len(self.head) >= self._limit:
                self._capturing = False
        return super().write(data)


class DirectorySink:
    """Files fetched messages and attachments under one directory, never overwriting.

    Implements the ``open → complete | abort`` protocol of
    :class:`mailgate.protocols.imap.bulk.MessageSink` (``part`` None is the message itself,
    otherwise an attachment with a ``filename``), and serves the one-message-at-a-time path of
    the other protocols too. A message streams into a hidden ``.part`` file; its header block is
    kept on the way, so :meth:`complete` can summarise the message and name the file
    (``<date> <subject> [<id>].eml``) without a separate header fetch, then rename it onto a
    name reserved with ``O_EXCL``. An aborted transfer leaves nothing behind.
    """

    def __init__(self, directory: Path) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise io_error("create the directory", directory, exc) from exc
        self.directory = directory.resolve()
        self._root = str(self.directory)
        self._prefix = f"{self._root}/.mailgate-{os.getpid()}-"
        self.saved: dict[str, SavedMessage] = {}
        self._count = 0
        # Each attachment directory made, with the casefolded names in it (filenames' taken).
        self._made: dict[str, set[str]] = {}

    def _attachment_dir(self, ref_id: str) -> tuple[str, set[str]]:
        saved = self.saved.get(ref_id)
        stem = safe_filename(ref_id) if saved is None else eml_stem(saved.file)
        target = f"{self._root}/{stem}.attachments"
        taken = self._made.get(target)
        if taken is None:
            taken = self._made[target] = _attachment_names(target)
        return target, taken

    def open(self, ref: MessageRef, part: Any | None) -> BinaryIO:
        if part is None:
            return cast(BinaryIO, self._open_temp())
        name = getattr(part, "filename", None) or "attachment"
        where, taken = self._attachment_dir(ref.id)
        target = Path(where)
        try:
            final = reserve_path(target, str(name), resolved=True, taken=taken)
            # The name was just reserved empty with O_EXCL: reopen it, not a symlink swapped in.
            return cast(BinaryIO, _Writer(final, _TRUNCATE))
        except OSError as exc:
            raise io_error("create an attachment file in", target, exc) from exc

    def _temp_paths(self) -> Iterator[str]:
        # pid + counter: unique without mkstemp's random names; O_EXCL still guards it. A
        # leftover of an earlier run with the same pid (containers always start at pid 1)
        # takes the name; then a random suffix finds a free one.
        self._count += 1
        stem = f"{self._prefix}{self._count}"
        yield f"{stem}.part"
        for _attempt in range(7):
            yield f"{stem}-{secrets.token_hex(4)}.part"
        raise MailgateError(
            f"Cannot create a temporary file in {self.directory}: every name tried exists.",
            "remove the .mailgate-*.part files left there by an earlier run and save again.",
        )

    def _open_temp(self) -> _HeadKeepingWriter:
        for temp in self._temp_paths():
            try:
                return _HeadKeepingWriter(Path(temp))
            except FileExistsError:
                continue
            except OSError as exc:
                raise io_error("create a file in", self.directory, exc) from exc
        raise AssertionError("unreachable: _temp_paths raises when exhausted")

    def _write_temp(self, data: bytes) -> str:
        """``data`` in a new hidden temporary file, written with one call; its path."""
        for temp in self._temp_paths():
            try:
                fd = _open_fd(temp, _EXCLUSIVE)
            except FileExistsError:
                continue
            except OSError as exc:
                raise io_error("create a file in", self.directory, exc) from exc
            try:
                write_all(fd, data)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                if isinstance(exc, OSError):
                    raise io_error("write", temp, exc) from exc
                raise
            try:
                os.close(fd)
            except OSError as exc:  # NFS and FUSE report failed writes at close
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise io_error("write", temp, exc) from exc
            return temp
        raise AssertionError("unreachable: _temp_paths raises when exhausted")

    def save(self, ref: MessageRef, data: bytes, attachments: bool) -> None:
        """A whole message already in memory (the bulk path for all but huge messages).

        Summarised and named from its header block, written to a temporary file with one
        ``write`` and published under its name like a streamed one; with ``attachments`` they
        are split from the same bytes. Nothing of a failed message stays behind but the
        attachments already written.
        """
        fields = header_fields(header_block(data[:_HEAD_LIMIT]))
        name = eml_filename(*subject_and_date(fields), ref.id)
        temp = self._write_temp(data)
        try:
            final = publish_at(temp, self._root, name)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if isinstance(exc, OSError):
                raise io_error("save the message in", self.directory, exc) from exc
            raise
        saved = SavedMessage(final, len(data), ref=ref, fields=fields)
        self.saved[ref.id] = saved
        if attachments:
            self._save_attachments(ref, saved, data)

    def _save_attachments(self, ref: MessageRef, saved: SavedMessage, data: bytes) -> None:
        parts, problems = split_attachments_checked(data)
        saved.problems.extend(problems)
        if not parts:
            return
        target, taken = self._attachment_dir(ref.id)
        for part, content in parts:
            try:
                path = create_file(
                    target, part.filename or "attachment", content, resolved=True, taken=taken
                )
            except OSError as exc:
                raise io_error("write an attachment file in", target, exc) from exc
            saved.attachment_files.append(path)

    def complete(self, ref: MessageRef, part: Any | None, dest: BinaryIO, size: int) -> None:
        assert isinstance(dest, _Writer)
        dest.finish()
        if part is not None:
            if ref.id in self.saved:
                self.saved[ref.id].attachment_files.append(os.fspath(dest.path))
            return
        assert isinstance(dest, _HeadKeepingWriter)
        fields = header_fields(header_block(bytes(dest.head)))
        name = eml_filename(*subject_and_date(fields), ref.id)
        try:
            final = publish_file(dest.path, self.directory, name, resolved=True)
        except OSError as exc:
            raise io_error("save the message in", self.directory, exc) from exc
        self.saved[ref.id] = SavedMessage(final, size, ref=ref, fields=fields)

    # -- helper connections (mailgate.protocols.imap.parallel) ---------------------------------

    def recipe(self) -> Callable[[], DirectorySink]:
        """Builds a sink for the same directory in a helper process (names never collide:
        each is taken with O_EXCL or link, and temporary names carry the process id)."""
        return partial(DirectorySink, self.directory)

    def export(self) -> dict[str, SavedMessage]:
        return self.saved

    def absorb(self, exported: dict[str, SavedMessage]) -> None:
        self.saved.update(exported)

    def abort(self, ref: MessageRef, part: Any | None, dest: BinaryIO) -> None:
        assert isinstance(dest, _Writer)
        dest.discard()
        # The error that made us abort is the one to report, not a failing clean-up.
        with contextlib.suppress(OSError):
            dest.path.unlink(missing_ok=True)

    async def fetch_one(
        self, ref: MessageRef, fetch: Callable[[BinaryIO], Awaitable[int]], attachments: bool
    ) -> SavedMessage:
        """The generic path: stream one message, then split its attachments locally."""
        handle = self.open(ref, None)
        try:
            size = await fetch(handle)
            self.complete(ref, None, handle, size)
        except BaseException:
            # Also when complete fails (disk full on the last flush, the rename refused): the
            # temporary file must not stay behind.
            self.abort(ref, None, handle)
            raise
        saved = self.saved[ref.id]
        if attachments:
            files, problems = extract_attachments(saved.eml_path)
            saved.attachment_files.extend(map(os.fspath, files))
            saved.problems.extend(problems)
        return saved
