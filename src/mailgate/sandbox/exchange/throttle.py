"""Request budgets per (app id, mailbox), as Exchange Online applies them to Graph and EWS.

Graph's Outlook limits (design/microsoft-facts.md §5, [V]): 10,000 requests per 10 minutes and
4 concurrent requests per app and mailbox; over either, 429 with ``Retry-After``. EWS answers
``ErrorServerBusy`` with ``BackOffMilliseconds`` instead. :class:`Throttle` only keeps the
books (a sliding window of admission times and an in-flight count) under an injectable clock;
the routers decide how a refusal looks on the wire. Tests force refusals with :meth:`force`
instead of sending 10,000 requests.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["WINDOW_SECONDS", "Key", "Limits", "Throttle"]

WINDOW_SECONDS = 600.0
Key = tuple[str, str]


@dataclass(frozen=True)
class Limits:
    """A budget: requests per window and requests in flight at once (None = unlimited)."""

    per_window: int | None = 10_000
    concurrent: int | None = 4


@dataclass
class _Forced:
    remaining: int
    retry_after: int
    app_id: str | None
    mailbox: str | None

    def applies(self, key: Key) -> bool:
        return (self.app_id is None or self.app_id == key[0]) and (
            self.mailbox is None or self.mailbox == key[1]
        )


@dataclass
class _Books:
    admitted: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class Throttle:
    """Admits or refuses requests per key; thread-safe (servers run requests in threads)."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, window: float = WINDOW_SECONDS
    ) -> None:
        self._clock = clock
        self._window = window
        self._lock = threading.Lock()
        self._books: dict[Key, _Books] = {}
        self._forced: list[_Forced] = []

    @staticmethod
    def key(app_id: str, mailbox: str) -> Key:
        """The bookkeeping key: app id and mailbox, case-insensitive."""
        return (app_id.lower(), mailbox.lower())

    def enter(self, key: Key, limits: Limits) -> int | None:
        """Admit one request (returns None; call :meth:`leave` when it is done) or refuse it.

        A refusal returns the seconds the client should wait (``Retry-After``) and is not
        counted against the budget.
        """
        with self._lock:
            for forced in self._forced:
                if forced.remaining > 0 and forced.applies(key):
                    forced.remaining -= 1
                    return forced.retry_after
            self._forced = [f for f in self._forced if f.remaining > 0]
            books = self._books.setdefault(key, _Books())
            now = self._clock()
            while books.admitted and books.admitted[0] <= now - self._window:
                books.admitted.popleft()
            if limits.concurrent is not None and books.in_flight >= limits.concurrent:
                return 1
            if limits.per_window is not None and len(books.admitted) >= limits.per_window:
                oldest = books.admitted[len(books.admitted) - limits.per_window]
                return max(1, math.ceil(oldest + self._window - now))
            books.admitted.append(now)
            books.in_flight += 1
            return None

    def leave(self, key: Key) -> None:
        """The request admitted under ``key`` has finished."""
        with self._lock:
            books = self._books.get(key)
            if books is not None and books.in_flight > 0:
                books.in_flight -= 1

    def in_flight(self, key: Key) -> int:
        """Requests admitted under ``key`` and not yet finished."""
        with self._lock:
            books = self._books.get(key)
            return books.in_flight if books else 0

    def force(
        self,
        count: int,
        retry_after: int,
        app_id: str | None = None,
        mailbox: str | None = None,
    ) -> None:
        """Refuse the next ``count`` requests (of one app and/or mailbox, if given)."""
        with self._lock:
            self._forced.append(
                _Forced(
                    count,
                    retry_after,
                    app_id.lower() if app_id else None,
                    mailbox.lower() if mailbox else None,
                )
            )

    def reset(self) -> None:
        """Forget all admissions and forced refusals (in-flight counts stay)."""
        with self._lock:
            self._forced.clear()
            for books in self._books.values():
                books.admitted.clear()
