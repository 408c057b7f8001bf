"""Send one message now through a mailbox profile: the Python API under ``mailgate send``.

:func:`send_message` builds the MIME (refusing header injection), takes the envelope sender from
the From address, submits it over the profile's protocol (SMTP, EWS or Graph) and returns its
Message-ID. It keeps nothing: to accept a message first and send it later within limits, queue it
in the durable outbox instead (:mod:`mailgate.jobs.outbox.operations`, ``mailgate send --queue``).
"""

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
