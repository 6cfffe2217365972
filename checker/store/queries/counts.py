"""Result counts per target over a window, for SLO and burn-rate math, and today's spend.

Counted over every probe of a target: each is a request a user could have made (status
figures, by contrast, are per probe: checker.store.queries.status).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.store.plan import DAY, as_utc
from checker.store.queries.status import counts_by_probe
from checker.store.queries.window import Counts, plan_for, snapshot
from checker.store.tables import RAW

__all__ = ["probe_window_counts_many", "spend_since", "window_counts", "window_counts_many"]


def probe_window_counts_many(
    engine: Engine,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
) -> dict[tuple[str, str], Counts]:
    """Counts per (target, probe) over [since, until): one pass for many targets."""
    targets = list(dict.fromkeys(targets))
    if not targets:
        return {}
    since, until = as_utc(since), as_utc(until)
    with engine.connect() as raw_conn:
        conn = snapshot(raw_conn)
        return counts_by_probe(conn, targets, plan_for(conn, since, until, until - since >= DAY))


def window_counts_many(
    engine: Engine,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
    count_rate_limited: bool = True,
) -> dict[str, tuple[int, int]]:
    """(valid, bad) per target over [since, until), every probe counted."""
    targets = list(dict.fromkeys(targets))
    counts = probe_window_counts_many(engine, targets, since, until)
    per_target = {t: Counts() for t in targets}
    for (target, _), c in counts.items():
        per_target[target].add(c.total, c.maintenance, c.sli_ok, c.sli_rate_limited)
    return {
        t: (c.valid(count_rate_limited), c.bad(count_rate_limited)) for t, c in per_target.items()
    }


def window_counts(
    engine: Engine, target: str, since: datetime, until: datetime, count_rate_limited: bool = True
) -> tuple[int, int]:
    """(valid, bad) probes of one target over [since, until), for SLO and burn-rate math."""
    return window_counts_many(engine, [target], since, until, count_rate_limited)[target]


def spend_since(engine: Engine, since: datetime) -> dict[str, float]:
    """USD spent on probes per target since `since` (raw rows: meant for today's spend cap)."""
    rows_since = as_utc(since)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(RAW.target, sa.func.sum(RAW.cost_usd))
            .where(RAW.started_at >= rows_since, RAW.cost_usd.is_not(None))
            .group_by(RAW.target)
        )
        return {target: float(total or 0.0) for target, total in rows}
