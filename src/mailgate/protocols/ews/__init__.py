"""EWS, client side: :class:`EwsMailbox`, thin I/O around pure SOAP request builders (``soap``)
and reply parsing with error mapping (``replies``).

May import: ``mailgate.protocols`` (``base``, ``transport``, ``_http_mailbox``), ``mailgate.mail``,
``errors``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailgate._faces import lazy_face

if TYPE_CHECKING:
    from mailgate.protocols.ews.adapter import EwsMailbox

__all__ = ["EwsMailbox"]

__getattr__, __dir__ = lazy_face(__name__, {"EwsMailbox": "adapter"})
