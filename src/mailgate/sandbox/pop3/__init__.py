"""Exchange Online's POP3 server, emulated (Inbox only, AUTH XOAUTH2).

May import: ``sandbox.exchange``, ``sandbox._streams``, ``mailgate.protocols.sasl``.
"""

__all__: list[str] = []
