"""Exchange Online's IMAP4rev1 server, emulated: the session, folder and message commands,
SEARCH and FETCH evaluation, the wire codec, MIME structure for FETCH.

May import: ``sandbox.exchange``, ``sandbox._streams``, ``mailgate.protocols.sasl`` (the pure
SASL grammar both ends share).
"""

__all__: list[str] = []
