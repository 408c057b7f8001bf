"""``get``: find messages and optionally save them (and their attachments), changing nothing.

The Python API under ``mailgate get`` and the demo. Saving uses IMAP's bulk fetch (1,000
messages per ``UID FETCH``, streamed to files) and one message at a time elsewhere, both through
:class:`~mailgate.mail.save.DirectorySink`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from mailgate.connect import MailboxConnector
from mailgate.mail.save import DirectorySink, SavedMessage
from mailgate.mailboxes import MailboxProfile
from mailgate.protocols.base import (
    Mailbox,
    MessageRef,
    MessageSummary,
    SearchCriteria,
)
from mailgate.protocols.imap.adapter import ImapMailbox
from mailgate.protocols.imap.bulk import fetch_many
from mailgate.protocols.imap.parallel import FetchPool, helpers_for

__all__ = ["GetResult", "get_messages"]


class GetResult:
    """The messages found and, when saved, where each went.

    After a save the summaries are made from the saved headers when first asked for (a bulk
    save of thousands that only reports a count never pays for them).
    """

    def __init__(
        self,
        summaries: list[MessageSummary] | None = None,
        saved: dict[str, SavedMessage] | None = None,
        refs: Sequence[MessageRef] = (),
    ) -> None:
        self._summaries = summaries
        self.saved: dict[str, SavedMessage] = saved if saved is not None else {}
        self._refs = refs

    @property
    def summaries(self) -> list[MessageSummary]:
        """One per message found (or saved), in the order of the search."""
        if self._summaries is None:
            self._summaries = [
                s.summary for ref in self._refs if (s := self.saved.get(ref.id)) and s.summary
            ]
        return self._summaries

    def __repr__(self) -> str:  # short: see ImportReport.__repr__
        count = len(self._summaries) if self._summaries is not None else len(self._refs)
        return f"GetResult(summaries={count}, saved={len(self.saved)})"

    @property
    def problems(self) -> list[str]:
        return [f"{s.eml_path.name}: {p}" for s in self.saved.values() for p in s.problems]


async def _save_all(
    mailbox: Mailbox,
    refs: list[MessageRef],
    directory: Path,
    attachments: bool,
    advance: Callable[[int], None],
    connections: int,
) -> DirectorySink:
    sink = DirectorySink(directory)
    if isinstance(mailbox, ImapMailbox):
        done = 0

        def progress(handled: int) -> None:
            nonlocal done
            advance(handled - done)
            done = handled

        helpers = helpers_for(len(refs), connections, heavy=attachments)
        async with await FetchPool.start(mailbox, helpers) as pool:
            await fetch_many(
                mailbox, refs, sink, attachments=attachments, progress=progress, pool=pool
            )
        return sink
    for ref in refs:
        await sink.fetch_one(ref, partial(mailbox.fetch_mime, ref), attachments)
        advance(1)
    return sink


async def get_messages(
    connector: MailboxConnector,
    profile: MailboxProfile,
    criteria: SearchCriteria,
    *,
    folder: str | None = None,
    limit: int | None = None,
    save: Path | None = None,
    attachments: bool = True,
    on_found: Callable[[int], None] = lambda _n: None,
    advance: Callable[[int], None] = lambda _n: None,
    connections: int = 1,
) -> GetResult:
    """Search ``folder`` (default: the profile's) and fetch headers; save when ``save`` is set.

    ``on_found`` gets the number of matches before saving starts, ``advance`` the progress.
    ``connections``: IMAP connections a large save may use at once (helper processes, see
    :mod:`mailgate.protocols.imap.parallel`); 1 keeps it to one.
    """
    async with connector.adapter(profile) as mailbox:
        refs = await mailbox.search(folder or profile.default_folder, criteria, limit)
        on_found(len(refs))
        if save is None:
            return GetResult(await mailbox.fetch_headers(refs) if refs else [])
        # Saving streams every message anyway: summaries come from the headers on the way,
        # not from a second round of header fetches.
        sink = await _save_all(mailbox, refs, save, attachments, advance, connections)
    return GetResult(saved=sink.saved, refs=refs)
