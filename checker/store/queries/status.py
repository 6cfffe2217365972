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

from checker.config.schema import ProbeLayout
from checker.probes import registry
from checker.store.db import one_of
from checker.store.fleet import Hold, holds_at
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
    read_window,
    rolled_days,
    rolled_hours,
    snapshot,
)
from checker.store.rollup import SKETCH_COLUMNS, SKETCHED, fold_values
from checker.store.sketch import Sketch
from checker.store.tables import RAW
from checker.units import parse_duration

__all__ = [
    "QUANTILES",
    "WINDOWS",
    "ProbeStatus",
    "TargetStatus",
    "counts_by_probe",
    "status",
]

WINDOWS: tuple[str, ...] = ("1h", "24h", "7d", "30d")
QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


Key = tuple[str, str]  # (target, probe): no figure ever mixes two probes


@dataclass
class ProbeStatus:
    """One probe of one target: counts over the main window, uptime per window, and
    percentiles of its successful results."""

    probe: str
    results: int
    errors: dict[str, int]
    uptime: dict[str, float | None]
    latency_ms: dict[str, float | None]
    ttft_ms: dict[str, float | None]
    tokens_per_s_p50: float | None
    # First answer token, and each stream's median inter-chunk gap (streams only).
    ttfo_ms: dict[str, float | None] = field(default_factory=dict)
    itl_ms: dict[str, float | None] = field(default_factory=dict)
    # Over the main window: results that count for availability, and the good ones among
    # them (uptime = good / valid; a confidence interval needs both, not the ratio).
    valid: int = 0
    good: int = 0
    # The main window's sketches by SKETCHED name, for callers that need more than these
    # percentiles (the digest's profile shift wants quartiles and counts). Not in to_json.
    sketches: dict[str, Sketch] = field(default_factory=dict, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        # Ratios at full precision; timings to the microsecond.
        return {
            "results": self.results,
            "uptime": dict(self.uptime),
            "latency_ms": {k: _round(v, 3) for k, v in self.latency_ms.items()},
            "ttft_ms": {k: _round(v, 3) for k, v in self.ttft_ms.items()},
            "tokens_per_s_p50": self.tokens_per_s_p50,
            "ttfo_ms": {k: _round(v, 3) for k, v in self.ttfo_ms.items()},
            "itl_ms": {k: _round(v, 3) for k, v in self.itl_ms.items()},
            "errors": dict(self.errors),
        }


@dataclass
class TargetStatus:
    """A target's headline figures (those of its primary probe, named) and every probe's."""

    target: str
    primary_probe: str | None
    probes: dict[str, ProbeStatus]
    last: dict[str, Any] | None
    hold: Hold | None = None  # a Retry-After hold in force: its probes are skipped
    location: str | None = None  # the figures of one location; None: of every location

    @property
    def primary(self) -> ProbeStatus:
        found = self.probes.get(self.primary_probe or "")
        return found if found is not None else _empty(self.primary_probe or "", ())

    @property
    def results(self) -> int:
        return self.primary.results

    @property
    def errors(self) -> dict[str, int]:
        return self.primary.errors

    @property
    def uptime(self) -> dict[str, float | None]:
        return self.primary.uptime

    @property
    def latency_ms(self) -> dict[str, float | None]:
        return self.primary.latency_ms

    @property
    def ttft_ms(self) -> dict[str, float | None]:
        return self.primary.ttft_ms

    @property
    def tokens_per_s_p50(self) -> float | None:
        return self.primary.tokens_per_s_p50

    def to_json(self) -> dict[str, Any]:
        """The `checker status --json` object: the primary probe's figures at the top
        level (as before per-probe figures existed), every probe's under `probes`."""
        primary = self.primary.to_json()
        return {
            "target": self.target,
            "primary_probe": self.primary_probe,
            "results": primary["results"],
            "errors": primary["errors"],
            "uptime": primary["uptime"],
            "latency_ms": primary["latency_ms"],
            "ttft_ms": primary["ttft_ms"],
            "tokens_per_s_p50": primary["tokens_per_s_p50"],
            "probes": {name: p.to_json() for name, p in self.probes.items()},
            "last": self.last,
            "held_until": self.hold.held_until.isoformat() if self.hold else None,
            "location": self.location,
        }


def _empty(probe: str, windows: Sequence[str]) -> ProbeStatus:
    none = dict.fromkeys((name for name, _ in QUANTILES), None)
    return ProbeStatus(probe, 0, {}, dict.fromkeys(windows, None), dict(none), dict(none), None)


@dataclass
class _Distributions:
    errors: dict[str, int] = field(default_factory=dict)
    latency: Sketch = field(default_factory=Sketch)
    ttft: Sketch = field(default_factory=Sketch)
    tokens_per_s: Sketch = field(default_factory=Sketch)
    ttfo: Sketch = field(default_factory=Sketch)
    itl: Sketch = field(default_factory=Sketch)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _quantiles(sketch: Sketch) -> dict[str, float | None]:
    return {name: sketch.quantile(q) for name, q in QUANTILES}


def _at(c: Any, location: str | None) -> Any:
    """The condition "measured at `location`" (true when None: every location)."""
    return sa.true() if location is None else sa.func.coalesce(c.location, "") == location


def counts_by_probe(
    conn: Connection,
    targets: Sequence[str],
    plan: WindowPlan,
    memo: Memo | None = None,
    location: str | None = None,
) -> dict[Key, Counts]:
    """Counts per (target, probe) over a plan, of one location or all. `memo` shares
    per-range sums between the windows of one status() call: they all end at the same raw
    tail, read once instead of four times."""
    out: dict[Key, Counts] = {}

    def sums(source: Source) -> sa.Select[Any]:
        c = source.c
        return (
            sa.select(c.target, c.probe, *count_sums(source))
            .where(one_of(conn, c.target, targets), _at(c, location))
            .group_by(c.target, c.probe)
        )

    for _, (target, probe, *numbers) in read_window(conn, plan, sums, {} if memo is None else memo):
        out.setdefault((target, probe), Counts()).add(*numbers)
    return out


def _distributions(
    conn: Connection, targets: Sequence[str], plan: WindowPlan, location: str | None = None
) -> dict[Key, _Distributions]:
    out: dict[Key, _Distributions] = {}
    decoded: list[list[Any]] = []  # [(target, probe), errors, latency, ttft, tokens/s]
    uncached: dict[str, list[Range]] = {"hour": [], "day": []}
    for kind, ranges in (("hour", plan.rollup), ("day", plan.daily)):
        for since, until in ranges:
            # The cache merges locations: one location's figures come from the rollups.
            cached = (
                None
                if location is not None
                else window_cache.lookup(conn, kind, targets, since, until)
            )
            if cached is None:
                uncached[kind].append((since, until))
            else:
                decoded.extend([key, *docs] for key, docs in cached.items())

    def stored(source: Source) -> sa.Select[Any] | None:
        c = source.c
        json_columns = (c.errors, *(c[name] for name in SKETCH_COLUMNS))
        return sa.select(c.target, c.probe, *(sa.cast(col, sa.Text) for col in json_columns)).where(
            one_of(conn, c.target, targets), _at(c, location)
        )

    from_rollups = WindowPlan(tuple(uncached["hour"]), (), tuple(uncached["day"]))
    rows = [row for _, row in read_window(conn, from_rollups, stored)]
    rows_of: dict[Key, list[list[Any]]] = {}
    for row in decoded:
        rows_of.setdefault(row[0], []).append(row)
    for target, probe, *docs in json_rows(rows, 2):
        rows_of.setdefault((target, probe), []).append([(target, probe), *docs])
    for key, mine in rows_of.items():
        d = out.setdefault(key, _Distributions())
        for row in mine:
            for kind, n in (row[1] or {}).items():
                d.errors[kind] = d.errors.get(kind, 0) + n
        for i, (name, _) in enumerate(SKETCHED):
            getattr(d, name).merge_all([row[2 + i] for row in mine])
    if plan.raw:
        error_counts = (
            sa.select(RAW.target, RAW.probe, RAW.error, sa.func.count())
            .where(one_of(conn, RAW.target, targets), RAW.error.is_not(None), _at(RAW, location))
            .group_by(RAW.target, RAW.probe, RAW.error)
        )
        for target, probe, kind, n in per_range(conn, error_counts, RAW_ROWS.period, plan.raw):
            errors = out.setdefault((target, probe), _Distributions()).errors
            errors[kind] = errors.get(kind, 0) + int(n)
        good = sa.select(
            RAW.target, RAW.probe, *(getattr(RAW, column) for _, column in SKETCHED)
        ).where(
            one_of(conn, RAW.target, targets),
            RAW.ok == sa.true(),
            RAW.maintenance == sa.false(),
            _at(RAW, location),
        )
        keyed = (
            ((target, probe), *values)
            for target, probe, *values in per_range(conn, good, RAW_ROWS.period, plan.raw)
        )
        fold_values(keyed, lambda key: out.setdefault(key, _Distributions()))
    return out


def _last(
    conn: Connection, targets: Sequence[str], now: datetime, location: str | None = None
) -> dict[str, dict[str, Any]]:
    """The newest result of each target at `now` (results after `now` are ignored).

    One statement, one index seek per target on (target, started_at): PostgreSQL joins a
    LATERAL `LIMIT 1` to the unnested names, SQLite looks up each name of a json_each()
    list with a correlated subquery. Ranking the last hour of every target with a window
    function read ~12,000 rows at 200 targets; a query per target paid 200 round trips.
    """
    newest = (
        sa.select(RAW.id)
        .where(RAW.started_at <= now, _at(RAW, location))
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
    layout: ProbeLayout | None = None,
    location: str | None = None,
) -> list[TargetStatus]:
    """Per target, in the given order, and per probe of it: uptime over each window, and
    counts, errors and percentiles over the main window. `count_rate_limited` may differ per
    target name. `with_last=False` skips looking up each target's newest result (`last` is
    None).

    `location` restricts every figure to the results measured there (the window cache,
    which merges locations, is then bypassed). `layout` gives each target's configured
    probes (shown even before their first result, in that order; probes found only in the
    store follow) and the probe whose figures are its headline; without it, the first of
    registry.PRIMARY_ORDER the target has results for."""
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
        counts = {w: counts_by_probe(conn, targets, plans[w], memo, location) for w in plans}
        dists = _distributions(conn, targets, plans[main_window], location)
        last = _last(conn, targets, now, location) if with_last else {}
        holds = holds_at(conn, now)

    seen: dict[str, list[str]] = {}
    for target, probe in sorted({k for c in counts.values() for k in c} | set(dists)):
        seen.setdefault(target, []).append(probe)
    out: list[TargetStatus] = []
    for t in targets:
        configured = layout.probes.get(t, []) if layout else []
        names = list(dict.fromkeys([*configured, *seen.get(t, ())]))
        per_probe: dict[str, ProbeStatus] = {}
        for name in names:
            d = dists.get((t, name), _Distributions())
            main = counts[main_window].get((t, name), Counts())
            per_probe[name] = ProbeStatus(
                probe=name,
                results=main.total,
                errors=dict(sorted(d.errors.items())),
                uptime={
                    w: counts[w].get((t, name), Counts()).uptime(counts_rl(t)) for w in windows
                },
                latency_ms=_quantiles(d.latency),
                ttft_ms=_quantiles(d.ttft),
                tokens_per_s_p50=d.tokens_per_s.quantile(0.5),
                ttfo_ms=_quantiles(d.ttfo),
                itl_ms=_quantiles(d.itl),
                valid=main.valid(counts_rl(t)),
                good=main.sli_ok,
                sketches={m: getattr(d, m) for m, _ in SKETCHED},
            )
        head = (layout.primary.get(t) if layout else None) or registry.primary_probe(names)
        out.append(TargetStatus(t, head, per_probe, last.get(t), holds.get(t), location))
    return out
