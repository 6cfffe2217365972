"""The drift rule's baselines: what each route is accepted to serve, per identity field.

The evaluator adopts the first value it sees (insert-or-ignore, so nodes agree); an
operator replaces it with `checker baseline --accept`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.store.db import one_of
from checker.store.models import BaselineRow
from checker.store.upsert import insert_ignore, upsert

__all__ = ["FIRST_SEEN", "OPERATOR", "accept", "adopt", "baselines_of"]

T: sa.Table = BaselineRow.__table__  # type: ignore[attr-defined]
FIRST_SEEN = "first seen"
OPERATOR = "operator"


def baselines_of(conn: sa.Connection, targets: Sequence[str]) -> dict[str, dict[str, str]]:
    """target -> field -> accepted value."""
    if not targets:
        return {}
    out: dict[str, dict[str, str]] = {}
    query = sa.select(T.c.target, T.c.field, T.c.value).where(one_of(conn, T.c.target, targets))
    for target, field, value in conn.execute(query):
        out.setdefault(target, {})[field] = value
    return out


def adopt(conn: sa.Connection, target: str, values: Mapping[str, str], at: datetime) -> None:
    """Make these the baseline of the fields that have none yet."""
    rows = [
        {"target": target, "field": f, "value": v, "accepted_at": at, "accepted_by": FIRST_SEEN}
        for f, v in values.items()
    ]
    if rows:
        insert_ignore(conn, T, rows, ["target", "field"])


def accept(engine: Engine, target: str, values: Mapping[str, str], at: datetime) -> None:
    """The operator's word: these are what the route serves now."""
    with engine.begin() as conn:
        for field, value in values.items():
            row = {"target": target, "field": field, "value": value, "accepted_at": at,
                   "accepted_by": OPERATOR}  # fmt: skip
            upsert(conn, T, row, ["target", "field"])
