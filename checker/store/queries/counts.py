"""Result counts per target over a window, for SLO and burn-rate math, and today's spend.

Counted over every probe of a target: each is a request a user could have made (status
figures, by contrast, are per probe: checker.store.queries.status). The SLO's counts
(`window_counts_many`) are events in fleet rounds (checker.store.fleet_rounds): with one
location, every result; with several, one event per round in which several reported.
`probe_window_counts_many` counts every result of every location.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.store.db import one_of
from checker.store.fleet_counts import range_rounds, rolled_sums, round_rules
from checker.store.fleet_rounds import RoundCounts
from checker.store.plan import DAY, Range, WindowPlan, as_utc, floor_hour
from checker.store.queries.status import counts_by_probe
from checker.store.queries.window import Counts, Source, plan_for, read_window, snapshot
from checker.store.tables import RAW

__all__ = [
    "RoundMemo",
    "probe_round_counts_many",
    "probe_window_counts_many",
    "round_counts",
    "spend_since",
    "window_counts",
    "window_counts_many",
]

Key = tuple[str, str]  # (target, probe)
# A raw range's round counts by (since, until, targets): see round_counts.
RoundMemo = dict[tuple[datetime, datetime, tuple[str, ...]], dict[Key, RoundCounts]]
T = TypeVar("T")


def probe_window_counts_many(
    engine: Engine,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
) -> dict[Key, Counts]:
    """Counts per (target, probe) over [since, until): one pass for many targets."""
    return _per_probe(engine, targets, since, until, counts_by_probe)


def _per_probe(
    engine: Engine,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
    count: Callable[[Connection, Sequence[str], WindowPlan], dict[Key, T]],
) -> dict[Key, T]:
    """`count` over the plan of [since, until), read in one snapshot."""
    targets = list(dict.fromkeys(targets))
    if not targets:
        return {}
    since, until = as_utc(since), as_utc(until)
    with engine.connect() as raw_conn:
        conn = snapshot(raw_conn)
        return count(conn, targets, plan_for(conn, since, until, until - since >= DAY))


def _raw_pieces(ranges: Sequence[Range]) -> Iterator[Range]:
    """The ranges, each with its last partial hour apart: the raw tail that every window
    ending now shares, counted once per memo."""
    for since, until in ranges:
        last = floor_hour(until)
        if since < last < until:
            yield since, last
            yield last, until
        else:
            yield since, until


def round_counts(
    conn: Connection, targets: Sequence[str], plan: WindowPlan, memo: RoundMemo | None = None
) -> dict[Key, RoundCounts]:
    """Events in fleet rounds per (target, probe) over a plan: rollups sum their stored
    round counts, raw ranges count their rounds (checker.store.fleet_counts), so both give
    the same numbers for the same hours. `memo` keeps raw ranges' counts between windows
    that end at the same time (the evaluator's)."""

    def sums(source: Source) -> sa.Select[Any] | None:
        if not source.rolled_up:
            return None
        c = source.c
        return (
            sa.select(c.target, c.probe, *rolled_sums(c))
            .where(one_of(conn, c.target, targets))
            .group_by(c.target, c.probe)
        )

    out: dict[Key, RoundCounts] = {}
    for _, (target, probe, *values) in read_window(conn, plan, sums):
        out.setdefault((target, probe), RoundCounts()).add_values(values)
    rules = round_rules(conn, targets) if plan.raw else {}
    for since, until in _raw_pieces(plan.raw):
        piece = (since, until, tuple(targets))
        counted = memo.get(piece) if memo is not None else None
        if counted is None:
            counted = range_rounds(conn, since, until, targets, rules)
            if memo is not None:
                memo[piece] = counted
        for key, counts in counted.items():
            out.setdefault(key, RoundCounts()).add(counts)
    return out


def probe_round_counts_many(
    engine: Engine,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
    memo: RoundMemo | None = None,
) -> dict[Key, RoundCounts]:
    """Events in fleet rounds per (target, probe) over [since, until)."""
    return _per_probe(
        engine, targets, since, until, lambda conn, ts, plan: round_counts(conn, ts, plan, memo)
    )


def window_counts_many(
    engine: Engine,
    targets: Sequence[str],
    since: datetime,
    until: datetime,
    count_rate_limited: bool = True,
    memo: RoundMemo | None = None,
) -> dict[str, tuple[int, int]]:
    """(valid, bad) SLO events per target over [since, until), every probe counted, in
    fleet rounds. Pass one `memo` to the calls of one evaluation (same `until`)."""
    targets = list(dict.fromkeys(targets))
    per_target = {t: RoundCounts() for t in targets}
    rounds = probe_round_counts_many(engine, targets, since, until, memo)
    for (target, _), counts in rounds.items():
        per_target[target].add(counts)
    return {t: c.of(count_rate_limited) for t, c in per_target.items()}


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
