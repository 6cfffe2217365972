"""Fleet round counts read from the database (the rule: checker.store.fleet_rounds).

Both the hourly rollup and a window's raw tail count a range of raw results here, so a
window's counts are the same whichever of the two they come from. Only a (target, probe)
with results from several locations in the range has its rows read into Python; the others
are summed in SQL, exactly as before fleet rounds existed.

Each target's interval and quorum come from its `targets` row (written from the config by
sync_targets), so the rollup job and every reader apply the same rule without the config.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from checker.store.db import one_of
from checker.store.fleet_rounds import (
    DEFAULT_INTERVAL_S,
    RATE_LIMITED,
    RoundCounts,
    RoundRule,
    RoundShape,
    round_events,
)
from checker.store.models import TargetRow
from checker.store.plan import HOUR
from checker.store.tables import RAW, RAW_TABLE

__all__ = [
    "FLEET_COLUMNS",
    "fleet_columns",
    "hour_rounds",
    "range_rounds",
    "rolled_sums",
    "round_rules",
    "stored_rounds",
]

TARGETS: sa.Table = TargetRow.__table__  # type: ignore[attr-defined]
# The rollup columns holding a (target, probe)'s round counts, in RoundCounts order.
FLEET_COLUMNS = ("fleet_valid", "fleet_bad", "fleet_valid_no_rl", "fleet_bad_no_rl")
Key = tuple[str, str]


def round_rules(conn: Connection, targets: Sequence[str] | None = None) -> dict[str, RoundRule]:
    """Each known target's RoundRule (targets without a row get RoundRule())."""
    c = TARGETS.c
    stmt = sa.select(c.name, c.interval_s, c.quorum_locations, c.quorum_share)
    if targets is not None:
        stmt = stmt.where(one_of(conn, c.name, targets))
    out = {}
    for name, interval_s, locations, share in conn.execute(stmt):
        quorum = locations if locations is not None else share
        out[name] = RoundRule(interval_s or RoundRule.interval_s, quorum)
    return out


def fleet_columns(rounds: RoundCounts) -> dict[str, int]:
    """The rollup row values of `rounds`."""
    values = (rounds.valid, rounds.bad, rounds.valid_no_rl, rounds.bad_no_rl)
    return dict(zip(FLEET_COLUMNS, values, strict=True))


def stored_rounds(row: Any) -> RoundCounts:
    """A rollup row's round counts (rolled up before 0011: each of its results counted)."""
    if row.fleet_valid is None:
        counts = (row.total, row.maintenance_count, row.sli_ok_count, row.sli_rate_limited_count)
        return RoundCounts.per_result(*counts)
    return RoundCounts(*(int(getattr(row, name)) for name in FLEET_COLUMNS))


def rolled_sums(c: Any) -> tuple[Any, ...]:
    """SQL sums of the round counts of rollup rows `c`, in RoundCounts order. A row rolled
    up before migration 0011 (NULL) counts each of its results, as it did then."""
    valid = c.total - c.maintenance_count
    no_rl = valid - c.sli_rate_limited_count
    before = (valid, valid - c.sli_ok_count, no_rl, no_rl - c.sli_ok_count)
    return tuple(
        sa.func.sum(sa.func.coalesce(c[name], fallback))
        for name, fallback in zip(FLEET_COLUMNS, before, strict=True)
    )


def _summary(where: list[Any]) -> sa.Select[Any]:
    location = sa.func.coalesce(RAW.location, "")
    outside = RAW.maintenance == sa.false()
    return (
        sa.select(
            RAW.target,
            RAW.probe,
            sa.func.count(sa.distinct(location)),
            sa.func.count(),
            sa.func.sum(sa.case((outside, 0), else_=1)),
            sa.func.sum(sa.case((sa.and_(outside, RAW.ok == sa.true()), 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(outside, RAW.error == RATE_LIMITED), 1), else_=0)),
        )
        .where(*where)
        .group_by(RAW.target, RAW.probe)
    )


def hour_rounds(
    conn: Connection, hour: datetime, rows: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], RoundCounts]:
    """The round counts of each (target, probe, location) rollup row of `hour`: each
    (target, probe)'s on its first location's row, 0 on the others (sums stay right)."""
    rounds = range_rounds(conn, hour, hour + HOUR, None, round_rules(conn))
    return {key: rounds.pop(key[:2], RoundCounts()) for key in sorted(rows)}


