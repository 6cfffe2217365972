"""The SLO gauges on /metrics: error budget left, burn rates, uptime over fixed windows.

Set after each evaluation round, from the window counts the round read for its rules.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from checker.alerting.slo import WindowCounts, budget_remaining, burn_rate
from checker.config.schema import Config
from checker.store.fleet_rounds import RoundCounts
from checker.store.queries.counts import probe_round_counts_many
from checker.units import format_duration
from checker.web.metrics import Metrics

__all__ = ["UPTIME_WINDOWS", "update_slo_gauges"]

UPTIME_WINDOWS = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}


async def update_slo_gauges(
    engine: Engine,
    metrics: Metrics,
    cfg: Config,
    counts: dict[str, dict[float, WindowCounts]],
    now: datetime,
) -> None:
    up = await asyncio.to_thread(_uptime_counts, engine, cfg, UPTIME_WINDOWS, now)
    rl = {t.name: cfg.slo(t).count_rate_limited for t in cfg.targets}
    for t in cfg.targets:
        slo = cfg.slo(t)
        mine = counts.get(t.name, {})
        if (total := mine.get(slo.window)) is not None:
            remaining = budget_remaining(total, slo.availability)
            if remaining is not None:
                metrics.budget.labels(t.name).set(remaining)
        for length, c in mine.items():
            rate = burn_rate(c, slo.availability)
            if rate is not None and length != slo.window:
                metrics.burn.labels(t.name, format_duration(length)).set(rate)
    for label, per_probe in up.items():
        # The SLO's uptime counts every probe of a target, in fleet rounds (as the SLO);
        # each probe's is its own series.
        per_target: dict[str, RoundCounts] = {}
        for (target, probe), n in per_probe.items():
            if target not in rl:
                continue
            if (probe_up := n.uptime(rl[target])) is not None:
                metrics.probe_uptime.labels(target, probe, label).set(probe_up)
            per_target.setdefault(target, RoundCounts()).add(n)
        for target, total_n in per_target.items():
            if (target_up := total_n.uptime(rl[target])) is not None:
                metrics.uptime.labels(target, label).set(target_up)


def _uptime_counts(
    engine: Engine, cfg: Config, windows: dict[str, float], now: datetime
) -> dict[str, dict[tuple[str, str], RoundCounts]]:
    names = [t.name for t in cfg.targets]
    return {
        label: probe_round_counts_many(engine, names, now - timedelta(seconds=s), now)
        for label, s in windows.items()
    }
