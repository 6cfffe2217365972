"""The daily digest's content, computed from query results (pure: no I/O, no clock).

The shell (`checker.digest.build`) runs the queries and hands their answers here as
`TargetInputs`; `make_context` turns them into a `DigestContext` that the templates only
format. Everything the digest says is decided here and in the modules it draws on (period,
compare, honesty), so it can be tested without a database; the time it reports as
generated is an argument.

A route *breaches* when any of these holds at the end of the period: its SLO error budget
(over its SLO window, ending with the period) is exhausted (<= 0); its uptime over the
period is below its availability objective; or a page-severity incident is open. A route
without any valid probe in the period is reported as "without data" rather than as
breaching or healthy; a period in which no route has any result says "No data yet".

The charts' geometry (hourly uptime bars, the TTFT band, the price ranking per model) is
`checker.digest.charts`; here the hours get their local labels.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from checker.alerting.slo import budget_remaining, burn_rate
from checker.compare.view import CompareView
from checker.digest.changes import changes
from checker.digest.charts import TtftBand, UptimeChart, ranking_charts, ttft_band, uptime_chart
from checker.digest.honesty import token_honesty
from checker.digest.inputs import Hour, IncidentSpan, Spend, TargetInputs, TtftHour
from checker.digest.models import DigestContext, IncidentLine, TargetDigest, WorkloadRow
from checker.digest.period import Period
from checker.digest.shift import MEASURES, ProfileShift, profile_shift

__all__ = [
    "EMPTY_VERDICT",
    "MIN_RESULTS_FOR_BILLING",
    "hour_chart",
    "incident_lines",
    "make_context",
    "profile_shifts",
    "ttft_chart",
    "verdict_line",
]

EMPTY_VERDICT = "No data yet: no route has a result in this period."

# A route is marked over-billing on its median usage ratio over at least this many results.
MIN_RESULTS_FOR_BILLING = 5


@functools.lru_cache(maxsize=1024)
def _hour_label(start: datetime, zone: ZoneInfo) -> str:
    # Every target's chart has the same hours: 200 targets format 24 labels, not 4,800.
    return start.astimezone(zone).strftime("%H")


def hour_chart(hours: Sequence[Hour], objective: float, zone: ZoneInfo) -> UptimeChart:
    """The hourly uptime bars, labelled with the local hour."""
    return uptime_chart(
        [(h.start, _hour_label(h.start, zone), h.valid, h.good) for h in hours], objective
    )


def ttft_chart(probe: str | None, hours: Sequence[TtftHour], zone: ZoneInfo) -> TtftBand:
    """The hourly TTFT band of one streaming probe, labelled with the local hour."""
    return ttft_band(
        probe, [(h.start, _hour_label(h.start, zone), h.count, h.p50, h.p95) for h in hours]
    )


def incident_lines(incidents: Sequence[IncidentSpan], period: Period) -> list[IncidentLine]:
    lines = []
    for inc in sorted(incidents, key=lambda i: i.opened_at):
        end = inc.resolved_at if inc.resolved_at is not None else period.until
        resolved_in = inc.resolved_at is not None and period.since <= inc.resolved_at < period.until
        lines.append(
            IncidentLine(
                rule_group=inc.rule_group,
                severity=inc.severity,
                rules=inc.rules,
                opened_at=inc.opened_at,
                resolved_at=inc.resolved_at,
                duration_s=max((min(end, period.until) - inc.opened_at).total_seconds(), 0.0),
                opened_in_period=period.since <= inc.opened_at < period.until,
                resolved_in_period=resolved_in,
                open_at_end=inc.opened_at < period.until
                and (inc.resolved_at is None or inc.resolved_at >= period.until),
            )
        )
    return lines


def _spend_value(spend: Spend, priced: bool) -> float | None:
    """Spend in USD; None ("no price") when nothing could be priced at all."""
    if spend.cost_count > 0:
        return spend.cost_usd
    return 0.0 if priced else None


def _effective_per_mtok(spend: Spend) -> float | None:
    tokens = spend.prompt_tokens + spend.completion_tokens
    if spend.cost_count == 0 or tokens <= 0:
        return None
    return spend.cost_usd / tokens * 1_000_000


def _target_digest(
    t: TargetInputs, period: Period, band: tuple[float, float], zone: ZoneInfo
) -> TargetDigest:
    budget = budget_remaining(t.slo_counts, t.objective)
    burn = burn_rate(t.period_counts, t.objective)
    incidents = incident_lines(t.incidents, period)
    uptime = t.figures.uptime
    reasons: list[str] = []
    if t.period_counts.valid == 0:
        state: Literal["ok", "breaching", "over_billing", "no_data"] = "no_data"
    else:
        if budget is not None and budget <= 0:
            reasons.append("error budget exhausted")
        if uptime is not None and uptime < t.objective:
            reasons.append(f"uptime {uptime:.2%} below {t.objective:.2%}")
        if any(i.open_at_end and i.severity == "page" for i in incidents):
            reasons.append("page incident open")
        state = "breaching" if reasons else "ok"
    # An open page incident is a breach even when the probes stopped reporting.
    if state == "no_data" and any(i.open_at_end and i.severity == "page" for i in incidents):
        state, reasons = "breaching", ["page incident open", "no data"]
    tokens = token_honesty(t.usage, band)
    ratio = tokens.median_ratio_to_chars4
    over = (
        tokens.checked >= MIN_RESULTS_FOR_BILLING
        and ratio is not None
        and not band[0] <= ratio <= band[1]
    )
    if over and state == "ok":
        state = "over_billing"
    if over:
        reasons.append(
            f"reports {ratio:.2f}x the output tokens it streams (band {band[0]}-{band[1]}, "
            f"{tokens.checked} results)"
        )
    spend = _spend_value(t.spend, t.priced)
    return TargetDigest(
        name=t.name,
        model=t.model,
        state=state,
        reasons=reasons,
        results=t.figures.results,
        uptime=uptime,
        uptime_7d=t.uptime_7d,
        uptime_30d=t.uptime_30d,
        objective=t.objective,
        budget_remaining=budget,
        burn_rate=burn,
        latency_p50=t.figures.latency_p50,
        latency_p95=t.figures.latency_p95,
        ttft_p50=t.figures.ttft_p50,
        ttft_p95=t.figures.ttft_p95,
        tokens_per_s_p50=t.figures.tokens_per_s_p50,
        errors=dict(sorted(t.figures.errors.items(), key=lambda kv: (-kv[1], kv[0]))),
        error_details=dict(t.error_details),
        incidents=incidents,
        spend_usd=spend,
        spend_cap_usd=t.spend_cap_usd,
        month_to_date_usd=_spend_value(t.spend_month_to_date, t.priced),
        month_end_projection_usd=t.month_end_projection_usd
        if (t.spend_month_to_date.cost_count or t.priced)
        else None,
        effective_per_mtok=_effective_per_mtok(t.spend),
        input_per_mtok=t.input_per_mtok,
        output_per_mtok=t.output_per_mtok,
        workload_usd=t.workload_usd,
        tokens=tokens,
        real_output_per_mtok=t.output_per_mtok * ratio
        if t.output_per_mtok is not None and ratio is not None
        else t.output_per_mtok,
        vs_day=changes(t.figures, t.previous_day, t.spend.cost_usd, t.spend_previous_day.cost_usd),
        vs_week=changes(
            t.figures, t.previous_week, t.spend.cost_usd, t.spend_previous_week.cost_usd
        ),
        uptime_chart=hour_chart(t.hours, t.objective, zone),
        ttft_chart=ttft_chart(t.ttft_probe, t.ttft_hours, zone),
    )


def profile_shifts(inputs: Sequence[TargetInputs]) -> list[ProfileShift]:
    """Every route whose primary probe's TTFT or decode speed shifted against the day
    before (checker.digest.shift). Both days must be of the same probe: a primary probe
    changed in the config would compare two probe kinds."""
    out = []
    for t in inputs:
        now, before = t.figures, t.previous_day
        if before is None or now.probe is None or before.probe != now.probe:
            continue
        for measure in MEASURES:
            found = profile_shift(
                t.name, now.probe, measure, before.profile.get(measure), now.profile.get(measure)
            )
            if found is not None:
                out.append(found)
    return out


def verdict_line(
    total: int,
    breaching: Sequence[str],
    no_data: Sequence[str],
    over_billing: Sequence[str] = (),
) -> str:
    routes = "route" if total == 1 else "routes"
    if not breaching and not no_data and not over_billing:
        return f"All good: {total} {routes} within their SLOs."
    parts = []
    if breaching:
        parts.append(f"{len(breaching)} of {total} {routes} breaching: {', '.join(breaching)}")
    else:
        parts.append(f"No route breaching, {total - len(no_data)} of {total} reporting")
    if no_data:
        parts.append(f"{len(no_data)} without data: {', '.join(no_data)}")
    if over_billing:
        parts.append(f"{len(over_billing)} over-reporting usage: {', '.join(over_billing)}")
    return "; ".join(parts) + "."


def make_context(
    period: Period,
    inputs: Sequence[TargetInputs],
    *,
    generated_at: datetime,
    usage_band: tuple[float, float],
    workload_input_tokens: int,
    workload_output_tokens: int,
    workload_cached_share: float | None,
    comparison: CompareView | None = None,
) -> DigestContext:
    zone = ZoneInfo(period.timezone)
    targets = [_target_digest(t, period, usage_band, zone) for t in inputs]
    breaching = [t.name for t in targets if t.state == "breaching"]
    no_data = [t.name for t in targets if t.state == "no_data"]
    over_billing = [t.name for t in targets if t.state == "over_billing"]
    workload = sorted(
        (WorkloadRow(t.name, t.model, t.workload_usd) for t in inputs),
        key=lambda r: (r.monthly_usd is None, r.monthly_usd or 0.0, r.target),
    )
    # Nothing to show at all: no result of any route's primary probe, no valid probe of any.
    empty = not any(t.figures.results or t.period_counts.valid for t in inputs)
    return DigestContext(
        period=period,
        generated_at=generated_at,
        verdict=EMPTY_VERDICT
        if empty
        else verdict_line(len(targets), breaching, no_data, over_billing),
        ok=not breaching and not no_data and not over_billing,
        breaching=breaching,
        no_data=no_data,
        targets=targets,
        total_spend_usd=sum(t.spend_usd or 0.0 for t in targets),
        total_month_to_date_usd=sum(t.month_to_date_usd or 0.0 for t in targets),
        total_projection_usd=sum(t.month_end_projection_usd or 0.0 for t in targets),
        unpriced=[t.name for t in targets if t.spend_usd is None],
        workload_input_tokens=workload_input_tokens,
        workload_output_tokens=workload_output_tokens,
        workload_cached_share=workload_cached_share,
        workload=workload,
        comparison=comparison,
        usage_band=usage_band,
        shifts=profile_shifts(inputs),
        rankings=ranking_charts(comparison),
        empty=empty,
    )
