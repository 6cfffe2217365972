"""The threshold rules: burn rate (page and ticket), latency, error budget, spend, cert,
billing honesty.

Each compares one measured signal with its configured threshold; a signal that was not
measured this time (None) gives `firing=None`, so the rule keeps its previous state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from checker.alerting.signals import Measurement, Policy, RuleStatus, Signals
from checker.alerting.slo import budget_remaining, burn_rate, burn_windows, evaluate_burn
from checker.alerting.state import AlertState
from checker.cost.counting import ratio_of_counts

__all__ = [
    "billing_status",
    "budget_status",
    "burn_statuses",
    "cert_status",
    "hold_status",
    "latency_status",
    "probe_cost_status",
    "spend_status",
]


def burn_statuses(state: AlertState, signals: Signals, policy: Policy) -> list[RuleStatus]:
    slo = policy.slo
    windows = burn_windows(slo.window)
    if not policy.alerts.burn or not windows:
        return [RuleStatus("burn_page", False), RuleStatus("burn_ticket", False)]
    counts = signals.windows
    needed = {length for w in windows for length in (w.long_s, w.short_s)}
    if counts is None or not needed <= set(counts):
        return [RuleStatus("burn_page", None), RuleStatus("burn_ticket", None)]
    alerts = evaluate_burn(counts, slo)
    per_severity: dict[str, list[Measurement]] = {"page": [], "ticket": []}
    for w in windows:
        for length, which in ((w.long_s, "long"), (w.short_s, "short")):
            rate = burn_rate(counts[length], slo.availability)
            per_severity[w.severity].append(
                Measurement(f"burn_rate_{which}", rate, w.factor, ">", "x", w.name)
            )
    page = any(a.severity == "page" for a in alerts)
    ticket = any(a.severity == "ticket" for a in alerts)
    ticket_open = state.group("burn_ticket").incident is not None
    return [
        RuleStatus("burn_page", page, tuple(per_severity["page"])),
        RuleStatus("burn_ticket", ticket or (page and ticket_open), tuple(per_severity["ticket"])),
    ]


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def latency_status(signals: Signals, policy: Policy) -> RuleStatus:
    rule = policy.alerts.latency
    if rule.p95_above_ms is None:
        return RuleStatus("latency", False)
    values = signals.latency_values
    if values is None or len(values) < rule.last:
        return RuleStatus("latency", None)
    p95 = _p95(list(values)[-rule.last :])
    m = Measurement(f"p95_{rule.metric}", p95, rule.p95_above_ms, ">", "ms", f"last {rule.last}")
    return RuleStatus("latency", p95 > rule.p95_above_ms, (m,))


def budget_status(signals: Signals, policy: Policy) -> RuleStatus:
    level = policy.alerts.budget_below
    if level is None:
        return RuleStatus("budget", False)
    counts = None if signals.windows is None else signals.windows.get(policy.slo.window)
    remaining = None if counts is None else budget_remaining(counts, policy.slo.availability)
    if counts is None or remaining is None:
        return RuleStatus("budget", None)
    m = Measurement("budget_remaining", remaining, level, "<", "ratio")
    firing = remaining < level and counts.bad >= policy.slo.min_bad
    return RuleStatus("budget", firing, (m,))


def spend_status(signals: Signals, policy: Policy) -> RuleStatus:
    cap = policy.spend_cap_usd_per_day
    if cap is None:
        return RuleStatus("spend", False)
    if signals.spend_today_usd is None:
        return RuleStatus("spend", None)
    m = Measurement("spend_today", signals.spend_today_usd, cap, ">=", "USD")
    return RuleStatus("spend", signals.spend_today_usd >= cap, (m,))


def cert_status(signals: Signals, policy: Policy) -> RuleStatus:
    days = policy.alerts.cert_days
    if days is None:
        return RuleStatus("cert", False)
    if signals.cert_days_left is None:
        return RuleStatus("cert", None)
    m = Measurement("cert_days_left", signals.cert_days_left, days, "<=", "days")
    return RuleStatus("cert", signals.cert_days_left <= days, (m,))


def billing_status(signals: Signals, policy: Policy) -> RuleStatus:
    """Does the route bill the output tokens it streams? The median of reported / counted
    over the last `alerts.billing.last` counted streams, against the usage band."""
    rule = policy.alerts.billing
    if not rule.enabled:
        return RuleStatus("billing", False)
    usage = signals.usage
    if usage is None or len(usage) < rule.last:
        return RuleStatus("billing", None)
    last = list(usage)[-rule.last :]
    ratios = sorted(
        r for c, reasoning, n in last if (r := ratio_of_counts(c, n, reasoning)) is not None
    )
    if len(ratios) < rule.last // 2 + 1:  # most answers too short to judge
        return RuleStatus("billing", None)
    mid = len(ratios) // 2
    ratio = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
    low, high = policy.usage_band
    reported = sum(max(c - reasoning, 0) for c, reasoning, _ in last)
    counted = sum(n for _, _, n in last)
    scope = f"last {len(last)}"
    measurements = [
        Measurement("usage_ratio", ratio, high if ratio > high else low,
                    ">" if ratio > high else "<", "x", scope),
        Measurement("reported_output_tokens", reported, None, None, "tokens", scope),
        Measurement("counted_output_tokens", counted, None, None, "tokens", scope),
    ]  # fmt: skip
    price = signals.output_usd_per_mtok
    extra: float | str = (
        "price unknown"
        if price is None
        else policy.workload_output_tokens * (ratio - 1.0) * price / 1_000_000
    )
    measurements.append(
        Measurement("extra_cost_per_month", extra, None, None, "USD" if price is not None else "")
    )
    return RuleStatus("billing", not low <= ratio <= high, tuple(measurements))


def hold_status(signals: Signals, policy: Policy) -> RuleStatus:
    """A 429 hold longer than `down` would take to page (failures x interval): the route is
    not probed meanwhile, so whatever fails behind the rate limit would go unseen."""
    held = signals.rate_limit_hold_s
    if held is None:
        return RuleStatus("rate_limited_hold", None)
    limit = policy.alerts.down.failures * policy.interval_s
    m = Measurement("rate_limit_hold", held, limit, ">", "s")
    return RuleStatus("rate_limited_hold", held > limit, (m,))


def probe_cost_status(signals: Signals) -> RuleStatus:
    """A probe run that cost more than its limit (`probe_cost_max_usd`, default 10x its
    expected cost): a reasoning model thinking past max_tokens, or a relay over-billing.
    The spend cap (spend_cap_usd_per_day) is what then stops it; this says it happened."""
    limits, recent = signals.probe_cost_limits, signals.recent
    if limits is None or recent is None:
        return RuleStatus("probe_cost", None)
    measurements = []
    for probe, limit in sorted(limits.items()):
        priced = [o for o in recent.get(probe, ()) if o.cost_usd is not None]
        if priced and (cost := priced[-1].cost_usd) is not None and cost > limit:
            measurements.append(Measurement("probe_cost", cost, limit, ">", "USD", probe))
    detail = (
        "; ".join(
            f"one {m.scope} run cost ${m.value:.6f}, over its limit ${m.threshold:.6f}"
            for m in measurements
        )
        or None
    )
    return RuleStatus("probe_cost", bool(measurements), tuple(measurements), detail)
