"""Alembic, driven from code: upgrade, check (models vs database), new revisions.

The migration scripts live in the repository's top-level `alembic/` directory; an
installed wheel ships the same files as package data of `checker._migrations`. No
alembic.ini is needed: the configuration is built here and the live connection is handed
to env.py through `Config.attributes`, so the database URL (and its password) never passes
through an ini file or a log line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from checker.store import models
from checker.store.db import make_engine
from checker.store.schema_version import script_location

# Any constant works; it only has to be the same for every node sharing one PostgreSQL.
_PG_MIGRATION_LOCK = 0x636865636B6572  # "checker"


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    # Migration scripts must not import checker: render our column types as plain SQLAlchemy.
    if type_ == "type" and isinstance(obj, models.UtcDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, AutoString):
        return "sa.String()"
    return False


def context_options(dialect_name: str) -> dict[str, Any]:
    """Options shared by env.py and check(), so both compare the same way."""
    return {
        "target_metadata": SQLModel.metadata,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
        "render_item": _render_item,
    }


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@contextmanager
def _migration_connection(url: str) -> Iterator[Connection]:
    """A connection holding the migration lock on PostgreSQL (several nodes may start at once)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            is_pg = conn.dialect.name == "postgresql"
            if is_pg:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
            try:
                yield conn
                conn.commit()
            finally:
                # A broken connection has released its session lock already.
                if is_pg and not conn.invalidated:
                    with suppress(sa.exc.DBAPIError):
                        conn.rollback()
                        conn.execute(
                            sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK}
                        )
                        conn.commit()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database to `revision` (default: the newest)."""
    with _migration_connection(url) as conn:
        command.upgrade(alembic_config(conn), revision)


def downgrade(url: str, revision: str) -> None:
    with _migration_connection(url) as conn:
        command.downgrade(alembic_config(conn), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def check(url: str) -> list[Any]:
    """Differences between the models and the database; [] when they agree.

    Entries are Alembic's autogenerate diff tuples (e.g. ("add_column", ...)), preceded by
    ("revision", current, head) when the database is not at the newest migration.
    """
    head = head_revision()
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts=context_options(conn.dialect.name))
            diffs: list[Any] = []
            current = ctx.get_current_revision()
            if current != head:
                diffs.append(("revision", current, head))
            diffs.extend(compare_metadata(ctx, SQLModel.metadata))
            return diffs
    finally:
        engine.dispose()


def new_revision(url: str, message: str) -> None:
    """Developers: autogenerate a new migration against a database that is at head."""
    with _migration_connection(url) as conn:
        command.revision(alembic_config(conn), message=message, autogenerate=True)
