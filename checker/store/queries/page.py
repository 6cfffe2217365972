"""What the status page reads: per-day uptime bars, the current state of each target and
since when it holds, and incidents. Days are UTC days; definitions follow queries.window
(valid, good, uptime)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.store.db import one_of
from checker.store.plan import HOUR, as_utc, floor_hour, plan_window
from checker.store.queries.window import Counts, Source, count_sums, read_window, rolled_hours
from checker.store.tables import INCIDENTS, RAW, ROLLUPS

__all__ = [
    "STREAK_RAW_LOOKBACK",
    "CurrentState",
    "DayUptime",
    "IncidentView",
    "RecentResult",
    "current_states",
    "daily_uptime",
    "incidents",
    "iso",
    "recent_results",
    "streak_since",
    "streaks_since",
]

# How far back the raw rows are searched for the start of the current streak; older
# changes are found through the hourly rollups (one small row per hour, not per probe).
STREAK_RAW_LOOKBACK = timedelta(hours=24)


# --- per-day uptime -------------------------------------------------------------------------


@dataclass(frozen=True)
class DayUptime:
    day: date
    total: int  # every result, maintenance included
    valid: int
    good: int

    @property
    def uptime(self) -> float | None:
        return self.good / self.valid if self.valid else None


def _utc_day(column: Any, dialect: str) -> Any:
    """YYYY-MM-DD of a timestamp column, in UTC, as text on both backends.

    Constants are literal SQL, not bound parameters: PostgreSQL only accepts the GROUP BY
    expression if it is textually the same as the selected one, parameter names included.
    """
    if dialect == "postgresql":
        utc = sa.func.timezone(sa.literal_column("'UTC'"), column)
        return sa.func.to_char(utc, sa.literal_column("'YYYY-MM-DD'"))
    # SQLite keeps UtcDateTime as naive UTC text ('YYYY-MM-DD HH:MM:SS.ffffff').
    return sa.func.date(column)


def _day_counts(
    conn: Connection, targets: Sequence[str], since: datetime, until: datetime
) -> dict[tuple[str, str], Counts]:
    """Counts per (target, UTC day) over [since, until): rollups for rolled whole hours,
    raw rows for the rest (the recent hours not rolled up yet, partial hours)."""
    dialect = conn.dialect.name
    plan = plan_window(since, until, rolled_hours(conn, since, until))

    def per_day(source: Source) -> sa.Select[Any]:
        c = source.c
        day = _utc_day(source.period, dialect)
        return (
            sa.select(c.target, day, *count_sums(source))
            .where(one_of(conn, c.target, targets))
            .group_by(c.target, day)
        )

    out: dict[tuple[str, str], Counts] = {}
    for _, (target, day, *sums) in read_window(conn, plan, per_day):
        out.setdefault((target, str(day)), Counts()).add(*sums)
    return out


def daily_uptime(
    engine: Engine,
    targets: Sequence[str],
    now: datetime,
    days: int,
    count_rate_limited: Mapping[str, bool] | None = None,
) -> dict[str, list[DayUptime]]:
    """Per target, one entry per UTC day (oldest first, today last and partial)."""
    now = as_utc(now)
    targets = list(dict.fromkeys(targets))
    today = now.date()
    first = today - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=now.tzinfo)
    if not targets:
        return {}
    with engine.connect() as conn:
        counts = _day_counts(conn, targets, since, now)
    out: dict[str, list[DayUptime]] = {}
    for t in targets:
        rl = True if count_rate_limited is None else count_rate_limited.get(t, True)
        row: list[DayUptime] = []
        for i in range(days):
            day = first + timedelta(days=i)
            n = counts.get((t, day.isoformat()), Counts())
            row.append(DayUptime(day, n.total, n.valid(rl), n.sli_ok))
        out[t] = row
    return out


@dataclass(frozen=True)
class CurrentState:
    ok: bool | None  # None: no result yet
    last_at: datetime | None = None
    since: datetime | None = None  # first result of the current run of ok (or failed) results
    probe: str | None = None
    error: str | None = None
    detail: str | None = None


def _ok_is(value: bool) -> Any:
    return RAW.ok == (sa.true() if value else sa.false())


# A target's newest result: (whether it succeeded, when it started).
Newest = tuple[bool, datetime]


def _grouped(
    conn: Connection, column: Any, key: Any, terms: list[Any], pick: Any
) -> dict[str, datetime]:
    """{target: pick(column)} over the rows matching any of `terms`, grouped by target."""
    if not terms:
        return {}
    query = sa.select(key, pick(column)).where(sa.or_(*terms)).group_by(key)
    return {t: as_utc(v) for t, v in conn.execute(query) if v is not None}


def streaks_since(
    conn: Connection, newest: Mapping[str, Newest], lookback_start: datetime
) -> dict[str, datetime | None]:
    """When each target's current run of results with the same outcome as its newest one
    began; a handful of grouped statements for all targets, not a few per target.

    The newest result of the other outcome is searched in the raw rows of the last
    STREAK_RAW_LOOKBACK, else through the rollups (the newest hour holding one, then that
    hour's raw rows); the streak starts at the first result after it. When that hour's raw
    rows were pruned, the hour's end bounds the start; with no other outcome at all, the
    target's first result (raw or rolled up) is the start."""
    raw_from = {t: last_at - STREAK_RAW_LOOKBACK for t, (_, last_at) in newest.items()}
    # The other outcome in the recent raw rows.
    recent = [
        sa.and_(RAW.target == t, _ok_is(not ok), RAW.started_at.between(raw_from[t], last_at))
        for t, (ok, last_at) in newest.items()
    ]
    opposite = _grouped(conn, RAW.started_at, RAW.target, recent, sa.func.max)
    # Else the newest rolled-up hour that holds it, and that hour's raw rows.
    c = ROLLUPS.c
    rolled = [
        sa.and_(
            c.target == t,
            c.hour.between(lookback_start, floor_hour(raw_from[t])),
            c.ok_count < c.total if ok else c.ok_count > 0,
        )
        for t, (ok, _) in newest.items()
        if t not in opposite
    ]
    hours = _grouped(conn, c.hour, c.target, rolled, sa.func.max)
    in_hour = [
        sa.and_(
            RAW.target == t,
            _ok_is(not newest[t][0]),
            RAW.started_at >= hour,
            RAW.started_at < hour + HOUR,
        )
        for t, hour in hours.items()
    ]
    opposite.update(_grouped(conn, RAW.started_at, RAW.target, in_hour, sa.func.max))
    # Those hours' raw rows were pruned: the hour's end bounds the start.
    out: dict[str, datetime | None] = {t: hours[t] + HOUR for t in hours if t not in opposite}
    # The streak starts at the first result after the other outcome...
    later = [sa.and_(RAW.target == t, RAW.started_at > at) for t, at in opposite.items()]
    after = _grouped(conn, RAW.started_at, RAW.target, later, sa.func.min)
    out.update({t: after.get(t) for t in opposite})
    # ...or, without one, at the target's first result, raw or rolled up (raw rows may be
    # pruned: the oldest rollup hour can be older still).
    never = [t for t in newest if t not in out]
    if never:
        first_raw = [one_of(conn, RAW.target, never)]
        first_rolled = [sa.and_(one_of(conn, c.target, never), c.hour >= lookback_start)]
        firsts = (
            _grouped(conn, RAW.started_at, RAW.target, first_raw, sa.func.min),
            _grouped(conn, c.hour, c.target, first_rolled, sa.func.min),
        )
        for t in never:
            found = [f[t] for f in firsts if t in f]
            out[t] = min(found) if found else None
    return out


def streak_since(
    conn: Connection, target: str, last_ok: bool, last_at: datetime, lookback_start: datetime
) -> datetime | None:
    """When the current run of results with the same outcome as the newest one began."""
    return streaks_since(conn, {target: (last_ok, last_at)}, lookback_start)[target]


def current_states(
    engine: Engine,
    lasts: Mapping[str, dict[str, Any] | None],
    now: datetime,
    redactor: Callable[[str | None], str | None],
    lookback: timedelta,
) -> dict[str, CurrentState]:
    """The newest result of each target (as status() returns it) and since when it holds."""
    lookback_start = floor_hour(as_utc(now) - lookback)
    newest: dict[str, Newest] = {}
    for target, last in lasts.items():
        if last:
            at = as_utc(datetime.fromisoformat(last["started_at"].replace("Z", "+00:00")))
            newest[target] = (bool(last["ok"]), at)
    with engine.connect() as conn:
        since = streaks_since(conn, newest, lookback_start) if newest else {}
    out: dict[str, CurrentState] = {}
    for target, last in lasts.items():
        if not last:
            out[target] = CurrentState(ok=None)
            continue
        ok, last_at = newest[target]
        out[target] = CurrentState(
            ok=ok,
            last_at=last_at,
            since=since.get(target),
            probe=last.get("probe"),
            error=last.get("error"),
            detail=redactor(last.get("detail")),
        )
    return out


# --- the newest results (heartbeat bars) -----------------------------------------------------


@dataclass(frozen=True)
class RecentResult:
    started_at: datetime
    ok: bool
    error: str | None
    latency_ms: float | None
    ttft_ms: float | None
    maintenance: bool
    location: str | None = None


def recent_results(
    engine: Engine, since: Mapping[datetime, Sequence[str]], limit: int
) -> dict[tuple[str, str], list[RecentResult]]:
    """The newest `limit` raw results of each (target, probe), oldest first, in one ranked
    query. `since` maps a start time to the targets searched from it: a horizon per
    target's interval keeps the ranking to recent rows instead of the whole raw table."""
    if not since:
        return {}
    with engine.connect() as conn:
        where = sa.or_(
            *(
                sa.and_(one_of(conn, RAW.target, list(names)), RAW.started_at >= as_utc(at))
                for at, names in since.items()
            )
        )
        rank = (
            sa.func.row_number()
            .over(
                partition_by=(RAW.target, RAW.probe),
                order_by=(RAW.started_at.desc(), RAW.id.desc()),
            )
            .label("rank")
        )
        columns = (RAW.started_at, RAW.ok, RAW.error, RAW.latency_ms, RAW.ttft_ms)
        ranked = (
            sa.select(RAW.target, RAW.probe, *columns, RAW.maintenance, RAW.location, rank)
            .where(where)
            .subquery()
        )
        c = ranked.c
        rows = conn.execute(
            sa.select(*(col for col in c if col.name != "rank"))
            .where(c.rank <= limit)
            .order_by(c.target, c.probe, c.rank.desc())
        ).all()
    out: dict[tuple[str, str], list[RecentResult]] = {}
    for target, probe, at, ok, error, latency, ttft, maintenance, location in rows:
        out.setdefault((target, probe), []).append(
            RecentResult(as_utc(at), bool(ok), error, latency, ttft, bool(maintenance), location)
        )
    return out


# --- incidents ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IncidentView:
    id: int
    target: str
    rule_group: str
    severity: str
    rules: tuple[str, ...]
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    detail: str | None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "rule_group": self.rule_group,
            "severity": self.severity,
            "rules": list(self.rules),
            "state": self.state,
            "opened_at": iso(self.opened_at),
            "resolved_at": iso(self.resolved_at),
            "detail": self.detail,
            "details": self.details,
        }


