"""Window planning (pure): which parts of a window [since, until) are read from daily
rollups, hourly rollups and raw rows, given what is rolled up. No I/O: the caller passes
the rolled hours and days it read, and `now` where it matters.

Every read of a window (checker.store.queries) plans it here first, so the rollups and the
raw tail are split the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "DAY",
    "HOUR",
    "Range",
    "WindowPlan",
    "as_utc",
    "floor_day",
    "floor_hour",
    "hours_between",
    "joined",
    "plan_window",
]

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
Range = tuple[datetime, datetime]


def as_utc(t: datetime | str) -> datetime:
    """Aware UTC; naive means UTC. Also accepts ISO text (what some aggregates return)."""
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def floor_hour(t: datetime) -> datetime:
    return as_utc(t).replace(minute=0, second=0, microsecond=0)


def floor_day(t: datetime) -> datetime:
    return as_utc(t).replace(hour=0, minute=0, second=0, microsecond=0)


def hours_between(since: datetime, until: datetime) -> Iterable[datetime]:
    """Hour starts h with floor_hour(since) <= h < until."""
    h = floor_hour(since)
    while h < until:
        yield h
        h += HOUR


@dataclass(frozen=True)
class WindowPlan:
    """Where each part of a window is read from: hour starts from hourly rollups, day
    starts from daily rollups, time ranges from raw rows. Together they cover the window
    exactly once."""

    rollup: tuple[Range, ...]
    raw: tuple[Range, ...]
    daily: tuple[Range, ...] = ()


def _merge(ranges: list[Range]) -> tuple[Range, ...]:
    merged: list[Range] = []
    for start, end in ranges:
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def joined(ranges: Sequence[Range]) -> list[Range]:
    """Sorted, with touching or overlapping ranges joined: one statement each."""
    out: list[Range] = []
    for start, end in sorted(ranges):
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def plan_window(
    since: datetime,
    until: datetime,
    rolled: Mapping[datetime, bool],
    days: Collection[datetime] = (),
) -> WindowPlan:
    """Split [since, until) between daily rollups, hourly rollups and raw rows.

    `rolled` maps each rolled-up hour start to whether its raw rows were pruned; `days`
    lists the day starts that have daily rollups. A day is read whole from its daily rows
    when every one of its hours would otherwise come from hourly rollups.
    """
    hourly: list[datetime] = []
    raw: list[Range] = []
    for hour in hours_between(since, until):
        start, end = max(since, hour), min(until, hour + HOUR)
        whole = start == hour and end == hour + HOUR
        raw_pruned = rolled.get(hour)
        if raw_pruned is not None and (whole or raw_pruned):
            hourly.append(hour)
        else:
            raw.append((start, end))
    daily: list[Range] = []
    if days:
        from_rollups = set(hourly)
        for day in sorted(days):
            day_hours = {day + i * HOUR for i in range(24)}
            if day_hours <= from_rollups:
                daily.append((day, day + DAY))
                from_rollups -= day_hours
        hourly = sorted(from_rollups)
    return WindowPlan(_merge([(h, h + HOUR) for h in hourly]), _merge(raw), _merge(daily))
