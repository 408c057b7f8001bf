"""Alembic environment: migrations always run on a connection handed over by mailgate."""

from __future__ import annotations

from alembic import context

from mailgate.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `alembic` CLI use would get here
    raise RuntimeError("run migrations through mailgate.store.open_store()")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
