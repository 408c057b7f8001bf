"""Exchange Online's SMTP submission server, emulated with aiosmtpd (port 587, STARTTLS, AUTH
XOAUTH2, Exchange's limits).

May import: ``sandbox.exchange``, ``mailgate.protocols.sasl``, ``mailgate.mail``.
"""

__all__: list[str] = []
