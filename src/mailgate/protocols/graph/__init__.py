"""Microsoft Graph mail, client side: :class:`GraphMailbox`, thin I/O around pure request
building and JSON parsing (``shapes``).

May import: ``mailgate.protocols`` (``base``, ``transport``, ``_http_mailbox``), ``mailgate.mail``,
``errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate._faces import lazy_face

if TYPE_CHECKING:
    from mailgate.protocols.graph.adapter import GraphMailbox

__all__ = ["GraphMailbox"]

__getattr__, __dir__ = lazy_face(__name__, {"GraphMailbox": "adapter"})
