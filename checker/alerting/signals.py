"""What the alert rules read and what they say: rule names, signals, policy, verdicts.

The evaluator fills `Signals` from the store; each rule turns them into a `RuleStatus`
with the `Measurement`s a message shows. All plain data, no I/O (see `checker.alerting.rules`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from checker.alerting.slo import WindowCounts

if TYPE_CHECKING:
    from checker.alerting.drift_rule import Identity
from checker.config.schema import Alerts, Config, Slo, Target

__all__ = [
    "GROUPS",
    "PAGE_GROUP",
    "PAGE_RULES",
    "RULES",
    "TICKET_RULES",
    "ConfirmRequest",
    "Measurement",
    "Policy",
    "ProbeOutcome",
    "RuleStatus",
    "Severity",
    "Signals",
    "group_of",
    "rules_of",
    "severity_of",
]

Severity = Literal["page", "ticket"]

PAGE_RULES: tuple[str, ...] = ("down", "burn_page")
TICKET_RULES: tuple[str, ...] = (
    "latency",
    "burn_ticket",
    "budget",
    "spend",
    "cert",
    "billing",
    "rate_limited_hold",
    "location_down",
    "drift",
    "probe_cost",
)
RULES: tuple[str, ...] = PAGE_RULES + TICKET_RULES
PAGE_GROUP = "page"
# Evaluation order: fixed, so that notifications come out in the same order every time.
GROUPS: tuple[str, ...] = (PAGE_GROUP, *TICKET_RULES)


def group_of(rule: str) -> str:
    return PAGE_GROUP if rule in PAGE_RULES else rule


def rules_of(group: str) -> tuple[str, ...]:
    return PAGE_RULES if group == PAGE_GROUP else (group,)


def severity_of(group: str) -> Severity:
    return "page" if group == PAGE_GROUP else "ticket"


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """One valid probe result, as the down rule sees it."""

    at: datetime
    bad: bool
    error: str | None = None
    detail: str | None = None  # short and secret-free (ProbeResult.detail)
    location: str = ""  # the node's location that measured it ("" when unlabelled)
    cost_usd: float | None = None  # what the run cost (None: free or unpriced)


@dataclass(frozen=True, slots=True)
class Signals:
    """What the evaluator measured for one target; None means "not measured this time".

    recent: per probe, its latest valid results, oldest first; include results during
        maintenance (state is tracked through it). At least max(failures + 1, recoveries)
        per probe. A probe missing from the mapping is no longer configured.
    latency_values: the last `alerts.latency.last` values of `alerts.latency.metric`.
    windows: counts per window length in seconds, for `slo.required_windows(slo)`,
        maintenance excluded.
    """

    recent: Mapping[str, Sequence[ProbeOutcome]] | None = None
    latency_values: Sequence[float] | None = None
    windows: Mapping[float, WindowCounts] | None = None
    spend_today_usd: float | None = None
    cert_days_left: float | None = None
    in_maintenance: bool = False
    # The last `alerts.billing.last` streams with a local token count, oldest first:
    # (reported completion, reported reasoning, counted in the streamed text).
    usage: Sequence[tuple[int, int, int]] | None = None
    output_usd_per_mtok: float | None = None  # the target's list or override price
    # The length of the route's current Retry-After hold (0: not held): a route held longer
    # than `down` would take to page is failing nobody sees.
    rate_limit_hold_s: float | None = None
    # The route's identity fields, its baselines and its reference route's (drift rule).
    identity: Identity | None = None
    # Per probe, the most one run may cost before `probe_cost` fires (probes with a price).
    probe_cost_limits: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The effective alert settings of one target."""

    alerts: Alerts
    slo: Slo
    spend_cap_usd_per_day: float | None = None
    usage_band: tuple[float, float] = (0.8, 1.25)
    workload_output_tokens: int = 2_000_000  # digest.reference_workload, per month
    interval_s: float = 60.0

    @classmethod
    def for_target(cls, config: Config, target: Target) -> Policy:
        low, high = config.digest.usage_ratio_band
        return cls(
            config.alerts(target),
            config.slo(target),
            target.spend_cap_usd_per_day,
            (low, high),
            config.digest.reference_workload.output_tokens_per_month,
            config.interval(target),
        )


# --- measurements and statuses ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurement:
    """A measured value against the threshold it is compared with, for messages."""

    name: str  # consecutive_failures, p95_ttft_ms, burn_rate, budget_remaining, ...
    value: float | str | None
    threshold: float | None = None
    op: str | None = None  # the firing comparison: value OP threshold
    unit: str = ""
    scope: str | None = None  # probe name or burn window name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "op": self.op,
            "unit": self.unit,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Measurement:
        return cls(d["name"], d["value"], d["threshold"], d["op"], d["unit"], d["scope"])


@dataclass(frozen=True, slots=True)
class RuleStatus:
    rule: str
    firing: bool | None  # None: no data, keep the previous state
    measurements: tuple[Measurement, ...] = ()
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmRequest:
    """Run this probe once more now; its result decides whether `down` fires."""

    target: str
    probe: str
    dedup_key: str
