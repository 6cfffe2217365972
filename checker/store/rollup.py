"""Hourly and daily rollups recomputed from raw results (pruning: checker.store.prune).

One rollup row per (hour, target, probe, location). Counts and sums are aggregated in SQL;
only successful results' latency, TTFT and decode speed are streamed into Python to build
the sketches. Each hour is recomputed in its own transaction (delete + insert), so a
rerun replaces the rows, and a long backfill never holds a lock for more than one hour's
work (SQLite has one writer: the result writer must not wait behind a 30-day rollup).

`rolled_hours` records which hours have rollups and whether their raw rows have been
pruned since; an hour whose raw rows are gone is never recomputed (that would replace a
complete rollup with a partial one).

Daily rows (`rollups_daily`, listed in `rolled_days`) are the exact sums of a UTC day's 24
hourly rows, so month-long percentiles merge 30 sketches per target instead of 720.
Re-rolling an hour deletes its day's rows in the same transaction; rollup_hours() then
recomputes the day. Daily rows therefore never disagree with the hourly ones: at worst
they are missing, and queries fall back to the hours. Both hold each (target, probe)'s
SLO events in fleet rounds (checker.store.fleet_counts).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.probes.base import ErrorKind
from checker.store.fleet_counts import fleet_columns, hour_rounds, stored_rounds
from checker.store.fleet_rounds import RoundCounts
from checker.store.plan import DAY, HOUR, as_utc, floor_day, floor_hour, hours_between
from checker.store.sketch import Sketch
from checker.store.tables import DAILY, RAW, ROLLED, ROLLED_DAYS, ROLLUPS

__all__ = [
    "SKETCHED",
    "SKETCH_COLUMNS",
    "USAGE_FIELDS",
    "fold_values",
    "rollup_day",
    "rollup_due",
    "rollup_hour",
    "rollup_hours",
    "usage_filter",
]

_RATE_LIMITED = ErrorKind.rate_limited.value
_STREAM_CHUNK = 10_000


# The measures rolled up as sketches: (accumulator attribute, raw column), in the order
# fold_values and the stored `<name>_sketch` columns take them. Successful results only.
SKETCHED: tuple[tuple[str, str], ...] = (
    ("latency", "latency_ms"),
    ("ttft", "ttft_ms"),
    ("tokens_per_s", "tokens_per_s"),
    ("ttfo", "ttfo_ms"),
    ("itl", "itl_p50_ms"),  # each stream's median inter-chunk gap
)
SKETCH_COLUMNS: tuple[str, ...] = tuple(f"{name}_sketch" for name, _ in SKETCHED)


@dataclass
class _Accumulator:
    total: int = 0
    ok_count: int = 0
    maintenance_count: int = 0
    sli_ok_count: int = 0
    sli_rate_limited_count: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latency: Sketch = field(default_factory=Sketch)
    ttft: Sketch = field(default_factory=Sketch)
    tokens_per_s: Sketch = field(default_factory=Sketch)
    ttfo: Sketch = field(default_factory=Sketch)
    itl: Sketch = field(default_factory=Sketch)
    cost_usd: float = 0.0
    cost_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    rounds: RoundCounts = field(default_factory=RoundCounts)  # see RollupMeasures.fleet_valid
    # Hourly rows only (see RollupRow): distinct usage -> results, kind -> (at, detail).
    usage: dict[tuple[int, int | None, int, int | None], int] = field(default_factory=dict)
    error_details: dict[str, tuple[datetime, str | None]] = field(default_factory=dict)

    def add_rollup(self, row: Any, sketches: Sequence[Any]) -> None:
        """Fold in a stored rollup row (its sketches, in SKETCHED order, already parsed)."""
        self.total += row.total
        self.ok_count += row.ok_count
        self.maintenance_count += row.maintenance_count
        self.sli_ok_count += row.sli_ok_count
        self.sli_rate_limited_count += row.sli_rate_limited_count
        for kind, n in (row.errors or {}).items():
            self.errors[kind] = self.errors.get(kind, 0) + n
        for (name, _), doc in zip(SKETCHED, sketches, strict=True):
            getattr(self, name).merge_json(doc)
        self.cost_usd += row.cost_usd
        self.cost_count += row.cost_count
        self.prompt_tokens += row.prompt_tokens
        self.completion_tokens += row.completion_tokens
        self.cached_tokens += row.cached_tokens
        self.reasoning_tokens += row.reasoning_tokens
        self.rounds.add(stored_rounds(row))


def _count_query(hour: datetime) -> sa.Select[Any]:
    location = sa.func.coalesce(RAW.location, "")
    return (
        sa.select(
            RAW.target,
            RAW.probe,
            location.label("location"),
            RAW.ok,
            RAW.maintenance,
            RAW.error,
            sa.func.count().label("n"),
            sa.func.sum(RAW.cost_usd).label("cost_usd"),
            sa.func.count(RAW.cost_usd).label("cost_count"),
            sa.func.sum(RAW.prompt_tokens).label("prompt_tokens"),
            sa.func.sum(RAW.completion_tokens).label("completion_tokens"),
            sa.func.sum(RAW.cached_tokens).label("cached_tokens"),
            sa.func.sum(RAW.reasoning_tokens).label("reasoning_tokens"),
        )
        .where(RAW.started_at >= hour, RAW.started_at < hour + HOUR)
        .group_by(RAW.target, RAW.probe, location, RAW.ok, RAW.maintenance, RAW.error)
    )


def _values_query(hour: datetime) -> sa.Select[Any]:
    return sa.select(
        RAW.target,
        RAW.probe,
        sa.func.coalesce(RAW.location, "").label("location"),
        *(getattr(RAW, column) for _, column in SKETCHED),
    ).where(
        RAW.started_at >= hour,
        RAW.started_at < hour + HOUR,
        RAW.ok == sa.true(),
        RAW.maintenance == sa.false(),
    )


USAGE_FIELDS = (RAW.completion_tokens, RAW.reasoning_tokens, RAW.output_chars, RAW.counted_tokens)


def usage_filter() -> sa.ColumnElement[bool]:
    """The results the digest's token-honesty check judges (maintenance or not)."""
    return sa.and_(
        RAW.ok == sa.true(), RAW.completion_tokens.is_not(None), RAW.output_chars.is_not(None)
    )


