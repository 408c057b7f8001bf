"""Mail protocols, client side: the one :class:`Mailbox` interface and an adapter per protocol.

``base`` holds the interface and its value types; ``sasl`` the pure XOAUTH2/OAUTHBEARER grammar;
``transport`` the one httpx seam of Graph and EWS; ``imap/``, ``ews/``, ``graph/`` one folder each
(adapter plus its pure parsers); ``pop3`` and ``smtp`` one module each.

May import: ``mailgate.errors``, ``secret``, ``mail``, ``fileio``, ``processes``; never ``jobs``,
``cli``, ``diagnose`` or the sandbox. Names load on first use (:mod:`mailgate._faces`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate._faces import lazy_face

if TYPE_CHECKING:
    from mailgate.protocols.base import (
        Folder,
        MailAuthenticationError,
        Mailbox,
        MailboxAccessError,
        MessageRef,
        MessageSummary,
        Operation,
        Protocol,
        SearchCriteria,
        Security,
        SubmissionUnknownError,
        ThrottledError,
        TokenSource,
        UnsupportedOperation,
    )
    from mailgate.protocols.ews import EwsMailbox
    from mailgate.protocols.graph import GraphMailbox
    from mailgate.protocols.imap import ImapMailbox, UidValidityChangedError
    from mailgate.protocols.pop3 import Pop3Mailbox
    from mailgate.protocols.smtp import SmtpMailbox

_HOMES = {
    **dict.fromkeys(
        [
            "Folder",
            "MailAuthenticationError",
            "Mailbox",
            "MailboxAccessError",
            "MessageRef",
            "MessageSummary",
            "Operation",
            "Protocol",
            "SearchCriteria",
            "Security",
            "SubmissionUnknownError",
            "ThrottledError",
            "TokenSource",
            "UnsupportedOperation",
        ],
        "base",
    ),
    "EwsMailbox": "ews",
    "GraphMailbox": "graph",
    "ImapMailbox": "imap",
    "UidValidityChangedError": "imap",
    "Pop3Mailbox": "pop3",
    "SmtpMailbox": "smtp",
}

__all__ = [
    "EwsMailbox",
    "Folder",
    "GraphMailbox",
    "ImapMailbox",
    "MailAuthenticationError",
    "Mailbox",
    "MailboxAccessError",
    "MessageRef",
    "MessageSummary",
    "Operation",
    "Pop3Mailbox",
    "Protocol",
    "SearchCriteria",
    "Security",
    "SmtpMailbox",
    "SubmissionUnknownError",
    "ThrottledError",
    "TokenSource",
    "UidValidityChangedError",
    "UnsupportedOperation",
]

__getattr__, __dir__ = lazy_face(__name__, _HOMES)