def iso(at: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the JSON API shows times; None stays None."""
    return None if at is None else as_utc(at).isoformat().replace("+00:00", "Z")


def incidents(engine: Engine, *, open_only: bool, limit: int) -> list[IncidentView]:
    """Open incidents oldest first; or the newest `limit` incidents of any state. Their
    details as stored: the caller redacts them with the current config's secrets."""
    c = INCIDENTS.c
    query = sa.select(
        c.id,
        c.target,
        c.rule_group,
        c.severity,
        c.rules,
        c.state,
        c.opened_at,
        c.resolved_at,
        c.details,
    )
    if open_only:
        query = query.where(c.state == "open").order_by(c.opened_at, c.id)
    else:
        query = query.order_by(c.opened_at.desc(), c.id.desc()).limit(limit)
    out: list[IncidentView] = []
    with engine.connect() as conn:
        for row in conn.execute(query):
            details = dict(row.details or {})
            detail = details.get("detail") if isinstance(details.get("detail"), str) else None
            out.append(
                IncidentView(
                    id=int(row.id),
                    target=row.target,
                    rule_group=row.rule_group,
                    severity=row.severity,
                    rules=tuple(row.rules or ()),
                    state=row.state,
                    opened_at=as_utc(row.opened_at),
                    resolved_at=as_utc(row.resolved_at) if row.resolved_at else None,
                    detail=detail,
                    details=details,
                )
            )
    return out
