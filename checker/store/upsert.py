"""Insert-or-ignore on a unique key, for SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"unsupported database dialect {dialect}")


def insert_ignore_stmt(conn: sa.Connection, table: sa.Table, keys: Sequence[str]) -> Any:
    return _insert(conn, table).on_conflict_do_nothing(index_elements=list(keys))


def insert_ignore(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """Insert rows whose key is new; returns how many were inserted.

    Counted with RETURNING: psycopg reports rowcount -1 for these inserts.
    """
    stmt = insert_ignore_stmt(conn, table, keys).returning(table.c[keys[0]])
    return sum(len(conn.execute(stmt, row).all()) for row in rows)


def upsert(conn: sa.Connection, table: sa.Table, row: dict[str, Any], keys: Sequence[str]) -> None:
    """Insert the row, or update its non-key columns when the key exists."""
    stmt = _insert(conn, table)
    update = {k: stmt.excluded[k] for k in row if k not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update), row)
