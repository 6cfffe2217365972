"""The comparison of routes to the same model, from per-route figures (pure).

Per route, for one probe: n, uptime with its 95% Wilson interval, errors by kind, TTFT and
latency percentiles, decode speed (counted tokens), the TTFT it adds against the group's
reference (Hodges-Lehmann shift with its 95% interval), the usage ratio (reported /
counted output tokens: what a route bills per token it really streams), the real output
price and the reference workload's monthly cost at that ratio, flags, and a rank.

Flags: `over_reports_usage` (ratio above the band), `model_mismatch` (answers flagged as
another model), `slower` (the added-TTFT interval lies above 0), `less_available` (the
uptime interval lies below the reference's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from checker.compare.stats import (
    RouteFigures,
    difference_interval,
    indistinguishable_reason,
    median,
    rank,
    wilson_interval,
)
from checker.cost.counting import ratio_of_counts

__all__ = [
    "CACHE_RUNS",
    "FLAGS",
    "MIN_N",
    "CompareView",
    "GroupView",
    "RouteInputs",
    "RouteView",
    "build_view",
    "usage_ratio",
]

FLAGS = ("over_reports_usage", "model_mismatch", "slower", "less_available", "no_cache_hits")
# The cache probe's last this many runs without a single cached token: `no_cache_hits`.
CACHE_RUNS = 5
# Fewer probes than this and a comparison is reported as "not enough probes" in words.
MIN_N = 30
# Below this many TTFT samples on either side the difference interval is degenerate (for
# one against one it is a single point): no `slower` flag, only the note.
MIN_SAMPLES_FOR_FLAG = 10


def usage_ratio(usage: Sequence[tuple[int, int, int]]) -> float | None:
    """Median of reported / counted output tokens over results large enough to judge;
    hidden reasoning is taken off the reported side (it never streams as text)."""
    ratios = [
        r
        for completion, reasoning, counted in usage
        if (r := ratio_of_counts(completion, counted, reasoning)) is not None
    ]
    return median(ratios)


@dataclass(frozen=True)
class RouteInputs:
    """What the shell read for one route over the window (checker.compare.build)."""

    target: str
    group: str
    reference: bool
    n: int  # results of the probe in the window
    valid: int  # results that count for availability
    good: int
    errors: Mapping[str, int]
    ttft_ms: Mapping[str, float | None]
    latency_ms: Mapping[str, float | None]
    tokens_per_s_p50: float | None
    ttft_samples: Sequence[float]
    usage_ratio: float | None
    usage_samples: int
    output_per_mtok: float | None  # list or override price, USD per million output tokens
    workload_usd_per_month: float | None  # the reference workload at the usage ratio
    ttfo_ms: Mapping[str, float | None] = field(default_factory=dict)
    itl_ms: Mapping[str, float | None] = field(default_factory=dict)
    # The cache probe's last runs: (with cached tokens, runs); None: it runs no cache probe.
    cache_runs: tuple[int, int] | None = None


@dataclass(frozen=True)
class RouteView:
    target: str
    rank: int
    n: int
    uptime: float | None
    uptime_ci: tuple[float, float] | None
    ttft_ms: Mapping[str, float | None]
    latency_ms: Mapping[str, float | None]
    tokens_per_s_p50: float | None
    added_ttft_ms: dict[str, Any] | None
    usage_ratio: float | None
    usd_per_mtok_output: float | None
    workload_usd_per_month: float | None
    errors: Mapping[str, int]
    flags: list[str]
    notes: list[str] = field(default_factory=list)
    ttfo_ms: Mapping[str, float | None] = field(default_factory=dict)
    itl_ms: Mapping[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "rank": self.rank,
            "n": self.n,
            "uptime": self.uptime,
            "uptime_ci": list(self.uptime_ci) if self.uptime_ci else None,
            "ttft_ms": dict(self.ttft_ms),
            "latency_ms": dict(self.latency_ms),
            "ttfo_ms": dict(self.ttfo_ms),
            "itl_ms": dict(self.itl_ms),
            "tokens_per_s_p50": self.tokens_per_s_p50,
            "added_ttft_ms": self.added_ttft_ms,
            "usage_ratio": self.usage_ratio,
            "usd_per_mtok_output": self.usd_per_mtok_output,
            "workload_usd_per_month": self.workload_usd_per_month,
            "errors": dict(self.errors),
            "flags": list(self.flags),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class GroupView:
    model: str
    reference: str | None
    routes: list[RouteView]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "reference": self.reference,
            "routes": [r.to_json() for r in self.routes],
        }


@dataclass(frozen=True)
class CompareView:
    window: str
    probe: str
    groups: list[GroupView]

    def to_json(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "probe": self.probe,
            "groups": [g.to_json() for g in self.groups],
        }


def _added_ttft(route: RouteInputs, ref: RouteInputs | None) -> dict[str, Any] | None:
    if ref is None or route is ref:
        return None
    diff = difference_interval(route.ttft_samples, ref.ttft_samples)
    if diff is None:
        return {"p50": None, "ci": None, "n": len(route.ttft_samples), "n_reference": 0}
    return {
        "p50": diff.estimate,
        "ci": [diff.low, diff.high],
        "n": diff.n_x,
        "n_reference": diff.n_y,
    }


def _flags(
    route: RouteInputs,
    ref: RouteInputs | None,
    ci: tuple[float, float] | None,
    ref_ci: tuple[float, float] | None,
    added: dict[str, Any] | None,
    band: tuple[float, float],
) -> list[str]:
    flags = []
    if route.usage_ratio is not None and route.usage_ratio > band[1]:
        flags.append("over_reports_usage")
    if route.errors.get("model_mismatch", 0) > 0:
        flags.append("model_mismatch")
    if route.cache_runs is not None:
        hits, runs = route.cache_runs
        if runs >= CACHE_RUNS and hits == 0:
            flags.append("no_cache_hits")  # prompt caching promised, never delivered
    if ref is not None and route is not ref:
        if (
            added is not None
            and added["ci"] is not None
            and min(added["n"], added["n_reference"]) >= MIN_SAMPLES_FOR_FLAG
            and added["ci"][0] > 0
        ):
            flags.append("slower")
        if ci is not None and ref_ci is not None and ci[1] < ref_ci[0]:
            flags.append("less_available")
    return flags


def _notes(route: RouteInputs, added: dict[str, Any] | None) -> list[str]:
    notes = []
    if (reason := indistinguishable_reason(route.n, MIN_N)) is not None:
        notes.append(reason)
    if added is not None:
        ci = added["ci"]
        if ci is None:
            notes.append("no TTFT samples to compare with the reference")
        elif ci[0] <= 0 <= ci[1] or min(added["n"], added["n_reference"]) < MIN_SAMPLES_FOR_FLAG:
            notes.append(
                f"TTFT cannot be told apart from the reference yet "
                f"(n={added['n']} vs {added['n_reference']})"
            )
    if route.usage_ratio is None:
        notes.append("usage ratio unknown (no counted streams)")
    if route.cache_runs is not None and route.cache_runs[0] == 0:
        notes.append(f"no cached tokens in its last {route.cache_runs[1]} cache probes")
    return notes


def _group(name: str, members: Sequence[RouteInputs], band: tuple[float, float]) -> GroupView:
    ref = next((m for m in members if m.reference), None)
    cis = {m.target: wilson_interval(m.good, m.valid) for m in members}
    drafts = []
    for m in members:
        added = _added_ttft(m, ref)
        ref_ci = cis[ref.target] if ref is not None else None
        flags = _flags(m, ref, cis[m.target], ref_ci, added, band)
        real_price = (
            m.output_per_mtok * m.usage_ratio
            if m.output_per_mtok is not None and m.usage_ratio is not None
            else m.output_per_mtok
        )
        drafts.append((m, added, flags, real_price))
    ranks = rank(
        [
            RouteFigures(
                name=m.target,
                uptime_ci=cis[m.target],
                ttft_p50=m.ttft_ms.get("p50"),
                real_price=m.workload_usd_per_month
                if m.workload_usd_per_month is not None
                else price,
                flagged=bool(flags),
            )
            for m, _, flags, price in drafts
        ]
    )
    routes = [
        RouteView(
            target=m.target,
            rank=ranks[m.target],
            n=m.n,
            uptime=m.good / m.valid if m.valid else None,
            uptime_ci=cis[m.target],
            ttft_ms=dict(m.ttft_ms),
            latency_ms=dict(m.latency_ms),
            tokens_per_s_p50=m.tokens_per_s_p50,
            added_ttft_ms=added,
            usage_ratio=m.usage_ratio,
            usd_per_mtok_output=price,
            workload_usd_per_month=m.workload_usd_per_month,
            errors=dict(m.errors),
            flags=flags,
            notes=_notes(m, added),
            ttfo_ms=dict(m.ttfo_ms),
            itl_ms=dict(m.itl_ms),
        )
        for m, added, flags, price in drafts
    ]
    routes.sort(key=lambda r: r.rank)
    return GroupView(name, ref.target if ref else None, routes)


def build_view(
    window: str,
    probe: str,
    routes: Sequence[RouteInputs],
    band: tuple[float, float],
    only_group: str | None = None,
) -> CompareView:
    """Groups of two or more routes (any size when `only_group` names one), by name."""
    by_group: dict[str, list[RouteInputs]] = {}
    for r in routes:
        by_group.setdefault(r.group, []).append(r)
    groups = [
        _group(name, members, band)
        for name, members in sorted(by_group.items())
        if (only_group is None and len(members) >= 2) or name == only_group
    ]
    return CompareView(window, probe, groups)
