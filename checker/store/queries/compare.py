"""Raw samples a route comparison needs beyond status(): TTFT values for the interval of a
difference, the usage counts behind the usage ratio, and the models a route answered as.

Read from raw rows only (the rollups keep sketches, not values): over a window longer than
the raw retention the samples cover its newest part, and each carries its own count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.store.plan import as_utc
from checker.store.queries.window import snapshot
from checker.store.tables import RAW

__all__ = ["SAMPLE_CAP", "RouteSamples", "cache_runs", "route_samples"]

# The newest this many results per route: enough for a tight interval, bounded memory.
SAMPLE_CAP = 5000


@dataclass
class RouteSamples:
    target: str
    ttft_ms: list[float] = field(default_factory=list)  # successful results, no maintenance
    # (reported completion, reported reasoning, counted in the streamed text) per result
    usage: list[tuple[int, int, int]] = field(default_factory=list)
    models: Counter[str] = field(default_factory=Counter)  # `model` the route answered as


def route_samples(
    engine: Engine,
    targets: Sequence[str],
    probe: str,
    since: datetime,
    until: datetime,
    cap: int = SAMPLE_CAP,
) -> dict[str, RouteSamples]:
    """Per target, the newest `cap` results of `probe` in [since, until)."""
    since, until = as_utc(since), as_utc(until)
    out = {t: RouteSamples(t) for t in dict.fromkeys(targets)}
    with engine.connect() as raw_conn:
        conn = snapshot(raw_conn)
        for target, samples in out.items():
            # One statement per target: each is an index range on (target, started_at).
            stmt = (
                sa.select(
                    RAW.ok,
                    RAW.ttft_ms,
                    RAW.completion_tokens,
                    RAW.reasoning_tokens,
                    RAW.counted_tokens,
                    RAW.model,
                )
                .where(
                    RAW.target == target,
                    RAW.probe == probe,
                    RAW.started_at >= since,
                    RAW.started_at < until,
                    RAW.maintenance == sa.false(),
                )
                .order_by(RAW.started_at.desc(), RAW.id.desc())
                .limit(cap)
            )
            for ok, ttft, completion, reasoning, counted, model in conn.execute(stmt):
                if ok and ttft is not None:
                    samples.ttft_ms.append(float(ttft))
                if completion is not None and counted is not None:
                    samples.usage.append((int(completion), int(reasoning or 0), int(counted)))
                if model:
                    samples.models[model] += 1
    return out


def cache_runs(engine: Engine, targets: Sequence[str], last: int) -> dict[str, tuple[int, int]]:
    """Per target that runs the cache probe: (runs with cached tokens, runs) over its last
    `last` successful cache-probe results."""
    out: dict[str, tuple[int, int]] = {}
    with engine.connect() as conn:
        for target in dict.fromkeys(targets):
            stmt = (
                sa.select(RAW.cached_tokens)
                .where(RAW.target == target, RAW.probe == "cache", RAW.ok == sa.true())
                .order_by(RAW.started_at.desc())
                .limit(last)
            )
            cached = [c for (c,) in conn.execute(stmt)]
            if cached:
                out[target] = (sum(1 for c in cached if c), len(cached))
    return out
