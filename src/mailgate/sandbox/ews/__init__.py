"""EWS, emulated (``POST /EWS/Exchange.asmx``, SOAP 1.1): routes, folder and item operations,
FindItem restrictions, SOAP envelopes and faults, ``t:Message``/``t:Folder`` rendering.

May import: ``sandbox.exchange``, ``sandbox.entra``.
"""

__all__: list[str] = []
