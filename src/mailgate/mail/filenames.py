"""Safe file names for attachments and saved messages, whatever the sender put in the MIME.

Attachment names are attacker-controlled: ``../../x``, ``/etc/passwd``, ``C:\\x``, NUL and other
control characters, Windows device names (``CON``, ``nul.txt``), 500-character names, names that
differ only in case, or the same name twice. :func:`safe_filename` maps any name to one plain
component; :func:`reserve_path` creates the file exclusively inside the target directory, adding
``-2``, ``-3``... before the extension instead of overwriting. ``O_EXCL`` only sees the names
this file system tells apart; given the ``taken`` set of a directory (names in
:func:`str.casefold` form), the functions also skip a name that differs from one already there
only in case (``INVOICE.pdf`` beside ``invoice.pdf`` becomes ``INVOICE-2.pdf``), so a folder
stays whole when it is copied to a Windows share or a Mac.
"""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "MAX_NAME_BYTES",
    "candidate_paths",
    "create_file",
    "publish_at",
    "publish_file",
    "reserve_path",
    "safe_filename",
    "write_all",
]

MAX_NAME_BYTES = 200  # well under NAME_MAX (255) so "-NNN" suffixes and ".part" still fit
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", "clock$", "conin$", "conout$"}
    | {f"com{i}" for i in range(10)}
    | {f"lpt{i}" for i in range(10)}
)
_UNSAFE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


_SEPARATORS = re.compile(r"[/\\]")


def _truncate(stem: str, ext: str) -> tuple[str, str]:
    # ASCII within the budget (the common case): characters are bytes, nothing to cut.
    if (
        stem.isascii()
        and ext.isascii()
        and len(ext) <= 20
        and len(stem) + len(ext) <= MAX_NAME_BYTES
    ):
        return stem.rstrip(" ."), ext
    ext_bytes = ext.encode("utf-8")
    if len(ext_bytes) > 20:
        ext = ""
    budget = MAX_NAME_BYTES - len(ext.encode("utf-8"))
    encoded = stem.encode("utf-8")[:budget]
    return encoded.decode("utf-8", errors="ignore").rstrip(" ."), ext


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """One safe path component for ``name`` (never empty, never ``.``/``..``, no separators)."""
    text = name or ""
    if not text.isascii():  # NFC leaves ASCII as it is: bulk saves skip the call
        text = unicodedata.normalize("NFC", text)
    if "/" in text or "\\" in text:
        # Keep only the last path component a sender may have smuggled in.
        text = _SEPARATORS.split(text)[-1]
    text = _UNSAFE.sub("_", text)
    if not (text.isascii() and text.isprintable()):  # the common case needs no scan
        text = "".join(
            ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc", "Zl", "Zp")
        )
    text = text.strip().strip(".").strip()
    if not text:
        text = fallback
    stem, dot, ext = text.rpartition(".")
    if not dot or not stem:
        stem, ext = text, ""
    else:
        ext = "." + ext
    if stem.split(".")[0].lower() in _WINDOWS_DEVICES:
        stem = "_" + stem
    stem, ext = _truncate(stem, ext)
    return (stem or fallback) + ext


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _candidates(
    directory: str | Path,
    name: str,
    resolved: bool,
    safe: bool = False,
    taken: set[str] | None = None,
) -> Iterator[str]:
    """``name`` made safe, then ``stem-2.ext``, ``stem-3.ext``... inside ``directory``,
    leaving out those whose casefolded name is in ``taken``.

    ``safe=True``: ``name`` is already a :func:`safe_filename` result (saves a second pass).
    Paths are strings here: bulk saves try one per file, and ``Path`` objects cost more than
    the system calls they name.
    """
    base = name if safe else safe_filename(name)
    if "/" in base or "\0" in base or base in ("", ".", ".."):  # pragma: no cover
        raise ValueError(f"unsafe file name {name!r}")  # safe_filename never returns these
    stem, dot, ext = base.rpartition(".")
    if not dot or not stem:
        stem, ext = base, ""
    else:
        ext = "." + ext
    root = os.fspath(directory if resolved else Path(directory).resolve())
    if taken is None or base.casefold() not in taken:
        yield f"{root}/{base}"
    for n in range(2, 10_000):
        candidate = f"{stem}-{n}{ext}"
        if taken is None or candidate.casefold() not in taken:
            yield f"{root}/{candidate}"
    raise FileExistsError(f"too many files named like {base!r} in {directory}")


