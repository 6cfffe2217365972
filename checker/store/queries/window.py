"""The one read of a window: a plan (checker.store.plan) says which ranges come from daily
rollups, hourly rollups and raw rows; `read_window` runs one statement per source over its
ranges. Every query over a window (status counts and percentiles, hourly series, per-day
uptime, spend, usages) is a `read_window` with its own statements.

Counts are exact in every source; the rollups hold the same sums the raw rows would give
(checker.store.rollup), so where a range is read from changes no answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from checker.probes.base import ErrorKind
from checker.store.plan import Range, WindowPlan, as_utc, floor_day, floor_hour, plan_window
from checker.store.tables import DAILY, RAW, ROLLED, ROLLED_DAYS, ROLLUPS

__all__ = [
    "DAY_ROWS",
    "HOUR_ROWS",
    "RAW_ROWS",
    "Counts",
    "Memo",
    "Source",
    "count_sums",
    "json_rows",
    "per_range",
    "plan_for",
    "read_window",
    "rolled_days",
    "rolled_hours",
    "snapshot",
]

_RATE_LIMITED = ErrorKind.rate_limited.value


@dataclass(frozen=True)
class Source:
    """One place a window's results are read from: its columns and the column a time
    range applies to."""

    name: str  # "hour", "day" or "raw"
    c: Any
    period: Any

    @property
    def rolled_up(self) -> bool:
        return self.name != "raw"


HOUR_ROWS = Source("hour", ROLLUPS.c, ROLLUPS.c.hour)
DAY_ROWS = Source("day", DAILY.c, DAILY.c.day)
RAW_ROWS = Source("raw", RAW, RAW.started_at)

Memo = dict[tuple[str, Range], list[Any]]  # rows by (source, range)
Statement = Callable[[Source], "sa.Select[Any] | None"]


@dataclass
class Counts:
    """Result counts of one target over one window."""

    total: int = 0
    maintenance: int = 0
    sli_ok: int = 0
    sli_rate_limited: int = 0

    def add(self, total: Any, maintenance: Any, sli_ok: Any, sli_rate_limited: Any) -> None:
        self.total += int(total or 0)
        self.maintenance += int(maintenance or 0)
        self.sli_ok += int(sli_ok or 0)
        self.sli_rate_limited += int(sli_rate_limited or 0)

    def valid(self, count_rate_limited: bool = True) -> int:
        valid = self.total - self.maintenance
        return valid if count_rate_limited else valid - self.sli_rate_limited

    def bad(self, count_rate_limited: bool = True) -> int:
        return self.valid(count_rate_limited) - self.sli_ok

    def uptime(self, count_rate_limited: bool = True) -> float | None:
        valid = self.valid(count_rate_limited)
        return self.sli_ok / valid if valid > 0 else None


def count_sums(source: Source) -> tuple[Any, Any, Any, Any]:
    """(total, maintenance, sli_ok, sli_rate_limited) aggregates of `source`, in the order
    Counts.add takes them: rollups sum their counts, raw rows count themselves."""
    c = source.c
    if source.rolled_up:
        return (
            sa.func.sum(c.total),
            sa.func.sum(c.maintenance_count),
            sa.func.sum(c.sli_ok_count),
            sa.func.sum(c.sli_rate_limited_count),
        )
    outside = c.maintenance == sa.false()
    return (
        sa.func.count(),
        sa.func.sum(sa.case((outside, 0), else_=1)),
        sa.func.sum(sa.case((sa.and_(outside, c.ok == sa.true()), 1), else_=0)),
        sa.func.sum(sa.case((sa.and_(outside, c.error == _RATE_LIMITED), 1), else_=0)),
    )


def snapshot(conn: Connection) -> Connection:
    """The connection to read one answer through. One snapshot for the whole answer on
    PostgreSQL, so a rollup committed between two statements cannot count an hour twice
    or not at all."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def per_range(
    conn: Connection, stmt: sa.Select[Any], column: Any, ranges: Sequence[Range]
) -> Iterator[Any]:
    """Run `stmt` once per time range and chain the rows.

    One statement per range, never an OR of ranges: with OR, SQLite stops using the time
    part of the (target, time) index and reads every row of every target, which over
    months of raw results is exactly the scan this module exists to avoid.
    """
    for start, end in ranges:
        # .all(): one fetchall from the driver instead of a fetchone per row.
        yield from conn.execute(stmt.where(column >= start, column < end)).all()


def read_window(
    conn: Connection, plan: WindowPlan, statement: Statement, memo: Memo | None = None
) -> Iterator[tuple[Source, Any]]:
    """(source, row) for every row `statement(source)` returns over the plan's ranges of
    that source: hourly rollups, then daily rollups, then raw rows (a fixed order, so float
    sums come out the same every time). `statement` returns None to skip a source.

    `memo` shares the rows of a range between reads with the same statements (the windows
    of one status() call all end at the same raw tail: read once, not four times).
    """
    for source, ranges in ((HOUR_ROWS, plan.rollup), (DAY_ROWS, plan.daily), (RAW_ROWS, plan.raw)):
        stmt = statement(source) if ranges else None
        if stmt is None:
            continue
        for span in ranges:
            key = (source.name, span)
            rows = memo.get(key) if memo is not None else None
            if rows is None:
                rows = list(per_range(conn, stmt, source.period, [span]))
                if memo is not None:
                    memo[key] = rows
            for row in rows:
                yield source, row


def rolled_hours(conn: Connection, since: datetime, until: datetime) -> dict[datetime, bool]:
    """The rolled-up hour starts in [floor_hour(since), until) -> whether their raw rows
    were pruned."""
    rows = conn.execute(
        sa.select(ROLLED.c.hour, ROLLED.c.raw_pruned).where(
            ROLLED.c.hour >= floor_hour(since), ROLLED.c.hour < until
        )
    )
    return {as_utc(hour): bool(pruned) for hour, pruned in rows}


def rolled_days(conn: Connection, since: datetime, until: datetime) -> set[datetime]:
    """The day starts in [floor_day(since), until) that have daily rollups."""
    rows = conn.execute(
        sa.select(ROLLED_DAYS.c.day).where(
            ROLLED_DAYS.c.day >= floor_day(since), ROLLED_DAYS.c.day < until
        )
    )
    return {as_utc(day) for (day,) in rows}


def plan_for(conn: Connection, since: datetime, until: datetime, with_days: bool) -> WindowPlan:
    """The plan of [since, until) from what is rolled up now; daily rollups only when
    `with_days` (a window of a day or more)."""
    days = rolled_days(conn, since, until) if with_days else set()
    return plan_window(since, until, rolled_hours(conn, since, until), days)


def json_rows(rows: Sequence[Sequence[Any]], first: int) -> list[list[Any]]:
    """The rows with their columns from `first` on JSON-decoded (text or None), in one
    json.loads: thousands of small calls cost a third more."""
    if not rows:
        return []
    width = len(rows[0]) - first
    texts = [text or "null" for row in rows for text in row[first:]]
    docs = json.loads("[" + ",".join(texts) + "]")
    return [[*row[:first], *docs[i * width : (i + 1) * width]] for i, row in enumerate(rows)]
