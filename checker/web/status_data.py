"""What the status page, the JSON API and the badges show, read from the store.

Every function that takes an Engine blocks on the database: the web handlers call them
through asyncio.to_thread, so the event loop (which also runs the probes) never waits.

Definitions follow checker.store.queries: valid = results outside maintenance (minus
rate-limited ones when the target's SLO does not count them), good = successful valid
results, uptime = good / valid, None without valid results (no data is not 100 %). Days
are UTC days. Text that came from probes is redacted again with the current config's
secrets before it leaves: a key that was rotated in after a result was stored is still
masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.alerting.slo import WindowCounts, budget_remaining
from checker.config.schema import Config, Target
from checker.probes.base import ErrorKind
from checker.redact import Redactor
from checker.store.models import IncidentRow
from checker.store.plan import HOUR, as_utc, floor_hour, plan_window
from checker.store.queries import (
    WINDOWS,
    Counts,
    HourPoint,
    hourly_series_many,
    status,
    window_counts_many,
)
from checker.store.tables import RAW, ROLLED, ROLLUPS
from checker.units import format_duration, parse_duration

DAYS = 90
SPARK_HOURS = 24
# How far back the raw rows are searched for the start of the current streak; older
# changes are found through the hourly rollups (one small row per hour, not per probe).
STREAK_RAW_LOOKBACK = timedelta(hours=24)
INCIDENTS_LIMIT = 200

INCIDENTS = IncidentRow.__table__  # type: ignore[attr-defined]
_RATE_LIMITED = ErrorKind.rate_limited.value

Health = Literal["up", "degraded", "failing", "down", "unknown"]
Level = Literal["ok", "minor", "major", "none"]


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


def _rolled_hours(conn: Connection, since: datetime, until: datetime) -> dict[datetime, bool]:
    rows = conn.execute(
        sa.select(ROLLED.c.hour, ROLLED.c.raw_pruned).where(
            ROLLED.c.hour >= floor_hour(since), ROLLED.c.hour < until
        )
    )
    return {as_utc(hour): bool(pruned) for hour, pruned in rows}


def _day_counts(
    conn: Connection, targets: Sequence[str], since: datetime, until: datetime
) -> dict[tuple[str, str], Counts]:
    """Counts per (target, UTC day) over [since, until): rollups for rolled whole hours,
    raw rows for the rest (the recent hours not rolled up yet, partial hours)."""
    dialect = conn.dialect.name
    plan = plan_window(since, until, _rolled_hours(conn, since, until))
    out: dict[tuple[str, str], Counts] = {}
    c = ROLLUPS.c
    rollup_day = _utc_day(c.hour, dialect)
    rollup_sums = (
        sa.select(
            c.target,
            rollup_day,
            sa.func.sum(c.total),
            sa.func.sum(c.maintenance_count),
            sa.func.sum(c.sli_ok_count),
            sa.func.sum(c.sli_rate_limited_count),
        )
        .where(c.target.in_(targets))
        .group_by(c.target, rollup_day)
    )
    outside = RAW.maintenance == sa.false()
    raw_day = _utc_day(RAW.started_at, dialect)
    raw_sums = (
        sa.select(
            RAW.target,
            raw_day,
            sa.func.count(),
            sa.func.sum(sa.case((outside, 0), else_=1)),
            sa.func.sum(sa.case((sa.and_(outside, RAW.ok == sa.true()), 1), else_=0)),
            sa.func.sum(sa.case((sa.and_(outside, RAW.error == _RATE_LIMITED), 1), else_=0)),
        )
        .where(RAW.target.in_(targets))
        .group_by(RAW.target, raw_day)
    )
    # One statement per range: an OR of ranges would make SQLite drop the time index.
    for stmt, column, ranges in (
        (rollup_sums, c.hour, plan.rollup),
        (raw_sums, RAW.started_at, plan.raw),
    ):
        for start, end in ranges:
            for target, day, *sums in conn.execute(stmt.where(column >= start, column < end)):
                out.setdefault((target, str(day)), Counts()).add(*sums)
    return out


def daily_uptime(
    engine: Engine,
    targets: Sequence[str],
    now: datetime,
    days: int = DAYS,
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


# --- the current state and since when -------------------------------------------------------


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


def _newest_opposite(
    conn: Connection, target: str, last_ok: bool, last_at: datetime, lookback_start: datetime
) -> tuple[datetime | None, datetime | None]:
    """(time of the newest result with the other outcome, or None; an upper bound for when
    the streak began, used when that result's raw row was pruned)."""
    raw_from = last_at - STREAK_RAW_LOOKBACK
    newest = conn.execute(
        sa.select(sa.func.max(RAW.started_at)).where(
            RAW.target == target,
            _ok_is(not last_ok),
            RAW.started_at >= raw_from,
            RAW.started_at <= last_at,
        )
    ).scalar_one_or_none()
    if newest is not None:
        return as_utc(newest), None
    c = ROLLUPS.c
    other = c.ok_count < c.total if last_ok else c.ok_count > 0
    hour = conn.execute(
        sa.select(sa.func.max(c.hour)).where(
            c.target == target, c.hour >= lookback_start, c.hour <= floor_hour(raw_from), other
        )
    ).scalar_one_or_none()
    if hour is None:
        return None, None
    hour = as_utc(hour)
    newest = conn.execute(
        sa.select(sa.func.max(RAW.started_at)).where(
            RAW.target == target,
            _ok_is(not last_ok),
            RAW.started_at >= hour,
            RAW.started_at < hour + HOUR,
        )
    ).scalar_one_or_none()
    return (as_utc(newest) if newest is not None else None), hour + HOUR


def _first_result(
    conn: Connection, target: str, after: datetime | None, lookback_start: datetime
) -> datetime | None:
    query = sa.select(sa.func.min(RAW.started_at)).where(RAW.target == target)
    if after is not None:
        query = query.where(RAW.started_at > after)
    first = conn.execute(query).scalar_one_or_none()
    if after is None:
        # Raw rows may be pruned: the oldest rollup hour can be older still.
        c = ROLLUPS.c
        hour = conn.execute(
            sa.select(sa.func.min(c.hour)).where(c.target == target, c.hour >= lookback_start)
        ).scalar_one_or_none()
        candidates = [as_utc(v) for v in (first, hour) if v is not None]
        return min(candidates) if candidates else None
    return as_utc(first) if first is not None else None


def streak_since(
    conn: Connection, target: str, last_ok: bool, last_at: datetime, lookback_start: datetime
) -> datetime | None:
    """When the current run of results with the same outcome as the newest one began."""
    opposite_at, bound = _newest_opposite(conn, target, last_ok, last_at, lookback_start)
    if opposite_at is None and bound is not None:
        return bound
    return _first_result(conn, target, opposite_at, lookback_start)


def current_states(
    engine: Engine,
    lasts: Mapping[str, dict[str, Any] | None],
    now: datetime,
    redactor: Redactor,
    lookback: timedelta = timedelta(days=DAYS),
) -> dict[str, CurrentState]:
    """The newest result of each target (as status() returns it) and since when it holds."""
    out: dict[str, CurrentState] = {}
    lookback_start = floor_hour(as_utc(now) - lookback)
    with engine.connect() as conn:
        for target, last in lasts.items():
            if not last:
                out[target] = CurrentState(ok=None)
                continue
            last_at = as_utc(datetime.fromisoformat(last["started_at"].replace("Z", "+00:00")))
            ok = bool(last["ok"])
            out[target] = CurrentState(
                ok=ok,
                last_at=last_at,
                since=streak_since(conn, target, ok, last_at, lookback_start),
                probe=last.get("probe"),
                error=last.get("error"),
                detail=redactor(last.get("detail")),
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
            "opened_at": _iso(self.opened_at),
            "resolved_at": _iso(self.resolved_at),
            "detail": self.detail,
            "details": self.details,
        }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else as_utc(at).isoformat().replace("+00:00", "Z")


def _redact_tree(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {k: _redact_tree(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v, redactor) for v in value]
    return value


def incidents(
    engine: Engine, redactor: Redactor, *, open_only: bool, limit: int = INCIDENTS_LIMIT
) -> list[IncidentView]:
    """Open incidents oldest first; or the newest `limit` incidents of any state."""
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
            details = _redact_tree(dict(row.details or {}), redactor)
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


# --- SLO budget -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    objective: float
    window_s: float
    valid: int
    bad: int

    @property
    def remaining(self) -> float | None:
        return budget_remaining(WindowCounts(self.valid, self.bad), self.objective)

    @property
    def window(self) -> str:
        return format_duration(self.window_s)


def budgets(
    engine: Engine, cfg: Config, targets: Sequence[Target], now: datetime
) -> dict[str, Budget]:
    """Error budget over each target's SLO window; one pass per distinct (window, counting)."""
    groups: dict[tuple[float, bool], list[str]] = {}
    for t in targets:
        slo = cfg.slo(t)
        groups.setdefault((slo.window, slo.count_rate_limited), []).append(t.name)
    counts: dict[str, tuple[int, int]] = {}
    for (window_s, rl), names in groups.items():
        since = now - timedelta(seconds=window_s)
        counts.update(window_counts_many(engine, names, since, now, count_rate_limited=rl))
    out: dict[str, Budget] = {}
    for t in targets:
        slo = cfg.slo(t)
        valid, bad = counts.get(t.name, (0, 0))
        out[t.name] = Budget(slo.availability, slo.window, valid, bad)
    return out


# --- sparklines (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class SparkHour:
    x: float
    width: float
    label: str  # tooltip


@dataclass(frozen=True)
class Sparkline:
    path: str  # SVG path data; gaps where an hour has no value
    hours: tuple[SparkHour, ...]
    latest: float | None
    high: float | None
    width: float
    height: float


def sparkline(
    values: Sequence[float | None],
    labels: Sequence[str],
    width: float = 300.0,
    height: float = 44.0,
    pad: float = 3.0,
) -> Sparkline:
    """A line over `values` scaled from 0 to the highest value (a baseline at zero keeps
    small wobbles small); None values break the line."""
    n = len(values)
    present = [v for v in values if v is not None]
    high = max(present) if present else None
    step = width / max(n - 1, 1)
    scale = (height - 2 * pad) / high if high else 0.0
    segments: list[list[str]] = []
    previous: float | None = None
    for i, v in enumerate(values):
        if v is not None:
            point = f"{i * step:.1f},{height - pad - v * scale:.1f}"
            if previous is None:
                segments.append([point])
            else:
                segments[-1].append(point)
        previous = v
    # A lone hour between gaps becomes a dot (a zero-length stroke with round caps).
    path = " ".join(
        f"M{seg[0]} h0.1" if len(seg) == 1 else "M" + " L".join(seg) for seg in segments
    )
    hours = tuple(
        SparkHour(x=max(0.0, i * step - step / 2), width=step, label=labels[i]) for i in range(n)
    )
    latest = next((v for v in reversed(values) if v is not None), None)
    return Sparkline(path, hours, latest, high, width, height)


# --- the page -------------------------------------------------------------------------------


def level(uptime: float | None, objective: float) -> Level:
    """ok: met the objective; minor: within ten budgets of it; major: worse; none: no data."""
    if uptime is None:
        return "none"
    if uptime >= objective:
        return "ok"
    if uptime >= 1 - 10 * (1 - objective):
        return "minor"
    return "major"


@dataclass(frozen=True)
class TargetPage:
    name: str
    kind: str
    model: str | None
    health: Health
    state: CurrentState
    uptime: dict[str, float | None]
    objective: float
    days: list[DayUptime]
    days_uptime: float | None  # over the whole bar chart
    latency: Sparkline
    ttft: Sparkline | None  # None for targets without a streaming probe
    incidents: list[IncidentView]
    budget: Budget


@dataclass(frozen=True)
class StatusPage:
    generated_at: datetime
    location: str
    level: Literal["ok", "degraded", "down", "unknown"]
    verdict: str
    targets: list[TargetPage]
    days: int


def _health(state: CurrentState, open_incidents: Sequence[IncidentView]) -> Health:
    if state.ok is None:
        return "unknown"
    if any(i.severity == "page" for i in open_incidents):
        return "down"
    if not state.ok:
        return "failing"
    if open_incidents:
        return "degraded"
    return "up"


def _verdict(
    targets: Sequence[TargetPage],
) -> tuple[Literal["ok", "degraded", "down", "unknown"], str]:
    known = [t for t in targets if t.health != "unknown"]
    if not known:
        return "unknown", "Waiting for the first probe results"
    down = [t for t in known if t.health in ("down", "failing")]
    degraded = [t for t in known if t.health == "degraded"]
    total = len(targets)
    if down:
        return "down", f"{len(down)} of {total} {_plural(total, 'target')} failing"
    if degraded:
        return "degraded", f"{len(degraded)} of {total} {_plural(total, 'target')} degraded"
    return "ok", "All systems operational"


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _spark_labels(points: Sequence[HourPoint], attr: str, what: str) -> list[str]:
    labels = []
    for p in points:
        value = getattr(p, attr)
        shown = "no data" if value is None else f"{value:,.0f} ms"
        labels.append(f"{p.hour:%H:00} UTC · {what} {shown}")
    return labels


def _count_rl(cfg: Config) -> dict[str, bool]:
    return {t.name: cfg.slo(t).count_rate_limited for t in cfg.targets}


def build_page(engine: Engine, cfg: Config, now: datetime, days: int = DAYS) -> StatusPage:
    """Everything the status page shows, for every configured target."""
    now = as_utc(now)
    redactor = Redactor(cfg.secrets())
    names = [t.name for t in cfg.targets]
    rl = _count_rl(cfg)
    statuses = {s.target: s for s in status(engine, names, now, count_rate_limited=rl)}
    states = current_states(
        engine, {n: statuses[n].last for n in names}, now, redactor, timedelta(days=days)
    )
    bars = daily_uptime(engine, names, now, days, rl)
    open_by_target: dict[str, list[IncidentView]] = {n: [] for n in names}
    for incident in incidents(engine, redactor, open_only=True):
        if incident.target in open_by_target:
            open_by_target[incident.target].append(incident)
    budget = budgets(engine, cfg, cfg.targets, now)
    sparks = hourly_series_many(engine, rl, now - timedelta(hours=SPARK_HOURS), now)
    pages: list[TargetPage] = []
    for t in cfg.targets:
        series = sparks[t.name]
        streams = t.kind != "http" and bool(set(t.probe_names) - {"models"})
        day_rows = bars[t.name]
        valid = sum(d.valid for d in day_rows)
        pages.append(
            TargetPage(
                name=t.name,
                kind=t.kind,
                model=t.model,
                health=_health(states[t.name], open_by_target[t.name]),
                state=states[t.name],
                uptime=dict(statuses[t.name].uptime),
                objective=cfg.slo(t).availability,
                days=day_rows,
                days_uptime=sum(d.good for d in day_rows) / valid if valid else None,
                latency=sparkline(
                    [p.latency_p50 for p in series],
                    _spark_labels(series, "latency_p50", "latency p50"),
                ),
                ttft=sparkline(
                    [p.ttft_p50 for p in series], _spark_labels(series, "ttft_p50", "TTFT p50")
                )
                if streams
                else None,
                incidents=open_by_target[t.name],
                budget=budget[t.name],
            )
        )
    page_level, verdict = _verdict(pages)
    return StatusPage(now, cfg.location, page_level, verdict, pages, days)


# --- the JSON API and badges ----------------------------------------------------------------


def api_status(engine: Engine, cfg: Config, now: datetime, window: str = "24h") -> list[dict]:
    """What `checker status --json` prints for the same data and window, with any secret
    of the current config masked (probes redact before storing; this is the second line)."""
    rows = status(
        engine,
        [t.name for t in cfg.targets],
        now,
        main_window=window,
        count_rate_limited=_count_rl(cfg),
    )
    redactor = Redactor(cfg.secrets())
    return [_redact_tree(r.to_json(), redactor) for r in rows]


BADGE_WINDOWS: tuple[str, ...] = WINDOWS


def badge_uptime(
    engine: Engine, cfg: Config, target: Target, window: str, now: datetime
) -> float | None:
    """Uptime of one target over one of BADGE_WINDOWS ending now."""
    since = as_utc(now) - timedelta(seconds=parse_duration(window))
    rl = cfg.slo(target).count_rate_limited
    valid, bad = window_counts_many(engine, [target.name], since, as_utc(now), rl)[target.name]
    return (valid - bad) / valid if valid else None