def _usage_query(hour: datetime) -> sa.Select[Any]:
    location = sa.func.coalesce(RAW.location, "")
    return (
        sa.select(RAW.target, RAW.probe, location, *USAGE_FIELDS, sa.func.count())
        .where(RAW.started_at >= hour, RAW.started_at < hour + HOUR, usage_filter())
        .group_by(RAW.target, RAW.probe, location, *USAGE_FIELDS)
    )


def _error_details_query(hour: datetime) -> sa.Select[Any]:
    # Failures are rare: every failed result of the hour, oldest first, the newest wins
    # (its detail even when empty: the digest shows the newest failure's text or none).
    return (
        sa.select(
            RAW.target,
            RAW.probe,
            sa.func.coalesce(RAW.location, ""),
            RAW.error,
            RAW.started_at,
            RAW.detail,
        )
        .where(
            RAW.started_at >= hour,
            RAW.started_at < hour + HOUR,
            RAW.error.is_not(None),
        )
        .order_by(RAW.started_at, RAW.id)
    )


def _accumulate(conn: Connection, hour: datetime) -> dict[tuple[str, str, str], _Accumulator]:
    acc: dict[tuple[str, str, str], _Accumulator] = {}
    for row in conn.execute(_count_query(hour)):
        a = acc.setdefault((row.target, row.probe, row.location), _Accumulator())
        n = int(row.n)
        a.total += n
        if row.ok:
            a.ok_count += n
        if row.maintenance:
            a.maintenance_count += n
        else:
            if row.ok:
                a.sli_ok_count += n
            if row.error == _RATE_LIMITED:
                a.sli_rate_limited_count += n
        if row.error is not None:
            a.errors[row.error] = a.errors.get(row.error, 0) + n
        a.cost_usd += float(row.cost_usd or 0.0)
        a.cost_count += int(row.cost_count or 0)
        a.prompt_tokens += int(row.prompt_tokens or 0)
        a.completion_tokens += int(row.completion_tokens or 0)
        a.cached_tokens += int(row.cached_tokens or 0)
        a.reasoning_tokens += int(row.reasoning_tokens or 0)

    # Per statement: Connection.execution_options() would change the connection itself.
    stream = conn.execute(_values_query(hour).execution_options(yield_per=_STREAM_CHUNK))
    fold_values(((tuple(r[:3]), *r[3:]) for r in stream), acc.__getitem__)
    for target, probe, location, completion, reasoning, chars, counted, n in conn.execute(
        _usage_query(hour)
    ):
        acc[(target, probe, location)].usage[(completion, reasoning, chars, counted)] = int(n)
    for target, probe, location, error, at, detail in conn.execute(_error_details_query(hour)):
        acc[(target, probe, location)].error_details[error] = (as_utc(at), detail)
    return acc


