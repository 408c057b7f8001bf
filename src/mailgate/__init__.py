"""mailgate: read, send and react to mail in Microsoft 365 / Exchange Online with OAuth2.

The Python API in one import, for example the outbox (docs/outbox.md)::

    from mailgate import MailboxConnector, MailboxStore, OutgoingMessage, drain, enqueue, open_store

Each name loads its module on first use (:mod:`mailgate._faces`): ``import mailgate`` stays
free, since every module of the package (and every CLI start) passes through here. The packages
keep their own faces (``mailgate.identity``, ``mailgate.protocols``, ``mailgate.vault``, ...);
``mailgate.testing`` (the sandbox for your tests) is not re-exported, production code never
needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate._faces import lazy_face

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mailgate.connect import MailboxConnector
    from mailgate.diagnose import ConnectionReport, run_connection_test
    from mailgate.errors import MailgateError
    from mailgate.identity import AccessToken, TokenProvider
    from mailgate.jobs.get import GetResult, get_messages
    from mailgate.jobs.importing import ImportOptions, ImportReport, run_import
    from mailgate.jobs.outbox import drain, enqueue
    from mailgate.jobs.send import send_message
    from mailgate.mail.compose import Attachment, OutgoingMessage
    from mailgate.mailboxes import MailboxProfile, MailboxStore
    from mailgate.paths import data_dir
    from mailgate.protocols import Mailbox, MessageSummary, SearchCriteria
    from mailgate.secret import Secret
    from mailgate.store import StateStore, open_store
    from mailgate.vault import Vault

_HOMES = {
    "MailboxConnector": "connect",
    "ConnectionReport": "diagnose",
    "run_connection_test": "diagnose",
    "MailgateError": "errors",
    "AccessToken": "identity",
    "TokenProvider": "identity",
    "GetResult": "jobs.get",
    "get_messages": "jobs.get",
    "ImportOptions": "jobs.importing",
    "ImportReport": "jobs.importing",
    "run_import": "jobs.importing",
    "drain": "jobs.outbox",
    "enqueue": "jobs.outbox",
    "send_message": "jobs.send",
    "Attachment": "mail.compose",
    "OutgoingMessage": "mail.compose",
    "MailboxProfile": "mailboxes",
    "MailboxStore": "mailboxes",
    "data_dir": "paths",
    "Mailbox": "protocols",
    "MessageSummary": "protocols",
    "SearchCriteria": "protocols",
    "Secret": "secret",
    "StateStore": "store",
    "open_store": "store",
    "Vault": "vault",
}

__all__ = [
    "AccessToken",
    "Attachment",
    "ConnectionReport",
    "GetResult",
    "ImportOptions",
    "ImportReport",
    "Mailbox",
    "MailboxConnector",
    "MailboxProfile",
    "MailboxStore",
    "MailgateError",
    "MessageSummary",
    "OutgoingMessage",
    "SearchCriteria",
    "Secret",
    "StateStore",
    "TokenProvider",
    "Vault",
    "data_dir",
    "drain",
    "enqueue",
    "get_messages",
    "open_store",
    "run_connection_test",
    "run_import",
    "send_message",
]

__getattr__, __dir__ = lazy_face(__name__, _HOMES)
