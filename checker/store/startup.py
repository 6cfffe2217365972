"""Why storage could not be opened at start, in one line an operator can act on.

The service's first act is migrating its database; what can go wrong there (a server that
does not answer, a read-only file, a schema from a newer checker) must not become a
540-line traceback.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from checker.store.db import make_engine
from checker.store.schema_version import current_revision_of, head_from_files

__all__ = ["StorageUnavailable", "at_head", "storage_problem", "upgrade_or_explain"]


class StorageUnavailable(Exception):
    """The storage could not be opened; str() is the one line to print."""


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return "(an invalid storage URL)"


def storage_problem(exc: BaseException, url: str) -> str:
    """One line: which storage, what failed, what to do."""
    where = _masked(url)
    sqlite = where.startswith("sqlite")
    inner = getattr(exc, "orig", None) or exc
    first = (str(inner).strip().splitlines() or [""])[0][:200]
    if type(exc).__name__ == "CommandError" and "Can't locate revision" in str(exc):
        return (
            f"storage {where}: its schema is newer than this checker ({first}); "
            "upgrade checker, or point storage.url at another database"
        )
    if sqlite and ("readonly" in first or "read-only" in first):
        return (
            f"storage {where} is read-only ({first}); make the file and its directory "
            "writable by the service user, or set storage.url"
        )
    if sqlite:
        return (
            f"storage {where} cannot be opened ({type(inner).__name__}: {first}); check that "
            "its directory exists and is writable, or set storage.url"
        )
    return (
        f"storage {where} does not answer ({type(inner).__name__}: {first}); start the "
        "database server or fix storage.url"
    )


def at_head(url: str) -> bool:
    """True when the database is already at the newest revision (the usual restart)."""
    head = head_from_files()
    if head is None:
        return False
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision_of(conn) == head
    finally:
        engine.dispose()


def upgrade_or_explain(url: str) -> None:
    """migrate.upgrade, or StorageUnavailable with the one line saying why not. Alembic is
    imported only when there is something to migrate."""
    try:
        if at_head(url):
            return
        from alembic.util import CommandError

        from checker.store import migrate

        try:
            migrate.upgrade(url)
        except CommandError as exc:
            raise StorageUnavailable(storage_problem(exc, url)) from None
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        raise StorageUnavailable(storage_problem(exc, url)) from None
