"""What the digest says, as data the templates only format (pure: no I/O, no clock)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from checker.compare.view import CompareView
from checker.digest.charts import RankingChart, TtftBand, UptimeChart
from checker.digest.period import Period
from checker.digest.shift import ProfileShift

__all__ = [
    "Change",
    "ChangeRow",
    "DigestContext",
    "Direction",
    "IncidentLine",
    "TargetDigest",
    "TokenHonesty",
    "Verdict",
    "WorkloadRow",
]

Direction = Literal["up", "down", "same"]
Verdict = Literal["better", "worse", "same", "neutral"]


@dataclass(frozen=True, slots=True)
class Change:
    metric: str
    current: float | None
    previous: float | None
    direction: Direction | None  # None: one side has no data
    verdict: Verdict | None
    delta: float | None  # absolute for uptime (fraction), relative otherwise

    @property
    def arrow(self) -> str:
        return {"up": "\u25b2", "down": "\u25bc", "same": "="}.get(self.direction or "", "")


@dataclass(frozen=True, slots=True)
class ChangeRow:
    metric: str
    current: float | None
    vs_day: Change | None
    vs_week: Change | None


@dataclass(frozen=True, slots=True)
class IncidentLine:
    rule_group: str
    severity: str
    rules: tuple[str, ...]
    opened_at: datetime
    resolved_at: datetime | None
    duration_s: float
    opened_in_period: bool
    resolved_in_period: bool
    open_at_end: bool


@dataclass(frozen=True, slots=True)
class TokenHonesty:
    checked: int
    mismatched: int
    # Median of reported tokens / (chars / 4): informative only, see the module docstring.
    median_ratio_to_chars4: float | None


@dataclass
class TargetDigest:
    name: str
    model: str | None
    # over_billing: within its SLO, but it reports more output tokens than it streams
    state: Literal["ok", "breaching", "over_billing", "no_data"]
    reasons: list[str]
    results: int
    uptime: float | None
    uptime_7d: float | None
    uptime_30d: float | None
    objective: float
    budget_remaining: float | None
    burn_rate: float | None
    latency_p50: float | None
    latency_p95: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    tokens_per_s_p50: float | None
    errors: dict[str, int]
    error_details: dict[str, str]
    incidents: list[IncidentLine]
    spend_usd: float | None  # None: no price known and nothing priced
    spend_cap_usd: float | None
    month_to_date_usd: float | None
    month_end_projection_usd: float | None
    effective_per_mtok: float | None
    input_per_mtok: float | None
    output_per_mtok: float | None
    workload_usd: float | None
    tokens: TokenHonesty
    # The list output price times the usage ratio: what a streamed output token costs here.
    real_output_per_mtok: float | None
    vs_day: list[Change]
    vs_week: list[Change]
    uptime_chart: UptimeChart
    ttft_chart: TtftBand

    @property
    def breaching(self) -> bool:
        return self.state == "breaching"

    @property
    def change_rows(self) -> list[ChangeRow]:
        """One row per metric with its change against the day and the week before."""
        day = {c.metric: c for c in self.vs_day}
        week = {c.metric: c for c in self.vs_week}
        metrics = [c.metric for c in (self.vs_day or self.vs_week)]
        rows = []
        for metric in metrics:
            either = day.get(metric) or week[metric]
            rows.append(ChangeRow(metric, either.current, day.get(metric), week.get(metric)))
        return rows


@dataclass(frozen=True, slots=True)
class WorkloadRow:
    target: str
    model: str | None
    monthly_usd: float | None


@dataclass
class DigestContext:
    period: Period
    generated_at: datetime
    verdict: str
    ok: bool
    breaching: list[str]
    no_data: list[str]
    targets: list[TargetDigest]
    total_spend_usd: float
    total_month_to_date_usd: float
    total_projection_usd: float
    unpriced: list[str]
    workload_input_tokens: int
    workload_output_tokens: int
    workload_cached_share: float | None
    workload: list[WorkloadRow]
    comparison: CompareView | None  # routes to the same model (checker.compare)
    usage_band: tuple[float, float]
    # Routes whose TTFT or decode speed jumped against the day before (checker.digest.shift).
    shifts: list[ProfileShift] = field(default_factory=list)
    # The comparison's ranking per model with a bar for the real price (checker.digest.charts).
    rankings: list[RankingChart] = field(default_factory=list)
    # No route has a single result in the period: the documents say "No data yet".
    empty: bool = False

    @property
    def title(self) -> str:
        parts = []
        if self.breaching:
            parts.append(f"{len(self.breaching)} breaching")
        if self.no_data:
            parts.append(f"{len(self.no_data)} without data")
        return f"checker digest {self.period.label}: {', '.join(parts) or 'all good'}"
