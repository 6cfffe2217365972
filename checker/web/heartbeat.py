"""Heartbeat bars (pure): the newest results of each probe of a target, one bar a result,
coloured by outcome, with the time and the error class in a tooltip (an HTML title, so no
script is needed). Flapping within a day shows as a striped row, which an uptime
percentage hides.

Imports no I/O module: the store's rows reach it through ResultLike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from checker.config.schema import Config, Target

__all__ = [
    "BEATS",
    "Beat",
    "Heartbeats",
    "Outcome",
    "ResultLike",
    "SlowRule",
    "heartbeat_rows",
    "heartbeats",
    "outcome",
    "slow_rule",
]

BEATS = 60  # results per probe row
Outcome = Literal["ok", "slow", "failed", "limited"]
_WORDS: dict[Outcome, str] = {
    "ok": "ok",
    "slow": "slow",
    "failed": "failed",
    "limited": "rate limited",
}


class ResultLike(Protocol):
    """One raw result (store.queries.page.RecentResult)."""

    @property
    def started_at(self) -> datetime: ...
    @property
    def ok(self) -> bool: ...
    @property
    def error(self) -> str | None: ...
    @property
    def latency_ms(self) -> float | None: ...
    @property
    def ttft_ms(self) -> float | None: ...
    @property
    def maintenance(self) -> bool: ...
    @property
    def location(self) -> str | None: ...


@dataclass(frozen=True)
class SlowRule:
    """A successful result is slow when this figure is above this threshold."""

    metric: Literal["ttft_ms", "latency_ms"]
    above_ms: float

    @property
    def name(self) -> str:
        return "TTFT" if self.metric == "ttft_ms" else "latency"


def slow_rule(cfg: Config, t: Target) -> SlowRule | None:
    """The target's latency objective (its SLO's), else its latency alert's threshold."""
    objective = cfg.slo(t).latency
    if objective is not None:
        if objective.ttft_ms is not None:
            return SlowRule("ttft_ms", objective.ttft_ms)
        if objective.latency_ms is not None:
            return SlowRule("latency_ms", objective.latency_ms)
    rule = cfg.alerts(t).latency
    if rule.p95_above_ms is not None:
        return SlowRule(rule.metric, rule.p95_above_ms)
    return None


def outcome(r: ResultLike, slow: SlowRule | None) -> Outcome:
    if r.error == "rate_limited":
        return "limited"
    if not r.ok:
        return "failed"
    value = getattr(r, slow.metric) if slow else None
    if slow and value is not None and value > slow.above_ms:
        return "slow"
    return "ok"


@dataclass(frozen=True)
class Beat:
    outcome: Outcome
    label: str  # the tooltip


@dataclass(frozen=True)
class Heartbeats:
    probe: str
    beats: tuple[Beat, ...]  # oldest first
    slots: int  # bars drawn: the row keeps BEATS slots, blank before the first result

    @property
    def blank(self) -> int:
        return self.slots - len(self.beats)

    @property
    def summary(self) -> str:
        """`last 60: 57 ok, 2 slow, 1 failed`: what the row rests on."""
        if not self.beats:
            return "no results yet"
        counts = Counter(b.outcome for b in self.beats)
        parts = [f"{counts[o]} {_WORDS[o]}" for o in _WORDS if counts[o]]
        return f"last {len(self.beats)}: " + ", ".join(parts)


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def _label(r: ResultLike, kind: Outcome, slow: SlowRule | None) -> str:
    # Results of every location share the row: the tooltip says whose each one is.
    where = f" from {r.location}" if r.location else ""
    parts = [f"{r.started_at:%Y-%m-%d %H:%M:%S} UTC{where}"]
    if kind == "failed":
        parts.append(f"failed: {r.error or 'error'}")
    elif kind == "limited":
        parts.append("rate limited")
    elif kind == "slow" and slow is not None:
        value = getattr(r, slow.metric)
        parts.append(f"slow: {slow.name} {_ms(value)} (over {_ms(slow.above_ms)})")
    else:
        figures = [f"latency {_ms(r.latency_ms)}"] if r.latency_ms is not None else []
        if r.ttft_ms is not None:
            figures.append(f"TTFT {_ms(r.ttft_ms)}")
        parts.append(", ".join(["ok", *figures]))
    if r.maintenance:
        parts.append("maintenance (not counted)")
    return " · ".join(parts)


def heartbeats(
    probe: str, results: Sequence[ResultLike], slow: SlowRule | None, slots: int = BEATS
) -> Heartbeats:
    """One probe's row from its newest results (oldest first); at most `slots` are kept."""
    kept = list(results)[-slots:] if slots else []
    beats = []
    for r in kept:
        kind = outcome(r, slow)
        beats.append(Beat(kind, _label(r, kind, slow)))
    return Heartbeats(probe, tuple(beats), slots)


def heartbeat_rows(
    cfg: Config, t: Target, recent: Mapping[tuple[str, str], Sequence[ResultLike]]
) -> tuple[Heartbeats, ...]:
    """A row per configured probe of the target, the primary one first."""
    slow = slow_rule(cfg, t)
    primary = t.primary  # a registry lookup each time it is read
    probes = [primary, *(p for p in t.probe_names if p != primary)]
    return tuple(heartbeats(p, recent.get((t.name, p), ()), slow) for p in probes)
