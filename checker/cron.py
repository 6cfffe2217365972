"""Crontab expressions: parse a 5-field crontab into an APScheduler trigger (pure).

The bottom layer for schedules: config validates `maintenance[].cron` here and the
maintenance calendar builds its triggers here, so neither imports the other.

Crontab semantics, where APScheduler 3.x differs from cron: day of week numbers follow
crontab (0 and 7 are Sunday, 1 is Monday; APScheduler 3.x would read 0 as Monday). Names
(`sun`, `mon-fri`) mean the same everywhere.
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

__all__ = ["crontab_day_of_week", "crontab_trigger"]

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_PART = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")


def _day_number(token: str) -> int:
    """Crontab day number (0-6, Sunday 0) from a number 0-7 or an English day name."""
    if token.isdigit():
        number = int(token)
        if not 0 <= number <= 7:
            raise ValueError(f"day of week {token} is not 0-7")
        return number % 7
    return _DAY_NAMES.index(token[:3])


def crontab_day_of_week(field: str) -> str:
    """Translate a crontab day-of-week field into explicit names APScheduler reads alike.

    `0` -> `sun`, `1-5` -> `mon,tue,wed,thu,fri`, `*/2` -> `sun,tue,thu,sat`.
    """
    field = field.strip().lower()
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        m = _DOW_PART.match(part)
        if not m:
            raise ValueError(f"cannot read day of week {part!r}")
        base, step = m.group(1), int(m.group(2) or 1)
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            a, b = base.split("-")
            # `7` as a range end means Sunday at the end of the week: 5-7 is fri,sat,sun.
            first, last = _day_number(a), (7 if b == "7" else _day_number(b))
        else:
            first = last = _day_number(base)
            if step > 1:  # `1/2` means from 1 to the end of the week, every 2nd day
                last = 6
        if last < first:
            raise ValueError(f"day of week range {base!r} runs backwards")
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def crontab_trigger(expr: str, timezone: str) -> CronTrigger:
    """APScheduler CronTrigger with crontab's day-of-week numbering."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"expected 5 crontab fields, got {len(fields)}")
    minute, hour, day, month, dow = fields
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_day_of_week(dow),
        timezone=ZoneInfo(timezone),
    )
