"""Daily rollups pre-merged over the whole days of today's long windows (window_sketches).

Why: `checker status` over 30 days at 200 targets merged 29 daily sketches x 3 measures
per target, ~17,000 merges of the same immutable days on every call. The rollup job
merges them once a day instead (and again when one of those days is re-rolled), and
status reads one row per target for that run of days.

Validity: a cached run [first_day, last_day) holds the version of the days it was built
from, (number of rolled days, newest rolled_at). A day re-rolled since has a new
rolled_at (re-rolling an hour deletes its day until the day is rolled again), so a
mismatch means "merge the daily rows yourself", never a stale answer. A target without a
row in a valid run had no daily rows in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.store.models import WindowSketchRow
from checker.store.rollup import DAILY, DAY, ROLLED_DAYS, as_utc, floor_day
from checker.store.sketch import Sketch

CACHE = WindowSketchRow.__table__  # type: ignore[attr-defined]
# The windows `checker status` and the status page use that span whole days.
WINDOW_DAYS = (7, 30)
MEASURES = ("latency_sketch", "ttft_sketch", "tokens_per_s_sketch")
Version = tuple[int, datetime | None]


def whole_days(now: datetime, days: int) -> tuple[datetime, datetime]:
    """The whole UTC days inside the `days`-day window ending at `now` (not at midnight):
    [today - (days - 1), today)."""
    today = floor_day(as_utc(now))
    return today - (days - 1) * DAY, today


def version(conn: Connection, first_day: datetime, last_day: datetime) -> Version:
    """(rolled days in [first_day, last_day), their newest rolled_at)."""
    c = ROLLED_DAYS.c
    count, newest = conn.execute(
        sa.select(sa.func.count(), sa.func.max(c.rolled_at)).where(
            c.day >= first_day, c.day < last_day
        )
    ).one()
    return int(count), as_utc(newest) if newest is not None else None


def _stored_versions(conn: Connection, first_day: datetime, last_day: datetime) -> set[Version]:
    c = CACHE.c
    rows = conn.execute(
        sa.select(c.days, c.rolled_at)
        .where(c.first_day == first_day, c.last_day == last_day)
        .distinct()
    )
    return {(int(days), as_utc(rolled_at)) for days, rolled_at in rows}


def lookup(
    conn: Connection, targets: Sequence[str], first_day: datetime, last_day: datetime
) -> dict[str, list[Any]] | None:
    """{target: [errors, latency, ttft, tokens/s] stored JSON forms} for a valid cached run
    (targets with no data are absent), or None when the run is not cached or is stale."""
    current = version(conn, first_day, last_day)
    if current[0] == 0 or _stored_versions(conn, first_day, last_day) != {current}:
        return None
    c = CACHE.c
    rows = conn.execute(
        sa.select(c.target, c.errors, *(c[m] for m in MEASURES)).where(
            c.first_day == first_day, c.last_day == last_day, c.target.in_(targets)
        )
    )
    return {row[0]: list(row[1:]) for row in rows}


def _merge_days(conn: Connection, first_day: datetime, last_day: datetime) -> list[dict[str, Any]]:
    c = DAILY.c
    rows = conn.execute(
        sa.select(c.target, c.errors, *(c[m] for m in MEASURES)).where(
            c.day >= first_day, c.day < last_day
        )
    )
    errors: dict[str, dict[str, int]] = {}
    docs: dict[str, list[list[Any]]] = {}
    for target, errs, *sketches in rows:
        mine = errors.setdefault(target, {})
        for kind, n in (errs or {}).items():
            mine[kind] = mine.get(kind, 0) + int(n)
        docs.setdefault(target, []).append(sketches)
    return [
        {
            "target": target,
            "errors": errors[target],
            **{
                m: Sketch().merge_all(d[i] for d in per_day).to_json()
                for i, m in enumerate(MEASURES)
            },
        }
        for target, per_day in docs.items()
    ]


def refresh(engine: Engine, now: datetime) -> int:
    """Rebuild the cached runs of today's windows whose days changed, and drop runs of
    earlier days. Returns the number of runs rebuilt."""
    rebuilt = 0
    with engine.begin() as conn:
        runs = [whole_days(now, n) for n in WINDOW_DAYS]
        for first_day, last_day in runs:
            current = version(conn, first_day, last_day)
            if current[0] == 0 or _stored_versions(conn, first_day, last_day) == {current}:
                continue
            c = CACHE.c
            conn.execute(CACHE.delete().where(c.first_day == first_day, c.last_day == last_day))
            rows = _merge_days(conn, first_day, last_day)
            if rows:
                days, rolled_at = current
                conn.execute(
                    CACHE.insert(),
                    [
                        {**r, "first_day": first_day, "last_day": last_day}
                        | {"days": days, "rolled_at": rolled_at}
                        for r in rows
                    ],
                )
            rebuilt += 1
        conn.execute(CACHE.delete().where(CACHE.c.last_day < min(last for _, last in runs)))
    return rebuilt
