"""window_sketches: pre-merged runs of days and hours change no answer, and a stale run is
never used."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.probes.base import ProbeResult
from checker.store.plan import floor_hour
from checker.store.queries import window_cache
from checker.store.queries.status import status
from checker.store.rollup import rollup_hours
from tests.fixtures_db import generate_results, store_results

NOW = datetime(2026, 6, 10, 15, 42, 7, tzinfo=UTC)
TARGETS = ["alpha", "beta", "gamma"]
WINDOWS = ("1h", "24h", "7d", "30d")


def _answer(engine: Engine, main_window: str = "30d") -> list[dict]:
    return [s.to_json() for s in status(engine, TARGETS, NOW, WINDOWS, main_window)]


def _cached_runs(engine: Engine) -> set[tuple[str, datetime, datetime]]:
    c = window_cache.CACHE.c
    with engine.connect() as conn:
        rows = conn.execute(sa.select(c.kind, c.since, c.until).distinct())
        return {(k, a.astimezone(UTC), b.astimezone(UTC)) for k, a, b in rows}


def _wanted(engine: Engine, now: datetime) -> set[tuple[str, datetime, datetime]]:
    with engine.connect() as conn:
        return window_cache.wanted_runs(conn, now)


def test_cached_days_give_the_same_answer_as_raw_rows(db_engine: Engine) -> None:
    items = generate_results(TARGETS, NOW - timedelta(days=9), NOW, step_s=900)
    store_results(db_engine, items)
    raw_only = {w: _answer(db_engine, w) for w in ("7d", "30d")}
    rollup_hours(db_engine, NOW - timedelta(days=10), NOW, now=NOW)
    window_cache.refresh(db_engine, NOW)  # the rollup job's second step
    # The rollup job left behind every run of days and hours the long windows read.
    runs = _cached_runs(db_engine)
    assert runs == _wanted(db_engine, NOW)
    today = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    assert ("day", today - timedelta(days=6), today) in runs  # the 7d window's whole days
    assert ("hour", today, floor_hour(NOW)) in runs  # today's whole hours
    with db_engine.connect() as conn:
        cached = window_cache.lookup(conn, "day", TARGETS, today - timedelta(days=6), today)
    assert cached is not None and set(cached) == {
        (t, p) for t in TARGETS for p in ("stream", "models")
    }
    for window, expected in raw_only.items():
        assert _answer(db_engine, window) == expected
    assert window_cache.refresh(db_engine, NOW) == 0  # nothing changed: nothing rebuilt


def test_a_re_rolled_day_invalidates_its_runs_until_refreshed(db_engine: Engine) -> None:
    items = generate_results(TARGETS, NOW - timedelta(days=8), NOW, step_s=900)
    store_results(db_engine, items)
    rollup_hours(db_engine, NOW - timedelta(days=9), NOW, now=NOW)
    window_cache.refresh(db_engine, NOW)  # the rollup job's second step
    today = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    first, last = today - timedelta(days=6), today
    # A late result lands in a rolled day; re-rolling its hour re-rolls the day.
    late_at = first + timedelta(days=2, hours=5, minutes=1)
    late = ProbeResult(target="beta", probe="stream", started_at=late_at, ok=False)
    late.error = "timeout"
    store_results(db_engine, [(late, False)])
    hour = floor_hour(late_at)
    rollup_hours(db_engine, hour, hour + timedelta(hours=1), now=NOW)
    window_cache.refresh(db_engine, NOW)  # the rollup job's second step
    with db_engine.connect() as conn:
        # The refresh after the rollup rebuilt the runs at once; a stale run is never used:
        stale = window_cache.version(conn, "day", first, last)
    assert window_cache.refresh(db_engine, NOW) == 0
    c = window_cache.CACHE.c
    with db_engine.begin() as conn:
        conn.execute(window_cache.CACHE.update().values(periods=c.periods - 1))
        assert window_cache.lookup(conn, "day", TARGETS, first, last) is None
        assert window_cache.lookup(conn, "hour", TARGETS, today, floor_hour(NOW)) is None
    answer = _answer(db_engine, "7d")
    beta = next(a for a in answer if a["target"] == "beta")
    expected_timeouts = sum(
        1
        for r, _ in [*items, (late, False)]
        if r.target == "beta"
        and r.probe == "stream"  # the headline probe's errors
        and r.error == "timeout"
        and r.started_at >= NOW - timedelta(days=7)
    )
    assert beta["errors"].get("timeout", 0) == expected_timeouts
    assert window_cache.refresh(db_engine, NOW) == len(_wanted(db_engine, NOW))
    with db_engine.connect() as conn:
        assert window_cache.version(conn, "day", first, last) == stale
        assert window_cache.lookup(conn, "day", TARGETS, first, last) is not None
    assert _answer(db_engine, "7d") == answer


def test_runs_of_earlier_days_are_dropped(db_engine: Engine) -> None:
    store_results(db_engine, generate_results(TARGETS, NOW - timedelta(days=4), NOW, step_s=1800))
    rollup_hours(db_engine, NOW - timedelta(days=5), NOW, now=NOW)
    window_cache.refresh(db_engine, NOW)  # the rollup job's second step
    before = _cached_runs(db_engine)
    later = NOW + timedelta(hours=30)
    window_cache.refresh(db_engine, later)
    assert _cached_runs(db_engine) == _wanted(db_engine, later)
    gone = before - _wanted(db_engine, later)
    assert gone  # e.g. the run of today's hours so far at NOW
    assert not gone & _cached_runs(db_engine)