def fold_values(rows: Iterable[Sequence[Any]], sink: Callable[[Any], Any]) -> None:
    """Add (key, *values in SKETCHED order) rows to the sketches of `sink(key)`. Values are
    gathered per key first: one extend per sketch is much faster than one add per value."""
    width = len(SKETCHED)
    values: dict[Any, list[list[float]]] = {}
    for key, *measured in rows:
        lists = values.get(key)
        if lists is None:
            lists = values[key] = [[] for _ in range(width)]
        for i, value in enumerate(measured):
            if value is not None:
                lists[i].append(value)
    for key, lists in values.items():
        d = sink(key)
        for (name, _), found in zip(SKETCHED, lists, strict=True):
            getattr(d, name).extend(found)


def _measure_rows(
    period: dict[str, datetime],
    acc: dict[tuple[str, str, str], _Accumulator],
    hourly: bool = False,
) -> list[dict[str, Any]]:
    rows = []
    for (target, probe, location), a in acc.items():
        digest_columns = {}
        if hourly:
            digest_columns = {
                "usage_counts": [[*usage, n] for usage, n in sorted(a.usage.items(), key=str)],
                "error_details": {
                    kind: [at.isoformat(timespec="microseconds"), detail]
                    for kind, (at, detail) in sorted(a.error_details.items())
                },
            }
        rows.append(
            {
                **digest_columns,
                **period,
                "target": target,
                "probe": probe,
                "location": location,
                "total": a.total,
                "ok_count": a.ok_count,
                "maintenance_count": a.maintenance_count,
                "sli_ok_count": a.sli_ok_count,
                "sli_rate_limited_count": a.sli_rate_limited_count,
                "errors": a.errors,
                **{f"{name}_sketch": getattr(a, name).to_json() for name, _ in SKETCHED},
                "cost_usd": a.cost_usd,
                "cost_count": a.cost_count,
                "prompt_tokens": a.prompt_tokens,
                "completion_tokens": a.completion_tokens,
                "cached_tokens": a.cached_tokens,
                "reasoning_tokens": a.reasoning_tokens,
                **fleet_columns(a.rounds),
            }
        )
    return rows


def _forget_day(conn: Connection, day: datetime) -> None:
    conn.execute(DAILY.delete().where(DAILY.c.day == day))
    conn.execute(ROLLED_DAYS.delete().where(ROLLED_DAYS.c.day == day))


def rollup_hour(engine: Engine, hour: datetime, now: datetime) -> bool:
    """Recompute one hour; False when skipped because its raw rows were pruned."""
    with engine.begin() as conn:
        pruned = sa.select(ROLLED.c.raw_pruned).where(ROLLED.c.hour == hour)
        if conn.execute(pruned).scalar_one_or_none():
            return False
        acc = _accumulate(conn, hour)
        for key, rounds in hour_rounds(conn, hour, acc).items():
            acc[key].rounds = rounds
        rows = _measure_rows({"hour": hour}, acc, hourly=True)
        conn.execute(ROLLUPS.delete().where(ROLLUPS.c.hour == hour))
        if rows:
            conn.execute(ROLLUPS.insert(), rows)
        conn.execute(ROLLED.delete().where(ROLLED.c.hour == hour))
        conn.execute(ROLLED.insert(), {"hour": hour, "rolled_at": now, "raw_pruned": False})
        # The day's sum is stale now; rollup_hours() recomputes it once its hours are done.
        _forget_day(conn, floor_day(hour))
    return True


