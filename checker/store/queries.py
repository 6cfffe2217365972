"""Read side: per-target status, SLO window counts and hourly series.

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
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from checker.probes.base import ErrorKind
from checker.store import window_cache
from checker.store.db import one_of
from checker.store.models import row_to_result
from checker.store.plan import (
    DAY,
    Range,
    WindowPlan,
    as_utc,
    floor_day,
    floor_hour,
    hours_between,
    plan_window,
)
from checker.store.rollup import fold_values
from checker.store.sketch import Sketch
from checker.store.tables import DAILY, RAW, ROLLED, ROLLED_DAYS, ROLLUPS
from checker.units import parse_duration

WINDOWS: tuple[str, ...] = ("1h", "24h", "7d", "30d")
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
_RATE_LIMITED = ErrorKind.rate_limited.value


# --- results -------------------------------------------------------------------------------


@dataclass
class Counts:
    """Result counts of one target over one window."""

    total: int = 0
    maintenance: int = 0
    sli_ok: int = 0
    sli_rate_limited: int = 0

    def add(self, total: Any, maintenance: Any, sli_ok: Any, sli_rate_limited: Any) -> None:
        self.total += int(total or 0)
        self.maintenance += int(maintenance or 0)
        self.sli_ok += int(sli_ok or 0)
        self.sli_rate_limited += int(sli_rate_limited or 0)

    def valid(self, count_rate_limited: bool = True) -> int:
        valid = self.total - self.maintenance
        return valid if count_rate_limited else valid - self.sli_rate_limited

    def bad(self, count_rate_limited: bool = True) -> int:
        return self.valid(count_rate_limited) - self.sli_ok

    def uptime(self, count_rate_limited: bool = True) -> float | None:
        valid = self.valid(count_rate_limited)
        return self.sli_ok / valid if valid > 0 else None


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
class HourPoint:
    hour: datetime
    results: int
    valid: int
    good: int
    latency_p50: float | None
    latency_p95: float | None
    ttft_p50: float | None
    ttft_p95: float | None


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


# --- SQL building blocks -------------------------------------------------------------------


def per_range(
    conn: Connection, stmt: sa.Select[Any], column: Any, ranges: Sequence[Range]
) -> Iterator[sa.Row[Any]]:
    """Run `stmt` once per time range and chain the rows.

    One statement per range, never an OR of ranges: with OR, SQLite stops using the time
    part of the (target, time) index and reads every row of every target, which over
    months of raw results is exactly the scan this module exists to avoid.
    """
    for start, end in ranges:
        # .all(): one fetchall from the driver instead of a fetchone per row.
        yield from conn.execute(stmt.where(column >= start, column < end)).all()


def _read(conn: Connection) -> Connection:
    # One snapshot for the whole answer on PostgreSQL, so a rollup committed between two
    # statements cannot count an hour twice or not at all.
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _rolled(conn: Connection, since: datetime, until: datetime) -> dict[datetime, bool]:
    rows = conn.execute(
        sa.select(ROLLED.c.hour, ROLLED.c.raw_pruned).where(
            ROLLED.c.hour >= floor_hour(since), ROLLED.c.hour < until
        )
    )
    return {as_utc(hour): bool(pruned) for hour, pruned in rows}


def _rolled_days(conn: Connection, since: datetime, until: datetime) -> set[datetime]:
    rows = conn.execute(
        sa.select(ROLLED_DAYS.c.day).where(
            ROLLED_DAYS.c.day >= floor_day(since), ROLLED_DAYS.c.day < until
        )
    )
    return {as_utc(day) for (day,) in rows}


def plan_for(conn: Connection, since: datetime, until: datetime, with_days: bool) -> WindowPlan:
    """The plan of [since, until) from what is rolled up now; daily rollups only when
    `with_days` (a window of a day or more)."""
    days = _rolled_days(conn, since, until) if with_days else set()
    return plan_window(since, until, _rolled(conn, since, until), days)


def json_rows(rows: Sequence[Sequence[Any]], first: int) -> list[list[Any]]:
    """The rows with their columns from `first` on JSON-decoded (text or None), in one
    json.loads: thousands of small calls cost a third more."""
    if not rows:
        return []
    width = len(rows[0]) - first
    texts = [text or "null" for row in rows for text in row[first:]]
    docs = json.loads("[" + ",".join(texts) + "]")
    return [[*row[:first], *docs[i * width : (i + 1) * width]] for i, row in enumerate(rows)]


_RangeSums = dict[tuple[Any, Range], list[Any]]


def _counts(
    conn: Connection,
    targets: Sequence[str],
    plan: WindowPlan,
    memo: _RangeSums | None = None,
) -> dict[str, Counts]:
    """Counts per target over a plan. `memo` shares per-range sums between the windows of
    one status() call: they all end at the same raw tail, read once instead of four times.
    """
    memo = {} if memo is None else memo
    out: dict[str, Counts] = {t: Counts() for t in targets}
    for table, period, ranges in (
        (ROLLUPS, ROLLUPS.c.hour, plan.rollup),
        (DAILY, DAILY.c.day, plan.daily),
    ):
        c = table.c
        rollup_sums = (
            sa.select(
                c.target,
                sa.func.sum(c.total),
                sa.func.sum(c.maintenance_count),
                sa.func.sum(c.sli_ok_count),
                sa.func.sum(c.sli_rate_limited_count),
            )
            .where(one_of(conn, c.target, targets))
            .group_by(c.target)
        )
        for span in ranges:
            key = (table.name, span)
            if key not in memo:
                memo[key] = list(per_range(conn, rollup_sums, period, [span]))
            for target, *sums in memo[key]:
                out[target].add(*sums)
    outside = RAW.maintenance == sa.false()
    raw_sums = (
        sa.select(
            RAW.target,
            sa.func.count(),
            sa.func.sum(sa.case((outside, 0), else_=1)),
            sa.func.sum(sa.case((sa.and_(outside, RAW.ok == sa.true()), 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(outside, RAW.error == _RATE_LIMITED), 1), else_=0)),
        )
        .where(one_of(conn, RAW.target, targets))
        .group_by(RAW.target)
    )
    for span in plan.raw:
        key = ("raw", span)
        if key not in memo:
            memo[key] = list(per_range(conn, raw_sums, RAW.started_at, [span]))
        for target, *sums in memo[key]:
            out[target].add(*sums)
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
    rows: list[Any] = []
    for table, period, ranges in (
        (ROLLUPS, ROLLUPS.c.hour, uncached["hour"]),
        (DAILY, DAILY.c.day, uncached["day"]),
    ):
        c = table.c
        json_columns = (c.errors, c.latency_sketch, c.ttft_sketch, c.tokens_per_s_sketch)
        stmt = sa.select(c.target, *(sa.cast(col, sa.Text) for col in json_columns)).where(
            one_of(conn, c.target, targets)
        )
        rows.extend(per_range(conn, stmt, period, ranges))
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
        for target, kind, n in per_range(conn, error_counts, RAW.started_at, plan.raw):
            errors = out[target].errors
            errors[kind] = errors.get(kind, 0) + int(n)
        good = sa.select(RAW.target, RAW.latency_ms, RAW.ttft_ms, RAW.tokens_per_s).where(
            one_of(conn, RAW.target, targets),
            RAW.ok == sa.true(),
            RAW.maintenance == sa.false(),
        )
        fold_values(per_range(conn, good, RAW.started_at, plan.raw), out.__getitem__)
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
        pick = newest.where(RAW.target == names.c.name).lateral("newest")
        ids = sa.select(pick.c.id).select_from(names).join(pick, sa.true())
        param: Any = list(targets)
    else:
        names = sa.func.json_each(sa.bindparam("names")).table_valued("value").alias("names")
        pick = newest.where(RAW.target == names.c.value).scalar_subquery()
        ids = sa.select(pick).select_from(names)
        param = json.dumps(list(targets))
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
        conn = _read(raw_conn)
        since = now - max(spans.values())
        rolled = _rolled(conn, since, now)
        days = _rolled_days(conn, since, now) if max(spans.values()) >= DAY else set()
        plans = {w: plan_window(now - span, now, rolled, days) for w, span in spans.items()}
        memo: _RangeSums = {}
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
        conn = _read(raw_conn)
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


def hourly_series_many(
    engine: Engine,
    count_rate_limited: Mapping[str, bool],
    since: datetime,
    until: datetime,
    ttft: bool = True,
) -> dict[str, list[HourPoint]]:
    """Per target (the keys of `count_rate_limited`), one point per hour start in
    [floor_hour(since), until), for charts; empty hours included (zero counts, None
    percentiles). One pass over the rollups and raw rows for all targets; `ttft=False`
    leaves the TTFT percentiles out (None)."""
    since, until = as_utc(since), as_utc(until)
    targets = list(count_rate_limited)
    hours = list(hours_between(since, until))
    counts: defaultdict[tuple[str, datetime], Counts] = defaultdict(Counts)
    stored: dict[str, defaultdict[tuple[str, datetime], list[Any]]] = {
        "latency": defaultdict(list),
        "ttft": defaultdict(list),
    }
    raw_values: dict[str, defaultdict[tuple[str, datetime], list[float]]] = {
        "latency": defaultdict(list),
        "ttft": defaultdict(list),
    }
    if targets:
        with engine.connect() as raw_conn:
            conn = _read(raw_conn)
            plan = plan_for(conn, since, until, with_days=False)
            c = ROLLUPS.c
            sketches = [sa.cast(c.latency_sketch, sa.Text)]
            if ttft:
                sketches.append(sa.cast(c.ttft_sketch, sa.Text))
            per_hour = sa.select(
                c.hour,
                c.target,
                c.total,
                c.maintenance_count,
                c.sli_ok_count,
                c.sli_rate_limited_count,
                *sketches,
            ).where(one_of(conn, c.target, targets))
            rows = json_rows(list(per_range(conn, per_hour, c.hour, plan.rollup)), 6)
            for hour, target, total, maint, ok, rl, *docs in rows:
                key = (target, as_utc(hour))
                counts[key].add(total, maint, ok, rl)
                for name, doc in zip(("latency", "ttft"), docs, strict=False):
                    if doc:
                        stored[name][key].append(doc)
            raw = sa.select(
                RAW.started_at,
                RAW.target,
                RAW.ok,
                RAW.maintenance,
                RAW.error,
                RAW.latency_ms,
                RAW.ttft_ms,
            ).where(one_of(conn, RAW.target, targets))
            for at, target, ok, maint, error, lat, tt in per_range(
                conn, raw, RAW.started_at, plan.raw
            ):
                key = (target, floor_hour(at))
                outside = not maint
                counts[key].add(1, not outside, outside and ok, outside and error == _RATE_LIMITED)
                if ok and outside:
                    if lat is not None:
                        raw_values["latency"][key].append(lat)
                    if tt is not None and ttft:
                        raw_values["ttft"][key].append(tt)
    sketch: dict[str, dict[tuple[str, datetime], Sketch]] = {}
    for name in ("latency", "ttft"):
        merged = {key: Sketch().merge_all(docs) for key, docs in stored[name].items()}
        for key, values in raw_values[name].items():
            merged.setdefault(key, Sketch()).extend(values)
        sketch[name] = merged
    empty, none = Counts(), Sketch()
    out: dict[str, list[HourPoint]] = {}
    for t in targets:
        points = []
        for h in hours:
            n = counts.get((t, h), empty)
            lat = sketch["latency"].get((t, h), none)
            tt = sketch["ttft"].get((t, h), none)
            points.append(
                HourPoint(
                    hour=h,
                    results=n.total,
                    valid=n.valid(count_rate_limited[t]),
                    good=n.sli_ok,
                    latency_p50=lat.quantile(0.5),
                    latency_p95=lat.quantile(0.95),
                    ttft_p50=tt.quantile(0.5),
                    ttft_p95=tt.quantile(0.95),
                )
            )
        out[t] = points
    return out


def hourly_series(
    engine: Engine,
    target: str,
    since: datetime,
    until: datetime,
    count_rate_limited: bool = True,
) -> list[HourPoint]:
    """hourly_series_many for one target."""
    return hourly_series_many(engine, {target: count_rate_limited}, since, until)[target]
