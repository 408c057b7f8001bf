"""``send``: one message through a mailbox profile, now (the durable outbox comes later)."""

from __future__ import annotations

from email.utils import parseaddr

from mailgate.connect import MailboxConnector
from mailgate.mail.compose import OutgoingMessage, build_message
from mailgate.mailboxes import MailboxProfile, parse_address

__all__ = ["send_message"]


async def send_message(
    connector: MailboxConnector, profile: MailboxProfile, message: OutgoingMessage
) -> str:
    """Build the MIME (refusing header injection first) and submit it; returns its Message-ID."""
    mime = build_message(message)
    envelope_from = parse_address(parseaddr(message.sender)[1] or message.sender, "--from")
    async with connector.adapter(profile) as mailbox:
        await mailbox.send(mime.as_bytes(), sender=envelope_from, recipients=message.recipients)
    return str(mime["Message-ID"])
