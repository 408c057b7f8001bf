"""Messages: safe file names for saved mail and attachments, MIME building, header checks."""

__all__: list[str] = []
