"""Messages: safe file names for saved mail and attachments, MIME building, header checks."""