def _take(taken: set[str] | None, path: str) -> None:
    if taken is not None:
        taken.add(path.rpartition("/")[2].casefold())


def reserve_path(
    directory: Path, name: str, *, resolved: bool = False, taken: set[str] | None = None
) -> Path:
    """Create an empty file for ``name`` inside ``directory`` without overwriting anything.

    The file is created with ``O_EXCL`` (and ``O_NOFOLLOW``), so a concurrent writer or a planted
    symlink cannot make two messages share a file or a write land outside ``directory``.
    ``resolved=True`` says ``directory`` is already absolute and free of symlinks (saves the
    ``resolve()`` per file in bulk saves). ``taken``: the casefolded names already in
    ``directory``; a name equal to one of them but for case is skipped, and the new one added.
    """
    for candidate in _candidates(directory, name, resolved, taken=taken):
        try:
            fd = os.open(candidate, _CREATE, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        _take(taken, candidate)
        return Path(candidate)
    raise AssertionError("unreachable: _candidates raises when exhausted")


def candidate_paths(directory: Path, name: str) -> Iterator[Path]:
    """The names :func:`publish_file` tries, in order, in the resolved ``directory``.

    An import looks through them for its own earlier copy of a message before publishing.
    """
    return (Path(candidate) for candidate in _candidates(directory, name, True))


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may take less, e.g. near a quota)."""
    written = os.write(fd, data)
    if written < len(data):
        with memoryview(data) as view:
            while written < len(data):
                written += os.write(fd, view[written:])


def create_file(
    directory: str | Path,
    name: str,
    data: bytes,
    *,
    resolved: bool = False,
    taken: set[str] | None = None,
) -> str:
    """A new file for ``name`` in ``directory`` holding ``data``: :func:`reserve_path`'s rules
    (``O_EXCL|O_NOFOLLOW``, ``-2``... instead of overwriting, ``taken``) with one open and one
    write. Returns its path as a string (bulk saves write thousands: a ``Path`` each cost ~3 us).

    A write that fails removes the file again, so a cut-off file never stays behind.
    """
    for candidate in _candidates(directory, name, resolved, taken=taken):
        try:
            fd = os.open(candidate, _CREATE, 0o600)
        except FileExistsError:
            continue
        try:
            write_all(fd, data)
        except BaseException:
            os.close(fd)
            _remove(candidate)
            raise
        try:
            os.close(fd)
        except OSError:
            _remove(candidate)
            raise
        _take(taken, candidate)
        return candidate
    raise AssertionError("unreachable: _candidates raises when exhausted")


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def publish_file(
    temp: str | Path, directory: Path, name: str, *, resolved: bool = False, safe: bool = False
) -> Path:
    """Give the finished file ``temp`` the name ``name`` in ``directory``, never overwriting.

    ``os.link`` fails if the name exists (a planted symlink included), so taking a name and
    making the complete file appear under it is one atomic step; ``temp`` is then removed.
    File systems without hard links (FAT/exFAT, many SMB/CIFS shares, some FUSE mounts) refuse
    ``os.link`` with another error; there the name is reserved with ``O_EXCL`` and ``temp``
    renamed onto that empty file of our own, which still overwrites nothing of anyone else's.
    ``safe=True`` says ``name`` came from :func:`safe_filename` already.
    """
    for candidate in _candidates(directory, name, resolved, safe):
        try:
            os.link(temp, candidate)
        except FileExistsError:
            continue
        except OSError:
            return _publish_by_rename(temp, directory, name, resolved)
        os.unlink(temp)
        return Path(candidate)
    raise AssertionError("unreachable: _candidates raises when exhausted")


def publish_at(temp: str, root: str, name: str) -> str:
    """:func:`publish_file` for the bulk path: ``root`` resolved, ``name`` already safe, and
    the path as a string; the first name is tried without building the candidate list."""
    first = f"{root}/{name}"
    try:
        os.link(temp, first)
    except FileExistsError:
        return os.fspath(publish_file(temp, Path(root), name, resolved=True, safe=True))
    except OSError:
        return os.fspath(_publish_by_rename(temp, Path(root), name, True))
    os.unlink(temp)
    return first


def _publish_by_rename(temp: str | Path, directory: Path, name: str, resolved: bool) -> Path:
    reserved = reserve_path(directory, name, resolved=resolved)
    try:
        os.replace(temp, reserved)
    except BaseException:
        # Release the name again: an empty file would look like a saved (empty) message.
        reserved.unlink(missing_ok=True)
        raise
    return reserved
