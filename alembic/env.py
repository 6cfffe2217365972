"""Alembic environment: SQLModel.metadata, batch mode on SQLite.

Run through checker.store.migrate (upgrade, check, new_revision), which passes the live
connection in `config.attributes["connection"]`. Offline (--sql) mode is not supported.
"""

from __future__ import annotations

from alembic import context

from checker.store.migrate import context_options

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through checker.store.migrate (e.g. `checker db upgrade`)")

context.configure(connection=connection, **context_options(connection.dialect.name))
with context.begin_transaction():
    context.run_migrations()
