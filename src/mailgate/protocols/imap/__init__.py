"""IMAP, client side: :class:`ImapMailbox` over our own asyncio client.

Pure modules (no sockets): ``parser`` (responses → values), ``commands`` (arguments),
``results`` (what replies mean), ``attachments`` (a light MIME splitter), ``utf7`` (mailbox
names). I/O: ``connection`` (one connection), ``adapter`` (the adapter), ``bulk`` (1,000-message
fetches streamed to files) and ``parallel`` (helper connections in child processes).

May import: ``mailgate.protocols`` (``base``, ``sasl``, ``_mailstream``, ``_socket_mailbox``),
``mailgate.mail``, ``errors``, ``fileio``, ``processes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate._faces import lazy_face

if TYPE_CHECKING:
    from mailgate.protocols.imap.adapter import ImapMailbox, UidValidityChangedError

__all__ = ["ImapMailbox", "UidValidityChangedError"]

__getattr__, __dir__ = lazy_face(
    __name__, {"ImapMailbox": "adapter", "UidValidityChangedError": "adapter"}
)
