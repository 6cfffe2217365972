"""Insert-or-ignore on a unique key, for SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite


def insert_ignore_stmt(conn: sa.Connection, table: sa.Table, keys: Sequence[str]) -> Any:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    raise ValueError(f"unsupported database dialect {dialect}")


def insert_ignore(
    conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> int:
    """Insert rows whose key is new; returns how many were inserted (row by row, so exact)."""
    stmt = insert_ignore_stmt(conn, table, keys)
    return sum(max(0, conn.execute(stmt, row).rowcount) for row in rows)
