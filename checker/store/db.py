"""Engines: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL through psycopg 3."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

__all__ = [
    "DEFAULT_BUSY_TIMEOUT_MS",
    "describe",
    "make_engine",
    "normalize_url",
    "one_of",
    "one_of_param",
    "ping",
]

DEFAULT_BUSY_TIMEOUT_MS = 5000


def normalize_url(url: str) -> URL:
    """Parse a storage URL; plain postgresql:// (and postgres://) mean psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ValueError(f"unsupported storage URL scheme {parsed.drivername!r}")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if database in {"", ":memory:"} or database.startswith("file:"):
        return None
    return Path(database)


def make_engine(url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """An engine for a storage URL; SQLite gets its directory created and its pragmas set."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        # Pre-ping: a connection the server dropped (restart, failover) is replaced quietly.
        return sa.create_engine(parsed, pool_pre_ping=True)

    path = _sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            # WAL: readers never block the writer. NORMAL in WAL mode: a commit survives a
            # process crash (kill -9); only power loss may undo the latest commits.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return engine


def describe(engine: Engine) -> str:
    """The URL with any password masked, for logs and messages."""
    return engine.url.render_as_string(hide_password=True)


def ping(engine: Engine) -> None:
    """Round-trip `SELECT 1`: returns when the database answers, raises
    sqlalchemy.exc.SQLAlchemyError when it does not (health checks)."""
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))


def one_of(conn: sa.Connection, column: Any, names: Sequence[str]) -> Any:
    """`column IN names`; on PostgreSQL `= ANY(array)`: one parameter instead of one per
    name, because psycopg parses a statement with hundreds of placeholders again on every
    execution (too long for its cache)."""
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(names), type_=postgresql.ARRAY(sa.String)))
    return column.in_(names)


class _OneOfParam(ColumnElement[bool]):
    """`column IN :name`, the list given at execution; `= ANY(:name)` on PostgreSQL."""

    inherit_cache = True
    type = sa.Boolean()
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("name", InternalTraversal.dp_string),
    ]

    def __init__(self, column: Any, name: str) -> None:
        self.column = column
        self.name = name


def one_of_param(column: Any, name: str) -> ColumnElement[bool]:
    """one_of() for a statement built once, before any connection says the dialect: the
    names are the execution parameter `name` (a list), rendered per dialect at compile
    time (an array parameter on PostgreSQL, an expanding IN elsewhere)."""
    return _OneOfParam(column, name)


@compiles(_OneOfParam)
def _one_of_in(element: _OneOfParam, compiler: SQLCompiler, **kw: Any) -> str:
    names: Any = sa.bindparam(element.name, expanding=True)
    return str(compiler.process(element.column.in_(names), **kw))


@compiles(_OneOfParam, "postgresql")
def _one_of_any(element: _OneOfParam, compiler: SQLCompiler, **kw: Any) -> str:
    names = sa.bindparam(element.name, type_=postgresql.ARRAY(sa.String))
    return str(compiler.process(element.column == sa.any_(names), **kw))
