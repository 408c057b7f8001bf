"""Where an import delivers each batch: one class per destination, one module each.

- :mod:`.common`: :class:`~.common.Delivery` (one message on its way) and the
  :class:`~.common.Destination` every destination implements;
- :mod:`.directory`: ``--to DIR``, published under deterministic names, one sync per batch;
- :mod:`.spool`: without ``--to``, a private spool the other destinations read from;
- :mod:`.webhook`: ``--webhook URL``, signed POSTs (loads httpx: imported only when used);
- :mod:`.command`: ``--command``, one process per message with a cleaned environment;
- :mod:`.route`: which of them an import's options ask for, in order.

The first two are also where a fetched message's file *lands* (:class:`~.common.Landing`);
the destinations then see each batch in order: the landing's own (a sync), the webhook's, the
command's, and each skips the messages an earlier one failed.
"""

from __future__ import annotations

__all__: list[str] = []
