"""Saving fetched messages as ``.eml`` files and extracting their attachments, safely.

A message is streamed to a hidden temporary file in the target directory and renamed onto a
name reserved with ``O_EXCL`` only when complete, so an interrupted fetch never leaves a
truncated ``.eml`` that looks whole, and no existing file is ever overwritten. Attachments go to
``<stem>.attachments/`` beside it, each name made safe by :mod:`mailgate.mail.filenames`.
Broken MIME never stops a run: the raw ``.eml`` is kept and the problem is reported.
"""

from __future__ import annotations

import email
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import Message
from pathlib import Path
from typing import Any, BinaryIO

from mailgate.mail.filenames import reserve_path, safe_filename
from mailgate.protocols.base import MessageRef

__all__ = [
    "DirectorySink",
    "SavedMessage",
    "eml_filename",
    "extract_attachments",
]


@dataclass
class SavedMessage:
    """Where a message went and what could not be done with it."""

    eml_path: Path
    size: int
    attachments: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def eml_filename(subject: str, date: datetime | None, ref_id: str) -> str:
    """``2026-11-23 Invoice 4711 [a1b2c3d4].eml`` (the short id keeps same-subject mail apart)."""
    stamp = date.strftime("%Y-%m-%d %H%M") if date else "undated"
    short = re.sub(r"[^A-Za-z0-9]", "", ref_id)[-8:] or "msg"
    # Slashes in a subject are not paths; keep the whole subject visible.
    title = re.sub(r"\s+", " ", (subject or "no subject").replace("/", "_").replace("\\", "_"))
    title = title.strip()[:80]
    return safe_filename(f"{stamp} {title} [{short}].eml", fallback="message.eml")


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
    target.mkdir(exist_ok=True)
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
        path = reserve_path(target, str(name))
        path.write_bytes(data)
        written.append(path)
    return written, problems


class DirectorySink:
    """Files fetched messages and attachments under one directory, never overwriting.

    Implements the ``open → complete | abort`` protocol of
    :class:`mailgate.protocols.imap_bulk.MessageSink` (``part`` None is the message itself,
    otherwise an attachment with a ``filename``), and serves the one-message-at-a-time path of
    the other protocols too. A message is written to ``.<name>.part`` and renamed onto its
    reserved name in :meth:`complete`; an aborted one leaves nothing behind.
    """

    def __init__(self, directory: Path, names: dict[str, str]) -> None:
        self.directory = directory
        self.names = names
        self.saved: dict[str, SavedMessage] = {}
        self._targets: dict[int, Path] = {}
        directory.mkdir(parents=True, exist_ok=True)

    def _attachment_dir(self, ref_id: str) -> Path:
        saved = self.saved.get(ref_id)
        stem = saved.eml_path.stem if saved else Path(self.names.get(ref_id, ref_id)).stem
        target = self.directory / (stem + ".attachments")
        target.mkdir(exist_ok=True)
        return target

    def open(self, ref: MessageRef, part: Any | None) -> BinaryIO:
        if part is None:
            final = reserve_path(self.directory, self.names.get(ref.id, f"{ref.id}.eml"))
            handle = open(final.with_name(f".{final.name}.part"), "xb")  # noqa: SIM115
        else:
            name = getattr(part, "filename", None) or "attachment"
            final = reserve_path(self._attachment_dir(ref.id), str(name))
            handle = open(final, "wb")  # noqa: SIM115 - closed in complete/abort
        self._targets[id(handle)] = final
        return handle

    def complete(self, ref: MessageRef, part: Any | None, dest: BinaryIO, size: int) -> None:
        final = self._targets.pop(id(dest))
        dest.close()
        if part is None:
            os.replace(dest.name, final)
            self.saved[ref.id] = SavedMessage(final, size)
        elif ref.id in self.saved:
            self.saved[ref.id].attachments.append(final)

    def abort(self, ref: MessageRef, part: Any | None, dest: BinaryIO) -> None:
        final = self._targets.pop(id(dest), None)
        dest.close()
        Path(str(dest.name)).unlink(missing_ok=True)
        if final is not None:
            final.unlink(missing_ok=True)

    async def fetch_one(
        self, ref: MessageRef, fetch: Callable[[BinaryIO], Awaitable[int]], attachments: bool
    ) -> SavedMessage:
        """The generic path: stream one message, then split its attachments locally."""
        handle = self.open(ref, None)
        try:
            size = await fetch(handle)
        except BaseException:
            self.abort(ref, None, handle)
            raise
        self.complete(ref, None, handle, size)
        saved = self.saved[ref.id]
        if attachments:
            files, problems = extract_attachments(saved.eml_path)
            saved.attachments.extend(files)
            saved.problems.extend(problems)
        return saved
