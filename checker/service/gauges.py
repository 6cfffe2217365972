"""The SLO gauges on /metrics: error budget left, burn rates, uptime over fixed windows.

Set after each evaluation round, from the window counts the round read for its rules.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from checker.alerting.slo import WindowCounts, budget_remaining, burn_rate
from checker.config.schema import Config
from checker.store.queries.counts import window_counts_many
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
        for label in UPTIME_WINDOWS:
            valid, bad = up[label].get(t.name, (0, 0))
            if valid:
                metrics.uptime.labels(t.name, label).set((valid - bad) / valid)


def _uptime_counts(
    engine: Engine, cfg: Config, windows: dict[str, float], now: datetime
) -> dict[str, dict[str, tuple[int, int]]]:
    names = [t.name for t in cfg.targets]
    return {
        label: window_counts_many(engine, names, now - timedelta(seconds=s), now)
        for label, s in windows.items()
    }