def _slot(conn: Connection, interval: Any) -> tuple[Any, Any]:
    """(UTC hour, slot in it) of each raw result, as fleet_rounds.slot_of computes them."""
    at = RAW.started_at
    if conn.dialect.name == "postgresql":
        utc = sa.func.timezone("UTC", at)
        seconds = sa.extract("minute", utc) * 60 + sa.func.floor(sa.extract("second", utc))
        return sa.func.date_trunc("hour", utc), sa.func.floor(sa.cast(seconds, sa.Float) / interval)
    # SQLite holds UTC text, "YYYY-MM-DD HH:MM:SS.ffffff" (UtcDateTime): read in place,
    # faster than strftime parsing it.
    minute, second = (sa.cast(sa.func.substr(at, start, 2), sa.Integer) for start in (15, 18))
    return sa.func.substr(at, 1, 13), sa.cast((minute * 60 + second) / interval, sa.Integer)


def _flag(condition: Any) -> Any:
    return sa.case((condition, 1), else_=0)


def _shapes(conn: Connection, where: list[Any]) -> sa.Select[Any]:
    """Per (target, probe), its rounds grouped by shape under both rate-limit settings:
    (target, probe, reporting, failing, reporting_no_rl, failing_no_rl, rounds, results,
    bad results, results_no_rl, bad_results_no_rl)."""
    hour, slot = _slot(conn, sa.func.coalesce(TARGETS.c.interval_s, DEFAULT_INTERVAL_S))
    outside = RAW.maintenance == sa.false()
    bad = sa.and_(outside, RAW.ok == sa.false())
    counted = sa.or_(RAW.error.is_(None), RAW.error != RATE_LIMITED)  # when 429s are not
    results = (
        sa.select(
            RAW.target.label("target"),
            RAW.probe.label("probe"),
            sa.func.coalesce(RAW.location, "").label("location"),
            hour.label("hour"),
            slot.label("slot"),
            _flag(outside).label("v"),
            _flag(bad).label("b"),
            _flag(sa.and_(outside, counted)).label("v0"),
            _flag(sa.and_(bad, counted)).label("b0"),
        )
        .select_from(RAW_TABLE.outerjoin(TARGETS, TARGETS.c.name == RAW.target))
        .where(*where)
        .subquery()
    )
    r = results.c
    sums = tuple(sa.func.sum(r[name]).label(name) for name in ("v", "b", "v0", "b0"))
    per_location = sa.select(r.target, r.probe, r.hour, r.slot, *sums).group_by(
        r.target, r.probe, r.hour, r.slot, r.location
    )
    p = per_location.subquery().c

    def locations(column: Any) -> Any:
        return sa.func.sum(_flag(column > 0))

    per_round = sa.select(
        p.target,
        p.probe,
        *(locations(p[name]).label(f"l_{name}") for name in ("v", "b", "v0", "b0")),
        *(sa.func.sum(p[name]).label(name) for name in ("v", "b", "v0", "b0")),
    ).group_by(p.target, p.probe, p.hour, p.slot)
    q = per_round.subquery().c
    shape = (q.l_v, q.l_b, q.l_v0, q.l_b0)
    return sa.select(
        q.target,
        q.probe,
        *shape,
        sa.func.count(),
        *(sa.func.sum(q[n]) for n in ("v", "b", "v0", "b0")),
    ).group_by(q.target, q.probe, *shape)


def range_rounds(
    conn: Connection,
    since: datetime,
    until: datetime,
    targets: Sequence[str] | None,
    rules: dict[str, RoundRule],
) -> dict[Key, RoundCounts]:
    """Round counts per (target, probe) of the raw results in [since, until), of `targets`
    (None: all)."""
    where = [RAW.started_at >= since, RAW.started_at < until]
    if targets is not None:
        where.append(one_of(conn, RAW.target, targets))
    out: dict[Key, RoundCounts] = {}
    fleet: set[str] = set()
    for target, probe, locations, *sums in conn.execute(_summary(where)).all():
        if int(locations) > 1:
            fleet.add(target)
        else:
            out[(target, probe)] = RoundCounts.per_result(*(int(v or 0) for v in sums))
    if not fleet:
        return out
    # Targets with a probe seen from several locations: every probe of theirs by rounds.
    stmt = _shapes(conn, [*where[:2], one_of(conn, RAW.target, sorted(fleet))])
    fleet_out: dict[Key, RoundCounts] = {}  # replaces these targets' per-result sums
    for target, probe, *numbers in conn.execute(stmt).all():
        l_v, l_b, l_v0, l_b0, rounds, v, b, v0, b0 = (int(n or 0) for n in numbers)
        rule = rules.get(target, RoundRule())
        valid, bad = round_events(RoundShape(l_v, l_b, rounds, v, b), rule)
        valid_no_rl, bad_no_rl = round_events(RoundShape(l_v0, l_b0, rounds, v0, b0), rule)
        fleet_out.setdefault((target, probe), RoundCounts()).add(
            RoundCounts(valid, bad, valid_no_rl, bad_no_rl)
        )
    return out | fleet_out
