"""Alembic migrations of the state store (run by :func:`mailgate.store.open_store`)."""
