"""The status page's view model (pure): what the page shows, assembled from data the store
already read (checker.web.status_data does the reading).

Imports no I/O module: the store's row types reach it through small Protocols (in
web.charts, web.heartbeat and web.wording), which name only the attributes read (the
template reads the rest). `now` is an argument; nothing here looks at the clock.

Definitions follow checker.store.queries: valid = results outside maintenance (minus
rate-limited ones when the target's SLO does not count them), good = successful valid
results, uptime = good / valid, None without valid results (no data is not 100 %).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from checker.alerting.slo import WindowCounts, budget_remaining
from checker.compare.view import CompareView
from checker.config.schema import Config, Target
from checker.redact import Redactor
from checker.units import format_duration
from checker.web.charts import (
    BarChart,
    DayLike,
    HourLike,
    Sparkline,
    daily_bars,
    hourly_bars,
    spark,
)
from checker.web.heartbeat import Heartbeats, ResultLike, heartbeat_rows
from checker.web.page_sections import Group, SpendSummary, group_by_tag
from checker.web.wording import HEALTH_WORDS, Health, IncidentLike, StateLike, budget_words, health

__all__ = [
    "DAYS",
    "SPARK_HOURS",
    "Budget",
    "BudgetGroups",
    "Health",
    "IncidentLike",
    "PageLevel",
    "StateLike",
    "StatusPage",
    "TargetPage",
    "assemble_page",
    "budget_groups",
    "budgets_from_counts",
    "count_rate_limited",
    "redact_tree",
]

DAYS = 90
SPARK_HOURS = 24

PageLevel = Literal["ok", "degraded", "down", "unknown"]
# (SLO window in seconds, whether rate-limited results count) -> target names.
BudgetGroups = dict[tuple[float, bool], list[str]]


# --- redaction ------------------------------------------------------------------------------


def redact_tree(value: Any, redactor: Redactor) -> Any:
    """`value` with every string in it (nested dicts and lists included) redacted."""
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {k: redact_tree(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_tree(v, redactor) for v in value]
    return value


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

    @property
    def words(self) -> str:
        return budget_words(self.remaining, self.valid)


def count_rate_limited(cfg: Config) -> dict[str, bool]:
    """Per target: whether its SLO counts rate-limited results as valid."""
    return {t.name: cfg.slo(t).count_rate_limited for t in cfg.targets}


def budget_groups(cfg: Config, targets: Iterable[Target]) -> BudgetGroups:
    """Targets grouped by (SLO window, counting), so the store is read once per group."""
    groups: BudgetGroups = {}
    for t in targets:
        slo = cfg.slo(t)
        groups.setdefault((slo.window, slo.count_rate_limited), []).append(t.name)
    return groups


def budgets_from_counts(
    cfg: Config, targets: Iterable[Target], counts: Mapping[str, tuple[int, int]]
) -> dict[str, Budget]:
    """Each target's error budget from its (valid, bad) counts over its SLO window."""
    out: dict[str, Budget] = {}
    for t in targets:
        slo = cfg.slo(t)
        valid, bad = counts.get(t.name, (0, 0))
        out[t.name] = Budget(slo.availability, slo.window, valid, bad)
    return out


# --- the page -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetPage:
    name: str
    kind: str
    model: str | None
    health: Health
    state: StateLike
    uptime: dict[str, float | None]  # the primary probe's
    primary_probe: str
    objective: float
    days: Sequence[DayLike]
    daily: BarChart  # every probe (the SLO's view), one bar per UTC day
    hourly: BarChart  # the primary probe, one bar per hour of the last 24
    latency: Sparkline
    ttft: Sparkline | None  # None for targets without a streaming probe
    incidents: Sequence[IncidentLike]
    budget: Budget
    # With results from several locations: the primary probe as each saw it (last hour).
    locations: Sequence[LocationLine] = ()
    # The newest results of each probe, the primary one first.
    heartbeats: Sequence[Heartbeats] = ()

    @property
    def health_words(self) -> str:
        return HEALTH_WORDS[self.health]


