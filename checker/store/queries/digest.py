"""What the daily digest reads beyond status(): spend, incidents over a period, the
token-honesty usages and newest error details that the hourly rollups carry for whole
hours (queries.window reads the rest from raw rows), and whether there is anything to
report at all (`first_result_at`, `holds_results`: the scheduled send skips an empty
period).

Plain shapes (named tuples, tuple keys): checker.digest.build turns them into the digest
context's types, which the store does not import (the digest sits above it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.store.db import one_of
from checker.store.plan import DAY, HOUR, Range, WindowPlan, as_utc, joined
from checker.store.queries.window import Source, json_rows, plan_for, read_window, snapshot
from checker.store.rollup import USAGE_FIELDS, usage_filter
from checker.store.tables import DAILY, INCIDENTS, RAW, ROLLUPS

__all__ = [
    "SpendSums",
    "StoredIncident",
    "UsageAndErrors",
    "UsageKey",
    "first_result_at",
    "holds_results",
    "incidents_touching",
    "spend_many",
    "usage_and_error_details",
]

# (completion tokens, reasoning tokens, output chars, counted tokens or None)
UsageKey = tuple[int, int, int, int | None]


class SpendSums(NamedTuple):
    """Probe spend over a window: sums over results that carried a cost."""

    cost_usd: float
    cost_count: int
    prompt_tokens: int
    completion_tokens: int


class StoredIncident(NamedTuple):
    rule_group: str
    severity: str
    rules: tuple[str, ...]
    opened_at: datetime
    resolved_at: datetime | None


@dataclass
class UsageAndErrors:
    """Per target: distinct usages (token honesty) with their number of results, and the
    newest detail of each error kind."""

    usage: dict[str, Counter[UsageKey]]
    error_details: dict[str, dict[str, str]]


def first_result_at(engine: Engine) -> datetime | None:
    """When the first result still on record was stored (any target): the oldest raw row,
    rolled-up hour or rolled-up day; None when nothing was ever stored."""
    found = []
    with engine.connect() as conn:
        # The raw rows' minimum is one seek on their started_at index; the rollups (one row
        # per target, probe and hour or day) are scanned, once a day.
        for column in (RAW.started_at, ROLLUPS.c.hour, DAILY.c.day):
            first = conn.execute(sa.select(sa.func.min(column))).scalar()
            if first is not None:
                found.append(as_utc(first))
    return min(found, default=None)


def holds_results(engine: Engine, targets: Sequence[str], since: datetime, until: datetime) -> bool:
    """Whether any of `targets` has a stored result in [since, until), read over the window
    plan (rollups where the raw rows are gone); stops at the first row found."""
    since, until = as_utc(since), as_utc(until)
    if not targets:
        return False
    with engine.connect() as raw_conn:
        conn = snapshot(raw_conn)

        def any_row(source: Source) -> sa.Select[Any]:
            return sa.select(source.c.target).where(one_of(conn, source.c.target, targets)).limit(1)

        plan = plan_for(conn, since, until, with_days=False)
        return next(read_window(conn, plan, any_row), None) is not None


def spend_many(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> dict[str, SpendSums]:
    """Probe spend and tokens per target over [since, until), read over the window plan
    (daily rollups for a period of a day or more)."""
    since, until = as_utc(since), as_utc(until)
    if not targets:
        return {}
    cost = dict.fromkeys(targets, 0.0)
    counts = {t: [0, 0, 0] for t in targets}  # priced results, prompt and completion tokens
    with engine.connect() as raw_conn:
        conn = snapshot(raw_conn)

        def sums(source: Source) -> sa.Select[Any]:
            c = source.c
            priced = sa.func.sum(c.cost_count) if source.rolled_up else sa.func.count(c.cost_usd)
            return (
                sa.select(
                    c.target,
                    sa.func.sum(c.cost_usd),
                    priced,
                    sa.func.sum(c.prompt_tokens),
                    sa.func.sum(c.completion_tokens),
                )
                .where(one_of(conn, c.target, targets))
                .group_by(c.target)
            )

        plan = plan_for(conn, since, until, with_days=until - since >= DAY)
        for _, (target, dollars, *numbers) in read_window(conn, plan, sums):
            cost[target] += float(dollars or 0.0)
            for i, n in enumerate(numbers):
                counts[target][i] += int(n or 0)
    return {t: SpendSums(cost[t], *counts[t]) for t in targets}


def incidents_touching(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> dict[str, list[StoredIncident]]:
    """Incidents open at any moment of [since, until): opened before its end and not
    resolved before its start."""
    out: dict[str, list[StoredIncident]] = {t: [] for t in targets}
    c = INCIDENTS.c
    with engine.connect() as conn:
        query = sa.select(
            c.target, c.rule_group, c.severity, c.rules, c.opened_at, c.resolved_at
        ).where(
            one_of(conn, c.target, targets),
            c.opened_at < until,
            sa.or_(c.resolved_at.is_(None), c.resolved_at >= since),
        )
        for target, group, severity, rules, opened, resolved in conn.execute(query):
            out[target].append(
                StoredIncident(
                    rule_group=group,
                    severity=severity,
                    rules=tuple(rules or ()),
                    opened_at=as_utc(opened),
                    resolved_at=as_utc(resolved) if resolved is not None else None,
                )
            )
    return out


_Latest = dict[str, dict[str, tuple[datetime, str | None]]]


def _keep_newest(latest: _Latest, target: str, kind: str, at: datetime, detail: Any) -> None:
    # Later wins on a tie: rows arrive oldest first within each source.
    seen = latest[target].get(kind)
    if seen is None or at >= seen[0]:
        latest[target][kind] = (at, detail)


def usage_and_error_details(
    engine: Engine,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
    *,
    detail_max: int,
) -> UsageAndErrors:
    """Token-honesty usages and the newest error detail per kind (cut to `detail_max`
    characters), over [since, until).

    Whole rolled-up hours come from the rollups' `usage_counts` and `error_details`; the
    partial hours, the hours not rolled up yet, and hours rolled up before those columns
    existed (NULL) from raw rows. So a period older than raw retention has figures only for
    hours rolled up since migration 0005.
    """
    since, until = as_utc(since), as_utc(until)
    out = UsageAndErrors({t: Counter() for t in targets}, {t: {} for t in targets})
    latest: _Latest = {t: {} for t in targets}
    if not targets:
        return out
    with engine.connect() as raw_conn:
        conn = snapshot(raw_conn)
        plan = plan_for(conn, since, until, with_days=False)

        def per_hour(source: Source) -> sa.Select[Any]:
            c = source.c
            return sa.select(
                c.hour,
                c.target,
                sa.cast(c.usage_counts, sa.Text),
                sa.cast(c.error_details, sa.Text),
            ).where(one_of(conn, c.target, targets))

        hourly = WindowPlan(plan.rollup, ())
        rows = json_rows([row for _, row in read_window(conn, hourly, per_hour)], 2)
        # All rows of an hour are written by one rollup: NULL in one means NULL in all.
        missing = {as_utc(row[0]) for row in rows if row[2] is None or row[3] is None}
        for hour, target, counts, details in rows:
            if as_utc(hour) in missing:
                continue
            usage = out.usage[target]
            for completion, reasoning, chars, counted, n in counts:
                usage[(completion, reasoning or 0, chars, counted)] += n
            for kind, (at, detail) in details.items():
                _keep_newest(latest, target, kind, datetime.fromisoformat(at), detail)
        raw_ranges = joined([*plan.raw, *((max(since, h), min(until, h + HOUR)) for h in missing)])
        _raw_usage(conn, targets, raw_ranges, out.usage)
        _raw_error_details(conn, targets, raw_ranges, latest)
    for target, kinds in latest.items():
        for kind, (_, detail) in sorted(kinds.items()):
            if detail:
                out.error_details[target][kind] = detail[:detail_max]
    return out


def _raw_usage(
    conn: Connection,
    targets: Sequence[str],
    ranges: Sequence[Range],
    usage: dict[str, Counter[UsageKey]],
) -> None:
    # Grouped in SQL: a probe's answers repeat, so a day of 200 targets (288,000 rows) comes
    # back as a few thousand distinct rows.
    def grouped(source: Source) -> sa.Select[Any]:
        return (
            sa.select(RAW.target, *USAGE_FIELDS, sa.func.count())
            .where(one_of(conn, RAW.target, targets), usage_filter())
            .group_by(RAW.target, *USAGE_FIELDS)
        )

    for _, row in read_window(conn, WindowPlan((), tuple(ranges)), grouped):
        target, completion, reasoning, chars, counted, n = row
        usage[target][(int(completion), int(reasoning or 0), int(chars), counted)] += int(n)


def _raw_error_details(
    conn: Connection, targets: Sequence[str], ranges: Sequence[Range], latest: _Latest
) -> None:
    for start, end in ranges:
        newest = (
            sa.select(RAW.target, RAW.error, sa.func.max(RAW.started_at).label("at"))
            .where(
                one_of(conn, RAW.target, targets),
                RAW.started_at >= start,
                RAW.started_at < end,
                RAW.error.is_not(None),
            )
            .group_by(RAW.target, RAW.error)
            .subquery()
        )
        query = (
            sa.select(RAW.target, RAW.error, RAW.started_at, RAW.detail)
            .join(
                newest,
                sa.and_(
                    RAW.target == newest.c.target,
                    RAW.error == newest.c.error,
                    RAW.started_at == newest.c.at,
                ),
            )
            .order_by(RAW.started_at, RAW.id)
        )
        for target, error, at, detail in conn.execute(query):
            _keep_newest(latest, target, error, as_utc(at), detail)
