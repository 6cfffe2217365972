"""Per-target status and SLO window counts (hourly series: queries.series).

Every window [since, until) is answered from daily rollups for the whole UTC days that
have them, hourly rollups for the other whole hours that have them, and raw rows for
everything else: the partial hours at both ends (so a window ending now is exact) and any
hour not rolled up yet. A partial hour whose raw rows were pruned is answered from its
whole-hour rollup instead (the window then reaches up to an hour further back). Counts are
exact; percentiles carry the sketch's relative error (sketch.ALPHA). Nothing scans raw rows
beyond those partial and not-yet-rolled hours.

Definitions, shared with the rollups:
- valid = results outside maintenance windows, minus rate-limited ones when rate limits do
  not count as bad; good = successful valid results; uptime = good / valid.
- latency, TTFT and tokens/s percentiles come from successful results outside maintenance.
- `results` and `errors` count every result in the window, maintenance or not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from checker.store.db import one_of
from checker.store.models import row_to_result
from checker.store.plan import DAY, Range, WindowPlan, as_utc, plan_window
from checker.store.queries import window_cache
from checker.store.queries.window import (
    RAW_ROWS,
    Counts,
    Memo,
    Source,
    count_sums,
    json_rows,
    per_range,
    plan_for,
    read_window,
    rolled_days,
    rolled_hours,
    snapshot,
)
from checker.store.rollup import fold_values
from checker.store.sketch import Sketch
from checker.store.tables import RAW
from checker.units import parse_duration

__all__ = [
    "QUANTILES",
    "WINDOWS",
    "TargetStatus",
    "spend_since",
    "status",
    "window_counts",
    "window_counts_many",
]

WINDOWS: tuple[str, ...] = ("1h", "24h", "7d", "30d")
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


@dataclass
class TargetStatus:
    target: str
    results: int
    errors: dict[str, int]
    uptime: dict[str, float | None]
    latency_ms: dict[str, float | None]
    ttft_ms: dict[str, float | None]
    tokens_per_s_p50: float | None
    last: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        """The `checker status --json` object for this target."""
        return {
            "target": self.target,
            "results": self.results,
            "errors": dict(self.errors),
            "uptime": {k: _round(v, 6) for k, v in self.uptime.items()},
            "latency_ms": {k: _round(v, 3) for k, v in self.latency_ms.items()},
            "ttft_ms": {k: _round(v, 3) for k, v in self.ttft_ms.items()},
            "tokens_per_s_p50": _round(self.tokens_per_s_p50, 3),
            "last": self.last,
        }


@dataclass
class _Distributions:
    errors: dict[str, int] = field(default_factory=dict)
    latency: Sketch = field(default_factory=Sketch)
    ttft: Sketch = field(default_factory=Sketch)
    tokens_per_s: Sketch = field(default_factory=Sketch)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _quantiles(sketch: Sketch) -> dict[str, float | None]:
    return {name: sketch.quantile(q) for name, q in QUANTILES}


def _counts(
    conn: Connection,
    targets: Sequence[str],
    plan: WindowPlan,
    memo: Memo | None = None,
) -> dict[str, Counts]:
    """Counts per target over a plan. `memo` shares per-range sums between the windows of
    one status() call: they all end at the same raw tail, read once instead of four times.
    """
    out: dict[str, Counts] = {t: Counts() for t in targets}

    def sums(source: Source) -> sa.Select[Any]:
        c = source.c
        return (
            sa.select(c.target, *count_sums(source))
            .where(one_of(conn, c.target, targets))
            .group_by(c.target)
        )

    for _, (target, *numbers) in read_window(conn, plan, sums, {} if memo is None else memo):
        out[target].add(*numbers)
    return out


def _distributions(
    conn: Connection, targets: Sequence[str], plan: WindowPlan
) -> dict[str, _Distributions]:
    out = {t: _Distributions() for t in targets}
    decoded: list[list[Any]] = []  # [target, errors, latency, ttft, tokens/s]
    uncached: dict[str, list[Range]] = {"hour": [], "day": []}
    for kind, ranges in (("hour", plan.rollup), ("day", plan.daily)):
        for since, until in ranges:
            cached = window_cache.lookup(conn, kind, targets, since, until)
            if cached is None:
                uncached[kind].append((since, until))
            else:
                decoded.extend([t, *docs] for t, docs in cached.items())

    def stored(source: Source) -> sa.Select[Any] | None:
        c = source.c
        json_columns = (c.errors, c.latency_sketch, c.ttft_sketch, c.tokens_per_s_sketch)
        return sa.select(c.target, *(sa.cast(col, sa.Text) for col in json_columns)).where(
            one_of(conn, c.target, targets)
        )

    from_rollups = WindowPlan(tuple(uncached["hour"]), (), tuple(uncached["day"]))
    rows = [row for _, row in read_window(conn, from_rollups, stored)]
    rows_of: dict[str, list[list[Any]]] = {}
    for row in decoded + json_rows(rows, 1):
        rows_of.setdefault(row[0], []).append(row)
    for target, mine in rows_of.items():
        d = out[target]
        for row in mine:
            for kind, n in (row[1] or {}).items():
                d.errors[kind] = d.errors.get(kind, 0) + n
        d.latency.merge_all([row[2] for row in mine])
        d.ttft.merge_all([row[3] for row in mine])
        d.tokens_per_s.merge_all([row[4] for row in mine])
    if plan.raw:
        error_counts = (
            sa.select(RAW.target, RAW.error, sa.func.count())
            .where(one_of(conn, RAW.target, targets), RAW.error.is_not(None))
            .group_by(RAW.target, RAW.error)
        )
        for target, kind, n in per_range(conn, error_counts, RAW_ROWS.period, plan.raw):
            errors = out[target].errors
            errors[kind] = errors.get(kind, 0) + int(n)
        good = sa.select(RAW.target, RAW.latency_ms, RAW.ttft_ms, RAW.tokens_per_s).where(
            one_of(conn, RAW.target, targets),
            RAW.ok == sa.true(),
            RAW.maintenance == sa.false(),
        )
        fold_values(per_range(conn, good, RAW_ROWS.period, plan.raw), out.__getitem__)
    return out


def _last(conn: Connection, targets: Sequence[str], now: datetime) -> dict[str, dict[str, Any]]:
    """The newest result of each target at `now` (results after `now` are ignored).

    One statement, one index seek per target on (target, started_at): PostgreSQL joins a
    LATERAL `LIMIT 1` to the unnested names, SQLite looks up each name of a json_each()
    list with a correlated subquery. Ranking the last hour of every target with a window
    function read ~12,000 rows at 200 targets; a query per target paid 200 round trips.
    """
    newest = (
        sa.select(RAW.id)
        .where(RAW.started_at <= now)
        .order_by(RAW.started_at.desc(), RAW.id.desc())
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        names = (
            sa.func.unnest(sa.bindparam("names", type_=postgresql.ARRAY(sa.String)))
            .table_valued("name")
            .render_derived(name="names")
        )
        pick: Any = newest.where(RAW.target == names.c.name).lateral("newest")
        ids = sa.select(pick.c.id).select_from(names).join(pick, sa.true())
        param: Any = list(targets)
    else:
        names = sa.func.json_each(sa.bindparam("names")).table_valued("value").alias("names")
        pick = newest.where(RAW.target == names.c.value).scalar_subquery()
        ids = sa.select(pick).select_from(names)
        param = json.dumps(list(targets))
    # A subquery IN (the ids it picks), not a list of names: one_of() does not apply.
    rows = conn.execute(sa.select(*RAW).where(RAW.id.in_(ids)), {"names": param})
    return {row.target: row_to_result(row).to_json() for row in rows}


# --- public queries ------------------------------------------------------------------------


def status(
    engine: Engine,
    targets: Sequence[str],
    now: datetime,
    windows: Sequence[str] = WINDOWS,
    main_window: str = "24h",
    count_rate_limited: bool | Mapping[str, bool] = True,
    with_last: bool = True,
) -> list[TargetStatus]:
    """Per target, in the given order: uptime over each window, and counts, errors and
    percentiles over the main window. `count_rate_limited` may differ per target name.
    `with_last=False` skips looking up each target's newest result (`last` is None)."""
    targets = list(dict.fromkeys(targets))
    if not targets:
        return []
    now = as_utc(now)
    spans = {w: timedelta(seconds=parse_duration(w)) for w in (*windows, main_window)}

    def counts_rl(target: str) -> bool:
        if isinstance(count_rate_limited, Mapping):
            return count_rate_limited.get(target, True)
        return count_rate_limited

    with engine.connect() as raw_conn:
        conn = snapshot(raw_conn)
        since = now - max(spans.values())
        rolled = rolled_hours(conn, since, now)
        days = rolled_days(conn, since, now) if max(spans.values()) >= DAY else set()
        plans = {w: plan_window(now - span, now, rolled, days) for w, span in spans.items()}
        memo: Memo = {}
        counts = {w: _counts(conn, targets, plans[w], memo) for w in plans}
        dists = _distributions(conn, targets, plans[main_window])
        last = _last(conn, targets, now) if with_last else {}

    out: list[TargetStatus] = []
    for t in targets:
        d = dists[t]
        out.append(
            TargetStatus(
                target=t,
                results=counts[main_window][t].total,
                errors=dict(sorted(d.errors.items())),
                uptime={w: counts[w][t].uptime(counts_rl(t)) for w in windows},
                latency_ms=_quantiles(d.latency),
                ttft_ms=_quantiles(d.ttft),
                tokens_per_s_p50=d.tokens_per_s.quantile(0.5),
                last=last.get(t),
            )
        )
    return out