@dataclass(frozen=True)
class LocationLine:
    location: str
    uptime: float | None
    results: int
    failing: bool  # its newest result failed
    error: str | None

    @property
    def text(self) -> str:
        share = "-" if self.uptime is None else f"{self.uptime:.1%}"
        now = f", failing now ({self.error or 'error'})" if self.failing else ""
        return f"{self.location or '(unlabelled)'}: {share} of {self.results}{now}"


def location_lines(figures: Sequence[Any]) -> tuple[LocationLine, ...]:
    """Lines for a target measured from more than one location (none for one)."""
    if len(figures) < 2:
        return ()
    return tuple(
        LocationLine(
            f.location, f.ok / f.results if f.results else None, f.results, not f.last_ok,
            f.last_error,
        )
        for f in figures
    )  # fmt: skip


@dataclass(frozen=True)
class StatusPage:
    generated_at: datetime
    location: str
    level: PageLevel
    verdict: str
    targets: list[TargetPage]
    days: int
    title: str = "checker"
    groups: Sequence[Group[TargetPage]] = ()  # the targets by tag
    history: Sequence[IncidentLike] = ()  # the newest incidents, open or resolved
    spend: SpendSummary | None = None
    compare: CompareView | None = None  # routes to the same model, side by side


def _verdict(targets: Sequence[TargetPage]) -> tuple[PageLevel, str]:
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


def _streams(t: Target) -> bool:
    """Whether the target has a probe that measures time to first token."""
    return t.kind != "http" and bool(set(t.probe_names) - {"models"})


def assemble_page(
    cfg: Config,
    now: datetime,
    days: int,
    *,
    uptime: Mapping[str, Mapping[str, float | None]],
    states: Mapping[str, StateLike],
    bars: Mapping[str, Sequence[DayLike]],
    open_incidents: Iterable[IncidentLike],
    budgets: Mapping[str, Budget],
    sparks: Mapping[str, Sequence[HourLike]],
    locations: Mapping[str, Sequence[Any]] | None = None,
    recent: Mapping[tuple[str, str], Sequence[ResultLike]] | None = None,
    history: Sequence[IncidentLike] = (),
    spend: SpendSummary | None = None,
    compare: CompareView | None = None,
) -> StatusPage:
    """Everything the status page shows, for every configured target, from what the store
    read: uptime per window, current states, daily bars, open incidents (oldest first),
    budgets and the hourly series, each keyed by target name."""
    open_by_target: dict[str, list[IncidentLike]] = {t.name: [] for t in cfg.targets}
    for incident in open_incidents:
        if incident.target in open_by_target:
            open_by_target[incident.target].append(incident)
    pages: list[TargetPage] = []
    for t in cfg.targets:
        series = sparks[t.name]
        day_rows = bars[t.name]
        objective = cfg.slo(t).availability
        pages.append(
            TargetPage(
                name=t.name,
                kind=t.kind,
                model=t.model,
                health=health(states[t.name], open_by_target[t.name], budgets[t.name].remaining),
                state=states[t.name],
                uptime=dict(uptime[t.name]),
                primary_probe=t.primary,
                objective=objective,
                days=day_rows,
                daily=daily_bars(day_rows, objective),
                hourly=hourly_bars(series, objective),
                latency=spark(series, [p.latency_p50 for p in series], "latency p50"),
                ttft=spark(series, [p.ttft_p50 for p in series], "TTFT p50")
                if _streams(t)
                else None,
                incidents=open_by_target[t.name],
                budget=budgets[t.name],
                locations=location_lines((locations or {}).get(t.name, ())),
                heartbeats=heartbeat_rows(cfg, t, recent or {}),
            )
        )
    page_level, verdict = _verdict(pages)
    return StatusPage(
        now,
        cfg.location,
        page_level,
        verdict,
        pages,
        days,
        title=cfg.server.title if cfg.server else "checker",
        groups=group_by_tag(cfg, pages),
        history=history,
        spend=spend,
        compare=compare,
    )