def rollup_day(engine: Engine, day: datetime, now: datetime) -> bool:
    """Sum a day's 24 hourly rollups into daily rows; False (and none) unless all 24 exist."""
    c = ROLLUPS.c
    sketch_columns = tuple(c[name] for name in SKETCH_COLUMNS)
    # Daily rows have no digest columns (RollupRow): not read, not decoded.
    skipped = (*sketch_columns, c.usage_counts, c.error_details)
    with engine.begin() as conn:
        _forget_day(conn, day)
        in_day = sa.and_(ROLLED.c.hour >= day, ROLLED.c.hour < day + DAY)
        if conn.execute(sa.select(sa.func.count()).where(in_day)).scalar_one() < 24:
            return False
        rows = conn.execute(
            sa.select(
                *(col for col in c if col not in skipped),
                *(sa.cast(col, sa.Text).label(col.name) for col in sketch_columns),
            )
            .where(c.hour >= day, c.hour < day + DAY)
            .order_by(c.hour)  # a fixed order: float sums come out the same every time
        ).all()
        # One json.loads for all sketches: thousands of small calls cost a third more.
        width = len(SKETCH_COLUMNS)
        texts = [text or "null" for row in rows for text in row[-width:]]
        docs = json.loads("[" + ",".join(texts) + "]")
        acc: dict[tuple[str, str, str], _Accumulator] = {}
        for i, row in enumerate(rows):
            a = acc.setdefault((row.target, row.probe, row.location), _Accumulator())
            a.add_rollup(row, docs[width * i : width * (i + 1)])
        daily = _measure_rows({"day": day}, acc)
        if daily:
            conn.execute(DAILY.insert(), daily)
        conn.execute(ROLLED_DAYS.insert(), {"day": day, "rolled_at": now})
    return True


def rollup_hours(
    engine: Engine, since: datetime, until: datetime, *, now: datetime | None = None
) -> int:
    """Recompute the rollups of every whole hour h with floor_hour(since) <= h, h + 1h <= until.

    Idempotent: rerunning replaces the rows. Hours whose raw rows were pruned are kept as
    they are. Each day touched gets its daily rows recomputed once all its 24 hours are
    rolled up. Returns the number of hours recomputed.
    """
    now = as_utc(now) if now else datetime.now(UTC)
    since, until = as_utc(since), as_utc(until)
    done = 0
    days: set[datetime] = set()
    for hour in hours_between(since, floor_hour(until)):
        if rollup_hour(engine, hour, now):
            done += 1
            days.add(floor_day(hour))
    for day in sorted(days):
        rollup_day(engine, day, now)
    return done


def rollup_due(
    engine: Engine,
    now: datetime,
    *,
    settle_s: float = 300.0,
    lookback_hours: int = 2,
    refresh_hours: int = 26,
) -> int:
    """Roll up what is due: every hour after the newest rolled one, plus `lookback_hours`
    recent hours again (late results: a result is stored when its probe ends and the writer
    flushes, which can be after its hour). An hour is due `settle_s` after it ends.

    Hours of the last `refresh_hours` rolled up before migration 0005 (NULL digest columns)
    or 0011 (NULL round counts) are rolled up again too, so after an upgrade the daily
    digest stops reading raw rows, and the SLO counts fleet rounds, within one run.
    """
    now = as_utc(now)
    until = floor_hour(now - timedelta(seconds=settle_s))
    with engine.connect() as conn:
        latest = conn.execute(sa.select(sa.func.max(ROLLED.c.hour))).scalar_one_or_none()
        if latest is None:
            first = conn.execute(sa.select(sa.func.min(RAW.started_at))).scalar_one_or_none()
            if first is None:
                return 0
            since = floor_hour(as_utc(first))
        else:
            since = as_utc(latest) + HOUR - lookback_hours * HOUR
        stale = conn.execute(
            sa.select(sa.func.min(ROLLUPS.c.hour)).where(
                ROLLUPS.c.hour >= until - refresh_hours * HOUR,
                sa.or_(ROLLUPS.c.usage_counts.is_(None), ROLLUPS.c.fleet_valid.is_(None)),
            )
        ).scalar_one_or_none()
        if stale is not None:
            since = min(since, as_utc(stale))
    return rollup_hours(engine, since, until, now=now)
