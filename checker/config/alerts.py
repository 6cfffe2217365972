"""The config's `slo:` and `alerts:` sections: objectives and the rules that page on them.

Every section rejects unknown keys (Strict): a typo must never silently disable a check.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from checker.config.types import Duration, Fraction, Strict
from checker.units import parse_fraction

__all__ = ["Alerts", "BillingRule", "DownRule", "LatencyObjective", "LatencyRule", "Slo"]


class LatencyObjective(Strict):
    ttft_ms: float | None = Field(default=None, gt=0)
    latency_ms: float | None = Field(default=None, gt=0)
    objective: Fraction = 0.95

    @model_validator(mode="after")
    def _one_metric(self) -> LatencyObjective:
        if (self.ttft_ms is None) == (self.latency_ms is None):
            raise ValueError("set exactly one of ttft_ms or latency_ms")
        return self

    @property
    def metric(self) -> str:
        return "ttft_ms" if self.ttft_ms is not None else "latency_ms"

    @property
    def threshold_ms(self) -> float:
        return self.ttft_ms if self.ttft_ms is not None else float(self.latency_ms or 0)


class Slo(Strict):
    availability: Fraction = 0.995
    window: Duration = 30 * 86400.0
    latency: LatencyObjective | None = None
    # A relay that throttles you is down for you, so rate limits count as bad by default.
    count_rate_limited: bool = True
    # Low-traffic SLI guard: a burn window fires only with at least this many bad probes.
    min_bad: int = Field(default=3, ge=1)


class DownRule(Strict):
    failures: int = Field(default=3, ge=1)
    recoveries: int = Field(default=2, ge=1)
    confirm: bool = False
    # With several locations: how many of those reporting must find the probe down for the
    # fleet to page. A number of locations, or a share ("50%"); None: a majority.
    quorum: int | float | None = None
    # A location down while the fleet is not opens a `location_down` ticket.
    location_ticket: bool = True

    @field_validator("quorum", mode="before")
    @classmethod
    def _quorum(cls, v: object) -> object:
        expected = "expected a number of locations (1 or more) or a share like 50%"
        if v is None:
            return None
        if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 10_000:
            return v
        if v == "100%":
            return 1.0
        try:
            return parse_fraction(v)
        except ValueError:
            raise ValueError(f"{expected} (got {v!r})") from None

    def needed(self, reporting: int) -> int:
        """Locations that must be down, of `reporting`, for the fleet verdict."""
        if reporting <= 0:
            return 1
        q = self.quorum
        if q is None:
            need = reporting // 2 + 1
        elif isinstance(q, int):
            need = q
        else:
            need = math.ceil(q * reporting - 1e-9)
        return max(1, min(need, reporting))


class LatencyRule(Strict):
    metric: Literal["ttft_ms", "latency_ms"] = "ttft_ms"
    p95_above_ms: float | None = Field(default=None, gt=0)
    last: int = Field(default=20, ge=3)


class BillingRule(Strict):
    """Ticket when the median usage ratio (reported / counted output tokens) of the last
    `last` counted streams is outside `digest.usage_ratio_band`."""

    enabled: bool = True
    last: int = Field(default=10, ge=3)


class Alerts(Strict):
    down: DownRule = DownRule()
    latency: LatencyRule = LatencyRule()
    billing: BillingRule = BillingRule()
    burn: bool = True
    # A ticket when the route's fingerprint, returned model or identity signature changes.
    drift: bool = True
    budget_below: Fraction | None = 0.25
    cert_days: int | None = Field(default=14, ge=1)
    renotify: Duration = 4 * 3600.0
    flapping_opens_per_hour: int = Field(default=4, ge=2)
    # Which channel tags each rule goes to; unset rules keep their defaults.
    routes: dict[str, list[str]] = {}

    @field_validator("routes")
    @classmethod
    def _known_rules(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        known = {
            "down", "latency", "burn_page", "burn_ticket", "budget", "spend", "cert", "billing",
            "rate_limited_hold", "location_down", "drift", "probe_cost",
        }  # fmt: skip
        for rule in v:
            if rule not in known:
                raise ValueError(f"unknown rule {rule!r}; expected one of {sorted(known)}")
        return v
