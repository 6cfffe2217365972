"""The daily digest's content, computed from query results (pure: no I/O, no clock).

The shell (`checker.digest`) runs the queries and hands their answers here as
`TargetInputs`; `make_context` turns them into a `DigestContext` that the templates only
format. Everything the digest says is decided here, so it can be tested without a database.

Definitions:
- Period: [since, until) in UTC. A scheduled digest covers the 24 hours before its send
  time; without a date, the last 24 hours; with a date, that local calendar day in the
  digest time zone (23 or 25 hours long on DST change days).
- A route *breaches* when any of these holds at the end of the period:
  its SLO error budget (over its SLO window, ending with the period) is exhausted (<= 0);
  its uptime over the period is below its availability objective; or a page-severity
  incident is open. A route without any valid probe in the period is reported as
  "without data" rather than as breaching or healthy.
- Changes compare the period with the same local wall-clock period one day and one week
  earlier. Lower latency and TTFT are better, higher uptime and tokens/s are better; spend
  going up or down is shown without a judgement.
- Token honesty (`usage_mismatch`): probes count the tokens of the generated text as they
  receive it (`counted_tokens`, tiktoken's encoding for OpenAI models, o200k as a proxy for
  others) and a result is flagged when reported / counted falls outside the band. Older
  rows without a count fall back to the length of the text (`output_chars`); the text
  itself is never stored, so the number of tokens it held is known only within a range:
  at most one token per character, at least one per MAX_CHARS_PER_TOKEN characters. A
  result is flagged when its reported completion tokens fall outside the configured band
  for every count in that range, i.e. when no honest tokenizer could have reported them.
  Hidden reasoning tokens may or may not have been streamed as text, so both readings are
  allowed. This catches gross over-counting (a relay billing 2x on short answers) and
  nonsense reports; it cannot see a 20% over-count of English prose.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from checker.alerting.slo import WindowCounts, budget_remaining, burn_rate
from checker.cost.counting import (
    MIN_TOKENS_FOR_RATIO,
    counted_usage_mismatch,
    estimate_tokens_from_chars,
)

# The longest ordinary token, in characters: o200k/cl100k tokens of text average about
# four characters and, outside long whitespace runs, rarely exceed eight.
MAX_CHARS_PER_TOKEN = 8
# Changes smaller than these are shown as "no change": noise, not news.
UPTIME_SAME_BELOW = 0.0005  # 0.05 percentage points
RELATIVE_SAME_BELOW = 0.05  # 5 %

Direction = Literal["up", "down", "same"]
Verdict = Literal["better", "worse", "same", "neutral"]


# --- the period ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """[since, until) as aware UTC datetimes, and the zone the reader lives in."""

    since: datetime
    until: datetime
    timezone: str
    label: str

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    @property
    def window_key(self) -> str:
        """The period length as a duration string the status query accepts, e.g. 82800s."""
        return f"{round(self.seconds)}s"

    @property
    def length_label(self) -> str:
        hours = self.hours
        return f"{hours:g}h" if hours == round(hours) else f"{hours:.1f}h"

    def local(self, at: datetime) -> datetime:
        return at.astimezone(ZoneInfo(self.timezone))

    def shifted(self, days: int) -> Period:
        """The same local wall-clock period `days` days earlier (negative) or later."""
        zone = ZoneInfo(self.timezone)
        utc = self.since.tzinfo

        def move(at: datetime) -> datetime:
            local = at.astimezone(zone).replace(tzinfo=None) + timedelta(days=days)
            return local.replace(tzinfo=zone).astimezone(utc)

        return Period(move(self.since), move(self.until), self.timezone, self.label)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("expected an aware datetime")
    return at.astimezone(ZoneInfo("UTC"))


def _fmt_local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def last_hours(now: datetime, timezone: str, hours: int = 24) -> Period:
    """The `hours` hours before `now` (what --preview/--send cover without --date)."""
    until = _utc(now)
    since = until - timedelta(hours=hours)
    zone = ZoneInfo(timezone)
    return Period(since, until, timezone, f"{hours} hours to {_fmt_local(until, zone)}")


def local_day(day: date, timezone: str) -> Period:
    """Local midnight to local midnight: 23 or 25 hours on a DST change day."""
    zone = ZoneInfo(timezone)
    since = datetime.combine(day, time(0), zone)
    until = datetime.combine(day + timedelta(days=1), time(0), zone)
    label = f"{day.isoformat()} ({timezone})"
    return Period(_utc(since), _utc(until), timezone, label)


def parse_day(text: str) -> date:
    """A --date value; ValueError with a readable message otherwise."""
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a date like 2025-03-30 (got {text!r})") from None


def send_time(day: date, at: str, timezone: str) -> datetime:
    """The scheduled send time of `day` (cfg.digest.at local time), in UTC.

    A wall-clock time that happens twice (the autumn change) means its first occurrence;
    one skipped by the spring change (02:30) means the earlier of its two readings, so a
    timer that fires anywhere after the gap still finds the digest due.
    """
    hour, minute = (int(part) for part in at.split(":"))
    local = datetime.combine(day, time(hour, minute), ZoneInfo(timezone))
    return min(_utc(local.replace(fold=0)), _utc(local.replace(fold=1)))


def scheduled_period(
    now: datetime, at: str, timezone: str, early_s: float = 60.0
) -> tuple[date, Period] | None:
    """(local day, period) of the digest due at `now`, or None before today's send time.

    The period is the 24 hours before the send time, even when the run is late (a restart
    catching up at 09:30 still reports up to 08:00), so a retried digest says the same.
    `early_s` forgives a timer that fires a moment early.
    """
    zone = ZoneInfo(timezone)
    day = _utc(now).astimezone(zone).date()
    due = send_time(day, at, timezone)
    if _utc(now) < due - timedelta(seconds=early_s):
        return None
    period = Period(
        due - timedelta(hours=24), due, timezone, f"24 hours to {_fmt_local(due, zone)}"
    )
    return day, period


# --- inputs (what the shell queried) ---------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Incident:
    rule_group: str
    severity: str
    rules: tuple[str, ...]
    opened_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class Hour:
    """One hour of the chart: counts and the median latency of its successful probes."""

    start: datetime
    valid: int
    good: int
    latency_p50: float | None


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
    incidents: Sequence[Incident] = ()
    hours: Sequence[Hour] = ()
    # One Usage per result, or distinct usages with their number of results.
    usage: Sequence[Usage] | Mapping[Usage, int] = ()
    error_details: Mapping[str, str] = field(default_factory=dict)


# --- output ----------------------------------------------------------------------------------


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
class HourBar:
    start: datetime
    label: str  # local hour, e.g. "08"
    uptime: float | None
    latency_p50: float | None
    height: float  # 0..1 of the chart height
    state: Literal["good", "degraded", "bad", "empty"]


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
    state: Literal["ok", "breaching", "no_data"]
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
    vs_day: list[Change]
    vs_week: list[Change]
    bars: list[HourBar]

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


@dataclass(frozen=True, slots=True)
class GroupRow:
    target: str
    uptime: float | None
    latency_p50: float | None
    ttft_p50: float | None
    workload_usd: float | None
    best: frozenset[str]  # columns where this route is best: uptime, latency, ttft, price


@dataclass(frozen=True, slots=True)
class ModelGroup:
    model: str
    rows: list[GroupRow]


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
    model_groups: list[ModelGroup]
    usage_band: tuple[float, float]

    @property
    def title(self) -> str:
        parts = []
        if self.breaching:
            parts.append(f"{len(self.breaching)} breaching")
        if self.no_data:
            parts.append(f"{len(self.no_data)} without data")
        return f"checker digest {self.period.label}: {', '.join(parts) or 'all good'}"


# --- pure helpers ----------------------------------------------------------------------------


def usage_out_of_band(usage: Usage, band: tuple[float, float]) -> bool | None:
    """True when no honest token count of the text fits the band; None if too small to judge.

    The text held between ceil(chars / MAX_CHARS_PER_TOKEN) and chars tokens; the reported
    visible tokens are completion minus any part of the hidden reasoning.
    """
    if usage.counted_tokens is not None:
        return counted_usage_mismatch(
            usage.completion_tokens, usage.reasoning_tokens, usage.counted_tokens, band
        )
    low, high = band
    chars = max(usage.output_chars, 0)
    reported_max = max(usage.completion_tokens, 0)
    reported_min = max(reported_max - max(usage.reasoning_tokens, 0), 0)
    if max(reported_max, chars) < MIN_TOKENS_FOR_RATIO:
        return None
    most_tokens = chars
    fewest_tokens = math.ceil(chars / MAX_CHARS_PER_TOKEN)
    over = reported_min > high * most_tokens
    under = reported_max < low * fewest_tokens
    return over or under


def weighted_median(values: Mapping[float, int]) -> float | None:
    """statistics.median of a list holding each value `n` times, without building it."""
    total = sum(values.values())
    if total <= 0:
        return None
    ordered = sorted((v, n) for v, n in values.items() if n > 0)
    wanted = (total - 1) // 2, total // 2  # the middle index (odd) or the two middle ones
    found: list[float] = []
    seen = 0
    for value, n in ordered:
        while len(found) < 2 and wanted[len(found)] < seen + n:
            found.append(value)
        seen += n
    low, high = found
    return low if total % 2 else (low + high) / 2


def token_honesty(
    usages: Sequence[Usage] | Mapping[Usage, int], band: tuple[float, float]
) -> TokenHonesty:
    """Checked and mismatched results; `usages` lists one Usage per result, or maps each
    distinct Usage to its number of results (usages repeat: same probe, same answer)."""
    counts = usages if isinstance(usages, Mapping) else Counter(usages)
    checked = mismatched = 0
    ratios: dict[float, int] = {}
    for usage, n in counts.items():
        verdict = usage_out_of_band(usage, band)
        if verdict is None or n <= 0:
            continue
        checked += n
        mismatched += n * verdict
        estimate = usage.counted_tokens or estimate_tokens_from_chars(usage.output_chars)
        if estimate > 0:
            ratio = usage.completion_tokens / estimate
            ratios[ratio] = ratios.get(ratio, 0) + n
    return TokenHonesty(checked, mismatched, weighted_median(ratios))


def compare(
    metric: str, current: float | None, previous: float | None, higher_is_better: bool | None
) -> Change:
    """One change; `higher_is_better` None means no judgement (spend)."""
    if current is None or previous is None:
        return Change(metric, current, previous, None, None, None)
    if metric == "uptime":
        delta = current - previous
        same = abs(delta) < UPTIME_SAME_BELOW
    else:
        if previous == 0:
            delta = 0.0 if current == 0 else math.inf
        else:
            delta = (current - previous) / abs(previous)
        same = abs(delta) < RELATIVE_SAME_BELOW
    if same:
        return Change(metric, current, previous, "same", "same", delta)
    direction: Direction = "up" if current > previous else "down"
    if higher_is_better is None:
        verdict: Verdict = "neutral"
    else:
        verdict = "better" if (direction == "up") == higher_is_better else "worse"
    return Change(metric, current, previous, direction, verdict, delta)


def changes(
    now: Figures, then: Figures | None, spend_now: float, spend_then: float
) -> list[Change]:
    if then is None or then.results == 0:
        return []
    return [
        compare("uptime", now.uptime, then.uptime, True),
        compare("latency p50", now.latency_p50, then.latency_p50, False),
        compare("latency p95", now.latency_p95, then.latency_p95, False),
        compare("TTFT p50", now.ttft_p50, then.ttft_p50, False),
        compare("tokens/s", now.tokens_per_s_p50, then.tokens_per_s_p50, True),
        compare("spend", spend_now, spend_then, None),
    ]


@functools.lru_cache(maxsize=1024)
def _hour_label(start: datetime, zone: ZoneInfo) -> str:
    # Every target's chart has the same hours: 200 targets format 24 labels, not 4,800.
    return start.astimezone(zone).strftime("%H")


def hour_bars(hours: Sequence[Hour], objective: float, zone: ZoneInfo) -> list[HourBar]:
    """Bar height: the hour's median latency against the day's slowest hour; colour: uptime.

    An hour whose probes all failed has no latency: it is drawn full height, in red.
    """
    slowest = max((h.latency_p50 for h in hours if h.latency_p50 is not None), default=None)
    bars = []
    for h in hours:
        uptime = h.good / h.valid if h.valid else None
        if uptime is None:
            state: Literal["good", "degraded", "bad", "empty"] = "empty"
            height = 0.0
        elif h.latency_p50 is None or not slowest:
            state, height = "bad", 1.0
        else:
            state = "good" if uptime >= objective else ("degraded" if uptime >= 0.9 else "bad")
            height = max(h.latency_p50 / slowest, 0.05)
        label = _hour_label(h.start, zone)
        bars.append(HourBar(h.start, label, uptime, h.latency_p50, height, state))
    return bars


def incident_lines(incidents: Sequence[Incident], period: Period) -> list[IncidentLine]:
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
        state: Literal["ok", "breaching", "no_data"] = "no_data"
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
        tokens=token_honesty(t.usage, band),
        vs_day=changes(t.figures, t.previous_day, t.spend.cost_usd, t.spend_previous_day.cost_usd),
        vs_week=changes(
            t.figures, t.previous_week, t.spend.cost_usd, t.spend_previous_week.cost_usd
        ),
        bars=hour_bars(t.hours, t.objective, zone),
    )


def _best(values: dict[str, float | None], lowest: bool) -> set[str]:
    known = {k: v for k, v in values.items() if v is not None}
    if len(known) < 2:
        return set()
    target = min(known.values()) if lowest else max(known.values())
    return {k for k, v in known.items() if v == target}


def model_groups(
    targets: Sequence[TargetDigest], keys: Mapping[str, str | None]
) -> list[ModelGroup]:
    """Routes serving the same model, best first: uptime, then latency, then price."""
    by_key: dict[str, list[TargetDigest]] = {}
    for t in targets:
        key = keys.get(t.name)
        if key:
            by_key.setdefault(key, []).append(t)
    groups = []
    for key, members in sorted(by_key.items()):
        if len(members) < 2:
            continue
        best = {
            "uptime": _best({m.name: m.uptime for m in members}, lowest=False),
            "latency": _best({m.name: m.latency_p50 for m in members}, lowest=True),
            "ttft": _best({m.name: m.ttft_p50 for m in members}, lowest=True),
            "price": _best({m.name: m.workload_usd for m in members}, lowest=True),
        }

        def order(m: TargetDigest) -> tuple[float, float, float, str]:
            return (
                -(m.uptime if m.uptime is not None else -1.0),
                m.latency_p50 if m.latency_p50 is not None else math.inf,
                m.workload_usd if m.workload_usd is not None else math.inf,
                m.name,
            )

        rows = [
            GroupRow(
                target=m.name,
                uptime=m.uptime,
                latency_p50=m.latency_p50,
                ttft_p50=m.ttft_p50,
                workload_usd=m.workload_usd,
                best=frozenset(col for col, names in best.items() if m.name in names),
            )
            for m in sorted(members, key=order)
        ]
        groups.append(ModelGroup(key, rows))
    return groups


def verdict_line(total: int, breaching: Sequence[str], no_data: Sequence[str]) -> str:
    routes = "route" if total == 1 else "routes"
    if not breaching and not no_data:
        return f"All good: {total} {routes} within their SLOs."
    parts = []
    if breaching:
        parts.append(f"{len(breaching)} of {total} {routes} breaching: {', '.join(breaching)}")
    else:
        parts.append(f"No route breaching, {total - len(no_data)} of {total} reporting")
    if no_data:
        parts.append(f"{len(no_data)} without data: {', '.join(no_data)}")
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
) -> DigestContext:
    zone = ZoneInfo(period.timezone)
    targets = [_target_digest(t, period, usage_band, zone) for t in inputs]
    breaching = [t.name for t in targets if t.state == "breaching"]
    no_data = [t.name for t in targets if t.state == "no_data"]
    workload = sorted(
        (WorkloadRow(t.name, t.model, t.workload_usd) for t in inputs),
        key=lambda r: (r.monthly_usd is None, r.monthly_usd or 0.0, r.target),
    )
    return DigestContext(
        period=period,
        generated_at=generated_at,
        verdict=verdict_line(len(targets), breaching, no_data),
        ok=not breaching and not no_data,
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
        model_groups=model_groups(targets, {t.name: t.model_key for t in inputs}),
        usage_band=usage_band,
    )
