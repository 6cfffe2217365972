"""How many probes can be in flight at once, and so how many slots the service needs.

Pure arithmetic on the config. A probe job runs every `interval` and takes at most its
`timeout`; APScheduler starts a job again only when its previous run has finished (one
instance per job), so one job holds at most one slot, and on average min(1, timeout /
interval) of one when every run takes its whole timeout. Their sum over this location's
jobs is the number of runs that can be in flight at once: with fewer slots, a slow
route makes every other route's runs wait for a slot, then skip.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from checker.config.schema import Config, Target

__all__ = [
    "HEADROOM",
    "Shortfall",
    "concurrency_limit",
    "derived_limit",
    "in_flight_at_worst",
    "local_probes",
    "shortfall",
]

# Re-probes confirming a failure run outside the schedule and need slots too.
HEADROOM = 1.25


def local_probes(cfg: Config) -> Iterator[tuple[Target, str, float]]:
    """(target, probe, interval) of each probe job this location runs."""
    for t in cfg.targets:
        if t.locations is not None and cfg.location not in t.locations:
            continue  # another location's target: the leader still judges it
        for p in t.probe_names:
            yield t, p, cfg.interval(t)


def in_flight_at_worst(cfg: Config) -> float:
    """Runs in flight at once when every run takes its whole timeout."""
    return sum(min(1.0, cfg.timeout(t) / interval) for t, _p, interval in local_probes(cfg))


def _whole(x: float) -> int:
    """Rounded up, ignoring float noise in a sum (6 x 1/6 is 1, not 2)."""
    return math.ceil(x - 1e-9)


def derived_limit(cfg: Config) -> int:
    """The limit when `scheduler.max_concurrency` is not set: the worst case, with headroom."""
    return max(1, _whole(in_flight_at_worst(cfg) * HEADROOM))


def concurrency_limit(cfg: Config) -> int:
    """The slots the service gives probes: the config's, else derived from it."""
    explicit = cfg.scheduler.max_concurrency
    return explicit if explicit is not None else derived_limit(cfg)


@dataclass(frozen=True)
class Shortfall:
    """An explicit limit below what the config can have in flight at once."""

    limit: int
    needed: float  # runs in flight at once at worst
    per_minute: float  # probe runs a minute

    @property
    def mean_duration_s(self) -> float:
        """needed / rate: the timeout when all are alike (min(timeout, interval) each)."""
        return self.needed / (self.per_minute / 60)

    def __str__(self) -> str:
        return (
            f"scheduler.max_concurrency {self.limit:,} is below the "
            f"{_whole(self.needed):,} probes that can be in flight at once at "
            f"{self.per_minute:,.0f} probes/min x {self.mean_duration_s:.3g} s (each run "
            "taking up to its timeout); runs would wait for a slot and be skipped: raise "
            "it, or leave it unset to derive it from the config"
        )


def shortfall(cfg: Config) -> Shortfall | None:
    """The shortfall of an explicit `scheduler.max_concurrency`, if any."""
    limit = cfg.scheduler.max_concurrency
    if limit is None:
        return None
    needed = in_flight_at_worst(cfg)
    if limit >= _whole(needed):
        return None
    per_minute = sum(60 / interval for _t, _p, interval in local_probes(cfg))
    return Shortfall(limit, needed, per_minute)
