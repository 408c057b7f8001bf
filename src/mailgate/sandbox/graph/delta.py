"""Bookkeeping for Graph's message delta queries: opaque tokens and pages of changes.

A delta round starts with ``GET …/mailFolders/{id}/messages/delta`` (or a saved
``$deltatoken``), reads the folder's changes since a sync point from
:meth:`~mailgate.sandbox.exchange.store.StoredMailbox.changes` once, and hands them out page by page
behind ``$skiptoken`` links; the last page carries a ``$deltatoken`` naming the next sync
point. Tokens are random and kept server-side (bounded), so an unknown or expired one is
recognised and answered 410 Gone ``syncStateNotFound``, as Graph does.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass

from mailgate.sandbox.exchange.store import Change

__all__ = ["DEFAULT_PAGE_SIZE", "MAX_TOKENS", "DeltaState", "DeltaTokens", "page_size"]

DEFAULT_PAGE_SIZE = 10
MAX_TOKENS = 10_000


@dataclass(frozen=True)
class DeltaState:
    """Where a delta round stands: the mailbox/folder, the changes still to hand out (None
    for a delta token, whose changes are read when it is used), and the next sync point."""

    mailbox: str
    folder_id: str
    sync: int
    pending: tuple[Change, ...] | None = None
    select: str | None = None


class DeltaTokens:
    """Issues and redeems delta and skip tokens; the oldest are forgotten past a bound."""

    def __init__(self, limit: int = MAX_TOKENS) -> None:
        self._limit = limit
        self._states: OrderedDict[str, DeltaState] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, state: DeltaState) -> str:
        """Remember ``state`` under a new opaque token."""
        token = secrets.token_urlsafe(18)
        with self._lock:
            self._states[token] = state
            while len(self._states) > self._limit:
                self._states.popitem(last=False)
        return token

    def redeem(self, token: str, mailbox: str, folder_id: str) -> DeltaState | None:
        """The state behind ``token`` if it exists and belongs to this mailbox and folder.

        Skip tokens are single-use; delta tokens may be replayed (a client that lost a
        response calls the same deltaLink again).
        """
        with self._lock:
            state = self._states.get(token)
            if state is None or state.mailbox != mailbox.lower() or state.folder_id != folder_id:
                return None
            if state.pending is not None:
                del self._states[token]
            return state

    def expire_all(self) -> int:
        """Forget every token (the sandbox's stand-in for an expired sync state)."""
        with self._lock:
            count = len(self._states)
            self._states.clear()
            return count


def page_size(prefer: str | None) -> int:
    """The page size asked for by ``Prefer: odata.maxpagesize=N`` (default 10)."""
    for part in (prefer or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "odata.maxpagesize":
            try:
                size = int(value.strip().strip('"'))
            except ValueError:
                return DEFAULT_PAGE_SIZE
            return max(1, min(size, 1000))
    return DEFAULT_PAGE_SIZE
