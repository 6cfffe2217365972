"""Pruning: raw rows older than raw retention and rollups older than rollup retention go,
and an hour is rolled up first when its raw rows are about to go (checker.store.rollup)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.store.plan import HOUR, as_utc, floor_day, floor_hour, hours_between
from checker.store.rollup import rollup_day, rollup_hour
from checker.store.tables import DAILY, RAW, RAW_TABLE, ROLLED, ROLLED_DAYS, ROLLUPS

__all__ = ["PruneResult", "prune"]


@dataclass(frozen=True)
class PruneResult:
    raw_deleted: int
    rollups_deleted: int  # hourly and daily rows
    hours_rolled: int  # hours rolled up first because their raw rows were going


def prune(
    engine: Engine, raw_retention_s: float, rollup_retention_s: float, now: datetime
) -> PruneResult:
    """Delete raw rows older than raw_retention_s and rollups older than rollup_retention_s.

    Before raw rows of an hour go, the hour is rolled up if it was not yet (unless the
    rollup would be pruned too). Raw rows are deleted one hour per transaction.
    """
    now = as_utc(now)
    raw_cutoff = now - timedelta(seconds=raw_retention_s)
    rollup_cutoff = floor_hour(now - timedelta(seconds=rollup_retention_s))
    raw_deleted = rolled = 0
    days: set[datetime] = set()
    with engine.connect() as conn:
        first = conn.execute(
            sa.select(sa.func.min(RAW.started_at)).where(RAW.started_at < raw_cutoff)
        ).scalar_one_or_none()
    if first is not None:
        for hour in hours_between(as_utc(first), raw_cutoff):
            keep_rollup = hour >= rollup_cutoff and hour + HOUR <= now
            if keep_rollup and not _is_rolled(engine, hour) and rollup_hour(engine, hour, now):
                rolled += 1
                days.add(floor_day(hour))
            with engine.begin() as conn:
                result = conn.execute(
                    sa.delete(RAW_TABLE).where(
                        RAW.started_at >= hour, RAW.started_at < min(hour + HOUR, raw_cutoff)
                    )
                )
                raw_deleted += max(result.rowcount, 0)
                if keep_rollup:
                    conn.execute(
                        ROLLED.update().where(ROLLED.c.hour == hour).values(raw_pruned=True)
                    )
    for day in sorted(days):
        rollup_day(engine, day, now)
    with engine.begin() as conn:
        hourly = conn.execute(ROLLUPS.delete().where(ROLLUPS.c.hour < rollup_cutoff))
        conn.execute(ROLLED.delete().where(ROLLED.c.hour < rollup_cutoff))
        # A day reaching back past the cutoff goes whole: daily rows only cover full days.
        daily = conn.execute(DAILY.delete().where(DAILY.c.day < rollup_cutoff))
        conn.execute(ROLLED_DAYS.delete().where(ROLLED_DAYS.c.day < rollup_cutoff))
    return PruneResult(raw_deleted, max(hourly.rowcount, 0) + max(daily.rowcount, 0), rolled)


def _is_rolled(engine: Engine, hour: datetime) -> bool:
    with engine.connect() as conn:
        found = conn.execute(sa.select(ROLLED.c.hour).where(ROLLED.c.hour == hour)).first()
    return found is not None
