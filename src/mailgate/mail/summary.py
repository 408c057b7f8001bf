"""What every protocol says about a message without its body: where it is and its headers.

The values the ``Mailbox`` interface (:mod:`mailgate.protocols.base`, which re-exports them) hands
out and everything under it consumes: header summaries, saved files, import reports. They live in
``mail/`` because messages are below protocols: ``mail`` never imports ``protocols``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["MessageRef", "MessageSummary"]


@dataclass(frozen=True)
class MessageRef:
    """Where one message is: its folder and the protocol's id for it."""

    folder: str
    id: str
    change_key: str | None = None


@dataclass(frozen=True)
class MessageSummary:
    """Headers and facts about one message, without its body."""

    ref: MessageRef
    subject: str
    from_address: str
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    date: datetime | None = None
    message_id: str | None = None
    size: int | None = None
    seen: bool = False
    flagged: bool = False
    has_attachments: bool | None = None
    extra: dict[str, str] = field(default_factory=dict)
