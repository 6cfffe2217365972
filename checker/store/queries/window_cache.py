"""Rollups pre-merged over the runs of days and hours that status windows read
(window_sketches).

Why: `checker status` over 30 days at 200 targets merged ~29 daily and ~23 hourly sketches
x 3 measures per target, ~30,000 merges of the same rollup rows on every call. The rollup
job merges, for the 24h, 7d and 30d windows of the current hour, each run of whole days
and each run of whole hours their plans read (checker.store.plan.plan_window), once per change;
status then reads one row per target and run. Only the partial hours at the ends of a
window still come from raw rows.

Validity: a cached run [since, until) of days or hours holds the version of the periods it
was built from, (number of rolled periods in it, newest rolled_at). Re-rolling a period
stamps a new rolled_at (and re-rolling an hour removes its day until the day is rolled
again), so a mismatch means "merge the rollup rows yourself", never a stale answer. A
target without a row in a valid run had no rollup rows in it.

The service's rollup job calls `refresh` after each rollup (checker.store.rollup knows
nothing of this cache: it only writes the rollups the cache is built from).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.store.db import one_of
from checker.store.plan import as_utc
from checker.store.queries.window import plan_for
from checker.store.rollup import SKETCH_COLUMNS
from checker.store.sketch import Sketch
from checker.store.tables import CACHE, DAILY, ROLLED, ROLLED_DAYS, ROLLUPS

__all__ = ["WINDOWS", "lookup", "refresh", "version", "wanted_runs"]

# The long windows of `checker status`, the status page and the digest.
WINDOWS = (timedelta(days=1), timedelta(days=7), timedelta(days=30))
MEASURES = SKETCH_COLUMNS
NO_TARGET = ""  # target names are never empty (config.py)
Version = tuple[int, datetime | None]

# kind -> (rollup table, its period column, the table listing rolled periods, its column)
_SOURCES: dict[str, tuple[sa.Table, Any, sa.Table, Any]] = {
    "day": (DAILY, DAILY.c.day, ROLLED_DAYS, ROLLED_DAYS.c.day),
    "hour": (ROLLUPS, ROLLUPS.c.hour, ROLLED, ROLLED.c.hour),
}


def version(conn: Connection, kind: str, since: datetime, until: datetime) -> Version:
    """(rolled periods of `kind` in [since, until), their newest rolled_at)."""
    _, _, rolled, period = _SOURCES[kind]
    count, newest = conn.execute(
        sa.select(sa.func.count(), sa.func.max(rolled.c.rolled_at)).where(
            period >= since, period < until
        )
    ).one()
    return int(count), as_utc(newest) if newest is not None else None


def _key(kind: str, since: datetime, until: datetime) -> sa.ColumnElement[bool]:
    c = CACHE.c
    return sa.and_(c.kind == kind, c.since == since, c.until == until)


def _stored_versions(conn: Connection, kind: str, since: datetime, until: datetime) -> set[Version]:
    c = CACHE.c
    rows = conn.execute(
        sa.select(c.periods, c.rolled_at).where(_key(kind, since, until)).distinct()
    )
    return {(int(n), as_utc(rolled_at)) for n, rolled_at in rows}


def _valid(conn: Connection, kind: str, since: datetime, until: datetime) -> bool:
    current = version(conn, kind, since, until)
    return current[0] > 0 and _stored_versions(conn, kind, since, until) == {current}


def lookup(
    conn: Connection, kind: str, targets: Sequence[str], since: datetime, until: datetime
) -> dict[tuple[str, str], list[Any]] | None:
    """{(target, probe): [errors, latency, ttft, tokens/s] stored JSON forms} for a valid
    cached run (probes with no data are absent), or None when the run is not cached or is
    stale."""
    if not _valid(conn, kind, since, until):
        return None
    c = CACHE.c
    rows = conn.execute(
        sa.select(c.target, c.probe, c.errors, *(c[m] for m in MEASURES)).where(
            _key(kind, since, until), one_of(conn, c.target, targets)
        )
    )
    return {(row[0], row[1]): list(row[2:]) for row in rows}


def _merge(conn: Connection, kind: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    table, period, _, _ = _SOURCES[kind]
    c = table.c
    rows = conn.execute(
        sa.select(c.target, c.probe, c.errors, *(c[m] for m in MEASURES)).where(
            period >= since, period < until
        )
    )
    errors: dict[tuple[str, str], dict[str, int]] = {}
    docs: dict[tuple[str, str], list[list[Any]]] = {}
    for target, probe, errs, *sketches in rows:
        mine = errors.setdefault((target, probe), {})
        for name, n in (errs or {}).items():
            mine[name] = mine.get(name, 0) + int(n)
        docs.setdefault((target, probe), []).append(sketches)
    out = []
    for (target, probe), per_period in docs.items():
        row: dict[str, Any] = {"target": target, "probe": probe, "errors": errors[target, probe]}
        for i, measure in enumerate(MEASURES):
            row[measure] = Sketch().merge_all(p[i] for p in per_period).to_json()
        out.append(row)
    return out


def wanted_runs(conn: Connection, now: datetime) -> set[tuple[str, datetime, datetime]]:
    """The runs the plans of the WINDOWS ending at `now` read from rollups."""
    runs: set[tuple[str, datetime, datetime]] = set()
    for span in WINDOWS:
        plan = plan_for(conn, now - span, now, with_days=True)
        runs |= {("day", *r) for r in plan.daily}
        runs |= {("hour", *r) for r in plan.rollup}
    return runs


def _rebuild(conn: Connection, kind: str, since: datetime, until: datetime) -> None:
    conn.execute(CACHE.delete().where(_key(kind, since, until)))
    periods, rolled_at = version(conn, kind, since, until)
    # A run rolled up without any results still gets a row (target NO_TARGET, never a
    # configured name) to carry its version: it is cached as "nothing here".
    rows = _merge(conn, kind, since, until) or [_empty_row()]
    stamp = {"kind": kind, "since": since, "until": until}
    stamp |= {"periods": periods, "rolled_at": rolled_at}
    conn.execute(CACHE.insert(), [r | stamp for r in rows])


def _empty_row() -> dict[str, Any]:
    return {"target": NO_TARGET, "probe": "", "errors": {}} | {m: {} for m in MEASURES}


def refresh(engine: Engine, now: datetime) -> int:
    """Rebuild the runs the current windows read whose periods changed, and drop the runs
    they no longer read. Returns the number of runs rebuilt."""
    now = as_utc(now)
    rebuilt = 0
    with engine.begin() as conn:
        wanted = wanted_runs(conn, now)
        for kind, since, until in sorted(wanted):
            if not _valid(conn, kind, since, until):
                _rebuild(conn, kind, since, until)
                rebuilt += 1
        c = CACHE.c
        stored = conn.execute(sa.select(c.kind, c.since, c.until).distinct()).all()
        for kind, since, until in stored:
            if (kind, as_utc(since), as_utc(until)) not in wanted:
                conn.execute(CACHE.delete().where(_key(kind, since, until)))
    return rebuilt
