"""mailgate: read, send and react to mail in Microsoft 365 / Exchange Online with OAuth2."""

__all__: list[str] = []

__version__ = "0.1.0"
