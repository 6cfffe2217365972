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
from checker.store.fleet_rounds import RATE_LIMITED, Outcome, RoundCounts, RoundRule, count_rounds
from checker.store.models import TargetRow
from checker.store.plan import HOUR, as_utc
from checker.store.tables import RAW

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


def _summary(conn: Connection, where: list[Any]) -> sa.Select[Any]:
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
    fleet: set[Key] = set()
    for target, probe, locations, *sums in conn.execute(_summary(conn, where)).all():
        if int(locations) > 1:
            fleet.add((target, probe))
        else:
            out[(target, probe)] = RoundCounts.per_result(*(int(v or 0) for v in sums))
    if not fleet:
        return out
    outcomes: dict[Key, list[Outcome]] = {key: [] for key in fleet}
    fleet_targets = sorted({target for target, _ in fleet})
    rows = conn.execute(
        sa.select(
            RAW.target, RAW.probe, RAW.location, RAW.started_at, RAW.ok, RAW.maintenance, RAW.error
        ).where(*where[:2], one_of(conn, RAW.target, fleet_targets))
    )
    for target, probe, location, at, ok, maintenance, error in rows:
        mine = outcomes.get((target, probe))
        if mine is not None:
            mine.append(Outcome(location or "", as_utc(at), bool(ok), bool(maintenance), error))
    for key, mine in outcomes.items():
        out[key] = count_rounds(mine, rules.get(key[0], RoundRule()))
    return out
