"""What every sandbox mail protocol shares: :class:`SandboxMail` and the seeded mailboxes.

:class:`SandboxMail` bundles the :class:`~mailgate.sandbox.exchange.store.MailStore`, the tenant
directory (apps, users, mailboxes, Exchange settings), the key that verifies access tokens, and
per-mailbox counters (the SMTP message rate). IMAP, POP3, SMTP, Graph and EWS all receive the
same instance; :mod:`mailgate.sandbox.exchange.rules` decides who may do what with it.

:func:`seed_message` turns a ``[[tenants.mailboxes.messages]]`` entry into RFC 5322 bytes.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from cryptography.hazmat.primitives.asymmetric import rsa

from mailgate.sandbox.directory.exchange_settings import (
    ExchangeSettings,
    MailboxConfig,
    SeedMessage,
)
from mailgate.sandbox.directory.tenant import Tenant, TenantFile
from mailgate.sandbox.exchange.store import MailStore

__all__ = ["SandboxMail", "build_store", "seed_message"]


def _now() -> datetime:
    return datetime.now(UTC)


def _attachment_bytes(name: str, size: int) -> bytes:
    # Deterministic filler, so tests can compare what they download with what was seeded.
    block = hashlib.sha256(name.encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def seed_message(
    seed: SeedMessage, mailbox: MailboxConfig, directory: TenantFile, date: datetime
) -> bytes:
    """RFC 5322 bytes for a seeded message (or the ``eml_file`` it names)."""
    if seed.eml_file:
        return directory.path(seed.eml_file).read_bytes()
    message = EmailMessage()
    message["From"] = seed.from_ or mailbox.address
    message["To"] = ", ".join(seed.to or [mailbox.address])
    message["Subject"] = seed.subject
    message["Date"] = format_datetime(seed.date or date)
    message["Message-ID"] = make_msgid(domain="sandbox.mailgate.invalid")
    if seed.in_reply_to:
        message["In-Reply-To"] = seed.in_reply_to
        message["References"] = seed.in_reply_to
    message.set_content(seed.body or "\n")
    for attachment in seed.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            _attachment_bytes(attachment.name, attachment.size),
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=attachment.name,
        )
    return message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def build_store(directory: TenantFile, now: datetime | None = None) -> MailStore:
    """A store with every tenant's mailboxes and their seeded messages.

    Seeded messages get dates one hour apart ending at ``now``, oldest first.
    """
    store = MailStore()
    moment = now or _now()
    for tenant in directory.tenants:
        for config in tenant.mailboxes:
            mailbox = store.add_mailbox(config.address, config.display_name)
            count = len(config.messages)
            for index, seed in enumerate(config.messages):
                date = seed.date or moment - timedelta(hours=count - index)
                try:
                    mailbox.folder(seed.folder)
                except KeyError:
                    mailbox.create_folder(seed.folder)
                flags = {"\\Seen"} if seed.seen else set()
                if seed.flagged:
                    flags.add("\\Flagged")
                raw = seed_message(seed, config, directory, date)
                mailbox.append(seed.folder, raw, flags, date)
    return store


@dataclass
class SandboxMail:
    """The mail side of the sandbox, shared by all protocol servers.

    ``public_key`` verifies access tokens; ``issuer_base`` is the identity platform's base URL
    (tokens carry ``iss = {issuer_base}/{tid}/``); ``clock`` is injectable so tests can step
    the SMTP rate window without waiting a minute.
    """

    store: MailStore
    directory: TenantFile
    public_key: rsa.RSAPublicKey
    issuer_base: str
    clock: Callable[[], datetime] = _now
    _sent: dict[str, deque[datetime]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Submissions to accept and then leave unanswered, per protocol ("smtp", "graph"): the
    # answer a client loses when the connection breaks after the server took the message.
    _lost_answers: dict[str, int] = field(default_factory=dict)

    def lose_answers(self, protocol: str, count: int) -> None:
        """Accept the next ``count`` submissions over ``protocol`` but lose their answers."""
        with self._lock:
            self._lost_answers[protocol] = max(0, count)

    def answer_lost(self, protocol: str) -> bool:
        """True (once per count) if this accepted submission's answer is to be lost."""
        with self._lock:
            left = self._lost_answers.get(protocol, 0)
            if left <= 0:
                return False
            self._lost_answers[protocol] = left - 1
            return True

    def tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant with this id."""
        return next((t for t in self.directory.tenants if t.id == tenant_id.lower()), None)

    def mailbox_config(self, address: str) -> tuple[Tenant, MailboxConfig] | None:
        """The tenant and configuration of a mailbox address, if the sandbox hosts it."""
        for tenant in self.directory.tenants:
            found = tenant.mailbox(address)
            if found is not None:
                return tenant, found
        return None

    def exchange(self, address: str) -> ExchangeSettings:
        """Exchange settings of the tenant hosting ``address`` (defaults if none does)."""
        found = self.mailbox_config(address)
        return found[0].exchange if found else ExchangeSettings()

    def allow_smtp_message(self, address: str) -> bool:
        """Count one submitted message; False (and not counted) over the per-minute limit."""
        limit = self.exchange(address).smtp_messages_per_minute
        now = self.clock()
        with self._lock:
            window = self._sent.setdefault(address.lower(), deque())
            while window and window[0] <= now - timedelta(seconds=60):
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            return True
