"""Maintenance windows: when is a target in maintenance, and for how long (pure).

A window starts at every fire time of its 5-field crontab, evaluated in its time zone, and
lasts `duration` of elapsed time (a 2h window that spans a DST change is still 2 real
hours). Overlapping windows merge. Time is always passed in; nothing here reads a clock.

Crontab semantics, where APScheduler 3.x differs from cron:
- Day of week numbers follow crontab (see `checker.cron`, which parses the expressions).
- A wall-clock time that does not exist (skipped by a spring-forward change) starts the
  window at the same offset past the gap: 02:30 on a Europe/Berlin spring-forward day
  starts at 03:30 local.
- A wall-clock time that happens twice (the repeated hour of a fall-back change) starts a
  window once, at its first occurrence, like cron does for fixed-time jobs. Schedules whose
  minute or hour field starts with `*` (every N minutes or hours) keep firing by real time
  through the repeated hour, as cron does for them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from checker.alerting.state import as_utc
from checker.config.schema import Maintenance
from checker.cron import crontab_trigger

__all__ = ["Interval", "MaintenanceCalendar"]

_TINY = timedelta(microseconds=1)

Interval = tuple[datetime, datetime]


class _Window:
    """One configured maintenance entry with its trigger built once."""

    def __init__(self, spec: Maintenance) -> None:
        self.spec = spec
        self.zone = ZoneInfo(spec.timezone)
        self.trigger = crontab_trigger(spec.cron, spec.timezone)
        self.duration = timedelta(seconds=spec.duration)
        minute, hour = spec.cron.split()[:2]
        self.fixed_time = not (minute.startswith("*") or hour.startswith("*"))

    def applies_to(self, target: str) -> bool:
        return self.spec.targets is None or target in self.spec.targets

    def starts(self, since: datetime, until: datetime) -> Iterator[datetime]:
        """Window start instants (UTC) in [since, until)."""
        cursor = since
        while cursor < until:
            fire = self.trigger.get_next_fire_time(None, cursor)
            if fire is None:
                return
            fire = fire.astimezone(UTC)
            if fire >= until:
                return
            if not (self.fixed_time and self._repeated_wall_time(fire)):
                yield fire
            # Always step in UTC: wall-clock arithmetic on an aware local time loses `fold`
            # and can hand back the same fire time forever in the repeated hour.
            cursor = fire + _TINY

    def _repeated_wall_time(self, fire: datetime) -> bool:
        local = fire.astimezone(self.zone)
        return local.fold == 1 and local.replace(fold=0).astimezone(UTC) != fire

    def intervals(self, since: datetime, until: datetime) -> Iterator[Interval]:
        """Windows overlapping [since, until), clipped to it."""
        # A window that started up to `duration` ago is still open at `since`.
        for start in self.starts(since - self.duration + _TINY, until):
            end = start + self.duration
            if end > since:
                yield max(start, since), min(end, until)


def _merge(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class MaintenanceCalendar:
    """The configured maintenance windows, asked per target at a given time."""

    def __init__(self, windows: Sequence[Maintenance]) -> None:
        self._windows = [_Window(w) for w in windows]

    def _for(self, target: str) -> list[_Window]:
        return [w for w in self._windows if w.applies_to(target)]

    def active(self, target: str, at: datetime) -> bool:
        at = as_utc(at)
        return any(True for w in self._for(target) for _ in w.intervals(at, at + _TINY))

    def intervals(self, target: str, since: datetime, until: datetime) -> list[Interval]:
        """Merged maintenance intervals of a target within [since, until), in UTC, sorted.

        The store uses these to leave maintenance out of SLO counts.
        """
        since, until = as_utc(since), as_utc(until)
        if until <= since:
            return []
        return _merge([iv for w in self._for(target) for iv in w.intervals(since, until)])

    def overlap_seconds(self, target: str, since: datetime, until: datetime) -> float:
        """Seconds of [since, until) that the target spends in maintenance."""
        return sum((e - s).total_seconds() for s, e in self.intervals(target, since, until))

    def ends_at(self, target: str, at: datetime) -> datetime | None:
        """When the maintenance active at `at` ends (merged windows), None if not active."""
        at = as_utc(at)
        step = max((w.duration for w in self._for(target)), default=timedelta(0)) + _TINY
        cursor = at
        # Chained windows extend each other; look one window length ahead at a time, with a
        # bound so that a calendar that is always in maintenance still answers.
        for _ in range(1000):
            found = self.intervals(target, cursor, cursor + step)
            if not found or found[0][0] > cursor:
                return None if cursor == at else cursor
            end = found[0][1]
            if end < cursor + step:
                return end
            cursor = end
        return cursor
