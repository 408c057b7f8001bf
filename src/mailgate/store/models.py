"""The state store's tables: processed messages, the outbox and watch cursors.

Timestamps are stored as UTC. ``uidvalidity`` is 0 for protocols without it (POP3, EWS, Graph)
so that the uniqueness key never contains NULL (SQL treats NULLs as distinct, which would let a
message be recorded twice).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "Cursor", "OutboxMessage", "ProcessedMessage", "UtcDateTime", "utcnow"]


def utcnow() -> datetime:
    """Now, timezone-aware UTC (what every timestamp column holds)."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that comes back timezone-aware UTC on SQLite too (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; use UTC-aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every mailgate table."""


class ProcessedMessage(Base):
    """One message an import job has handled (or is handling) and what became of it.

    ``state``: ``delivering`` (output being written) → ``delivered`` (output durable) → ``done``
    (post-processing applied); or ``oversize`` / ``failed`` with ``error``.
    """

    __tablename__ = "processed_messages"
    __table_args__ = (
        UniqueConstraint("job", "mailbox", "folder", "uidvalidity", "item_id", name="uq_processed"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    mailbox: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    item_id: Mapped[str] = mapped_column(String(1024))
    message_id: Mapped[str | None] = mapped_column(Text, default=None)
    content_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    size: Mapped[int | None] = mapped_column(BigInteger, default=None)
    state: Mapped[str] = mapped_column(String(16))
    destination: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class OutboxMessage(Base):
    """A message accepted for sending, persisted before it was accepted.

    ``state``: ``queued`` → ``sending`` (committed before submission) → ``sent``; or ``failed``
    with ``last_error``. ``lease_owner``/``lease_until`` let several workers share the queue.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mailbox: Mapped[str] = mapped_column(String(64), index=True)
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    mime: Mapped[bytes] = mapped_column(LargeBinary)
    envelope_from: Mapped[str | None] = mapped_column(String(320), default=None)
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)
    recipient_count: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None, index=True)
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime(), default=None)


class Cursor(Base):
    """Where watching a folder got to: a Graph delta link, an EWS sync state, an IMAP UID."""

    __tablename__ = "cursors"

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)
