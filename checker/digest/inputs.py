"""What the digest shell read from the store, per target: the pure core's input (no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from checker.alerting.slo import WindowCounts
from checker.digest.shift import Measure, Quartiles

__all__ = ["Figures", "Hour", "IncidentSpan", "Spend", "TargetInputs", "TtftHour", "Usage"]


@dataclass(frozen=True, slots=True)
class Spend:
    """Probe spend over a window: sums over results that carried a cost."""

    cost_usd: float = 0.0
    cost_count: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Figures:
    """What the status query says about one target over one period."""

    results: int
    uptime: float | None
    latency_p50: float | None
    latency_p95: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    tokens_per_s_p50: float | None
    errors: Mapping[str, int]
    # The probe these figures are of (the target's primary), and its TTFT and decode-speed
    # quartiles with their counts: what the profile shift compares (checker.digest.shift).
    probe: str | None = None
    profile: Mapping[Measure, Quartiles] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IncidentSpan:
    """An incident as stored, reduced to when it was open: the digest reports its overlap
    with the period (alerting.rules.Incident is the evaluator's live incident)."""

    rule_group: str
    severity: str
    rules: tuple[str, ...]
    opened_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class Hour:
    """One hour of the uptime chart: the SLO's counts over every probe of the target."""

    start: datetime
    valid: int
    good: int


@dataclass(frozen=True, slots=True)
class TtftHour:
    """One hour of the TTFT band: one probe's successful results and their percentiles."""

    start: datetime
    count: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True, slots=True)
class Usage:
    """The fields of one stored result the token-honesty check needs."""

    completion_tokens: int
    reasoning_tokens: int
    output_chars: int
    # Tokens counted in the streamed text by the probe (tiktoken); None for older rows.
    counted_tokens: int | None = None


@dataclass
class TargetInputs:
    name: str
    model: str | None
    model_key: str | None  # models that are "the same" share a key (genai-prices id)
    objective: float
    slo_window_s: float
    figures: Figures
    uptime_7d: float | None
    uptime_30d: float | None
    period_counts: WindowCounts
    slo_counts: WindowCounts
    previous_day: Figures | None
    previous_week: Figures | None
    spend: Spend
    spend_previous_day: Spend
    spend_previous_week: Spend
    spend_month_to_date: Spend
    month_end_projection_usd: float | None
    priced: bool  # a price is known for this target's model
    input_per_mtok: float | None
    output_per_mtok: float | None
    workload_usd: float | None
    spend_cap_usd: float | None
    incidents: Sequence[IncidentSpan] = ()
    hours: Sequence[Hour] = ()
    # The streaming probe the TTFT band is of (None: the route runs none), and its hours.
    ttft_probe: str | None = None
    ttft_hours: Sequence[TtftHour] = ()
    # One Usage per result, or distinct usages with their number of results.
    usage: Sequence[Usage] | Mapping[Usage, int] = ()
    error_details: Mapping[str, str] = field(default_factory=dict)
