"""The digest's period: which [since, until) a digest covers, and when it is due (pure).

A scheduled digest covers the 24 hours before its send time; without a date, the last 24
hours; with a date, that local calendar day in the digest time zone (23 or 25 hours long on
DST change days). Every function takes the time it needs as an argument: no clock here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["Period", "last_hours", "local_day", "parse_day", "scheduled_period", "send_time"]


@dataclass(frozen=True, slots=True)
class Period:
    """[since, until) as aware UTC datetimes, and the zone the reader lives in."""

    since: datetime
    until: datetime
    timezone: str
    label: str

    @property
    def seconds(self) -> float:
        return (self.until - self.since).total_seconds()

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    @property
    def window_key(self) -> str:
        """The period length as a duration string the status query accepts, e.g. 82800s."""
        return f"{round(self.seconds)}s"

    @property
    def length_label(self) -> str:
        hours = self.hours
        return f"{hours:g}h" if hours == round(hours) else f"{hours:.1f}h"

    def local(self, at: datetime) -> datetime:
        return at.astimezone(ZoneInfo(self.timezone))

    def shifted(self, days: int) -> Period:
        """The same local wall-clock period `days` days earlier (negative) or later."""
        zone = ZoneInfo(self.timezone)
        utc = self.since.tzinfo

        def move(at: datetime) -> datetime:
            local = at.astimezone(zone).replace(tzinfo=None) + timedelta(days=days)
            return local.replace(tzinfo=zone).astimezone(utc)

        return Period(move(self.since), move(self.until), self.timezone, self.label)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("expected an aware datetime")
    return at.astimezone(ZoneInfo("UTC"))


def _fmt_local(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def last_hours(now: datetime, timezone: str, hours: int = 24) -> Period:
    """The `hours` hours before `now` (what --preview/--send cover without --date)."""
    until = _utc(now)
    since = until - timedelta(hours=hours)
    zone = ZoneInfo(timezone)
    return Period(since, until, timezone, f"{hours} hours to {_fmt_local(until, zone)}")


def local_day(day: date, timezone: str) -> Period:
    """Local midnight to local midnight: 23 or 25 hours on a DST change day."""
    zone = ZoneInfo(timezone)
    since = datetime.combine(day, time(0), zone)
    until = datetime.combine(day + timedelta(days=1), time(0), zone)
    label = f"{day.isoformat()} ({timezone})"
    return Period(_utc(since), _utc(until), timezone, label)


def parse_day(text: str) -> date:
    """A --date value; ValueError with a readable message otherwise."""
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a date like 2025-03-30 (got {text!r})") from None


def send_time(day: date, at: str, timezone: str) -> datetime:
    """The scheduled send time of `day` (cfg.digest.at local time), in UTC.

    A wall-clock time that happens twice (the autumn change) means its first occurrence;
    one skipped by the spring change (02:30) means the earlier of its two readings, so a
    timer that fires anywhere after the gap still finds the digest due.
    """
    hour, minute = (int(part) for part in at.split(":"))
    local = datetime.combine(day, time(hour, minute), ZoneInfo(timezone))
    return min(_utc(local.replace(fold=0)), _utc(local.replace(fold=1)))


def scheduled_period(
    now: datetime, at: str, timezone: str, early_s: float = 60.0
) -> tuple[date, Period] | None:
    """(local day, period) of the digest due at `now`, or None before today's send time.

    The period is the 24 hours before the send time, even when the run is late (a restart
    catching up at 09:30 still reports up to 08:00), so a retried digest says the same.
    `early_s` forgives a timer that fires a moment early.
    """
    zone = ZoneInfo(timezone)
    day = _utc(now).astimezone(zone).date()
    due = send_time(day, at, timezone)
    if _utc(now) < due - timedelta(seconds=early_s):
        return None
    period = Period(
        due - timedelta(hours=24), due, timezone, f"24 hours to {_fmt_local(due, zone)}"
    )
    return day, period