def window_counts_many(
    engine: Engine,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
    count_rate_limited: bool = True,
) -> dict[str, tuple[int, int]]:
    """(valid, bad) per target over [since, until): one pass for many targets."""
    targets = list(dict.fromkeys(targets))
    if not targets:
        return {}
    since, until = as_utc(since), as_utc(until)
    with engine.connect() as raw_conn:
        conn = snapshot(raw_conn)
        counts = _counts(conn, targets, plan_for(conn, since, until, until - since >= DAY))
    return {t: (c.valid(count_rate_limited), c.bad(count_rate_limited)) for t, c in counts.items()}


def window_counts(
    engine: Engine, target: str, since: datetime, until: datetime, count_rate_limited: bool = True
) -> tuple[int, int]:
    """(valid, bad) probes of one target over [since, until), for SLO and burn-rate math."""
    return window_counts_many(engine, [target], since, until, count_rate_limited)[target]


def spend_since(engine: Engine, since: datetime) -> dict[str, float]:
    """USD spent on probes per target since `since` (raw rows: meant for today's spend cap)."""
    rows_since = as_utc(since)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(RAW.target, sa.func.sum(RAW.cost_usd))
            .where(RAW.started_at >= rows_since, RAW.cost_usd.is_not(None))
            .group_by(RAW.target)
        )
        return {target: float(total or 0.0) for target, total in rows}
