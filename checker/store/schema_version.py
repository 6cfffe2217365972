"""Is the database's schema the newest this checker knows? Answered without Alembic.

Alembic and its autogenerate machinery cost the service about 11 MB of memory and 60 ms at
start; they are needed only when there is something to migrate. The migration scripts name
their revision and its parent on fixed lines (`revision: str = "0011"`), so the head is
read from the files, and the database's revision from Alembic's own version table.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["current_revision_of", "head_from_files", "script_location"]

_REVISION = re.compile(r'^revision(?:: str)? = "([^"]+)"$', re.MULTILINE)
_PARENT = re.compile(r'^down_revision(?:: [^=]+)? = (?:"([^"]+)"|None)$', re.MULTILINE)


def script_location() -> Path:
    """The migrations directory: the repository checkout first, else the installed copy."""
    repo = Path(__file__).resolve().parents[2] / "alembic"
    if (repo / "env.py").is_file():
        return repo
    spec = importlib.util.find_spec("checker._migrations")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "env.py").is_file():
                return Path(location)
    raise FileNotFoundError("alembic migrations not found (neither ./alembic nor installed)")


def head_from_files(versions: Path | None = None) -> str | None:
    """The one revision no other names as its parent; None when it is not exactly one
    (then the caller asks Alembic, which explains a branched history properly)."""
    revisions, parents = set(), set()
    for path in (versions or script_location() / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if (rev := _REVISION.search(text)) is None or (parent := _PARENT.search(text)) is None:
            return None
        revisions.add(rev.group(1))
        if parent.group(1):
            parents.add(parent.group(1))
    heads = revisions - parents
    return next(iter(heads)) if len(heads) == 1 else None


def current_revision_of(conn: Connection) -> str | None:
    """The revision Alembic recorded, or None for a database it never migrated."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None
