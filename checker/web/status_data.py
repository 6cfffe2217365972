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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.engine import Engine

from checker.alerting.slo import WindowCounts, budget_remaining
from checker.config.schema import Config, Target
from checker.redact import Redactor
from checker.store.plan import as_utc
from checker.store.queries import page as page_queries
from checker.store.queries.page import (
    CurrentState,
    DayUptime,
    IncidentView,
    current_states,
    daily_uptime,
)
from checker.store.queries.series import HourPoint, hourly_series_many
from checker.store.queries.status import WINDOWS, status, window_counts_many
from checker.units import format_duration, parse_duration

DAYS = 90
SPARK_HOURS = 24
INCIDENTS_LIMIT = 200


Health = Literal["up", "degraded", "failing", "down", "unknown"]
Level = Literal["ok", "minor", "major", "none"]


# --- incidents ------------------------------------------------------------------------------


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
    """Open incidents oldest first; or the newest `limit` incidents of any state, their
    details redacted with the current config's secrets."""
    return [
        replace(
            view,
            details=_redact_tree(view.details, redactor),
            detail=_redact_tree(view.detail, redactor),
        )
        for view in page_queries.incidents(engine, open_only=open_only, limit=limit)
    ]


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
