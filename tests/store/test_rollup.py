"""Hourly rollups against the raw rows they summarize; idempotence; pruning."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.probes.base import ErrorKind, ProbeResult
from checker.store.plan import DAY, HOUR, floor_day, floor_hour
from checker.store.prune import prune
from checker.store.queries.counts import window_counts
from checker.store.rollup import rollup_due, rollup_hours
from checker.store.sketch import ALPHA, Sketch
from checker.store.tables import DAILY, ROLLED, ROLLED_DAYS, ROLLUPS
from tests.fixtures_db import generate_results, store_results

NOW = datetime(2026, 4, 20, 10, 41, 7, tzinfo=UTC)
TARGETS = ["alpha", "beta", "gamma"]


def exact_lower(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def close(estimate: float | None, exact: float) -> bool:
    return estimate is not None and abs(estimate - exact) <= ALPHA * exact * (1 + 1e-9)


def rollup_rows(engine: Engine) -> dict[tuple, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ROLLUPS)).mappings().all()
    return {(r["hour"], r["target"], r["probe"], r["location"]): dict(r) for r in rows}


def key_of(result: ProbeResult) -> tuple:
    return (floor_hour(result.started_at), result.target, result.probe, result.location or "")


def test_rollups_match_raw_rows(db_engine: Engine) -> None:
    start = NOW - timedelta(hours=30)
    items = generate_results(TARGETS, start, NOW, step_s=120)
    store_results(db_engine, items)
    assert rollup_hours(db_engine, start, NOW, now=NOW) == 30  # hour 10:00 is not complete

    groups: dict[tuple, list[tuple[ProbeResult, bool]]] = defaultdict(list)
    for r, maint in items:
        if r.started_at < floor_hour(NOW):
            groups[key_of(r)].append((r, maint))
    rows = rollup_rows(db_engine)
    assert set(rows) == set(groups)

    for key, members in groups.items():
        row = rows[key]
        results = [r for r, _ in members]
        outside = [r for r, m in members if not m]
        assert row["total"] == len(results)
        assert row["ok_count"] == sum(r.ok for r in results)
        assert row["maintenance_count"] == len(results) - len(outside)
        assert row["sli_ok_count"] == sum(r.ok for r in outside)
        assert row["sli_rate_limited_count"] == sum(
            r.error is ErrorKind.rate_limited for r in outside
        )
        assert row["errors"] == dict(Counter(r.error.value for r in results if r.error))
        assert math.isclose(row["cost_usd"], sum(r.cost_usd or 0 for r in results))
        assert row["cost_count"] == sum(r.cost_usd is not None for r in results)
        assert row["completion_tokens"] == sum(r.completion_tokens or 0 for r in results)
        assert row["cached_tokens"] == sum(r.cached_tokens or 0 for r in results)
        good = [r for r in outside if r.ok]
        for column, field in (("latency_sketch", "latency_ms"), ("ttft_sketch", "ttft_ms")):
            values = [getattr(r, field) for r in good if getattr(r, field) is not None]
            sketch = Sketch.from_json(row[column])
            assert sketch.count == len(values)
            if values:
                assert close(sketch.quantile(0.95), exact_lower(values, 0.95))

    # Summed over the day, rollups and raw rows give the same uptime and percentiles.
    for target in TARGETS:
        mine = [(r, m) for r, m in items if r.target == target and r.started_at < floor_hour(NOW)]
        valid = [r for r, m in mine if not m]
        exact_uptime = sum(r.ok for r in valid) / len(valid)
        target_rows = [row for key, row in rows.items() if key[1] == target]
        rolled_uptime = sum(row["sli_ok_count"] for row in target_rows) / sum(
            row["total"] - row["maintenance_count"] for row in target_rows
        )
        assert rolled_uptime == exact_uptime
        merged = Sketch()
        for row in target_rows:
            merged.merge_json(row["latency_sketch"])
        latencies = [r.latency_ms for r in valid if r.ok and r.latency_ms is not None]
        for q in (0.5, 0.95, 0.99):
            assert close(merged.quantile(q), exact_lower(latencies, q))


def test_rerunning_replaces_rows_and_picks_up_late_results(db_engine: Engine) -> None:
    hour = floor_hour(NOW) - 3 * HOUR
    store_results(db_engine, generate_results(TARGETS, hour - HOUR, hour + HOUR, step_s=60))
    rollup_hours(db_engine, hour, hour + HOUR, now=NOW)
    first = rollup_rows(db_engine)
    rollup_hours(db_engine, hour, hour + HOUR, now=NOW)
    again = rollup_rows(db_engine)
    strip = {k: {c: v for c, v in row.items() if c != "id"} for k, row in first.items()}
    assert {k: {c: v for c, v in row.items() if c != "id"} for k, row in again.items()} == strip
    assert {k[0] for k in first} == {hour}  # only the hour asked for

    late = ProbeResult(target="alpha", probe="stream", started_at=hour + timedelta(minutes=59))
    late.fail(ErrorKind.timeout, "late")
    store_results(db_engine, [(late, False)])
    rollup_hours(db_engine, hour, hour + HOUR, now=NOW)
    rows = rollup_rows(db_engine)
    key = (hour, "alpha", "stream", "")
    before = first.get(key, {"total": 0, "errors": {}})
    assert rows[key]["total"] == before["total"] + 1
    assert rows[key]["errors"].get("timeout", 0) == before["errors"].get("timeout", 0) + 1


def test_rollup_due_rolls_settled_hours_and_recent_ones_again(db_engine: Engine) -> None:
    assert rollup_due(db_engine, NOW) == 0  # nothing stored yet
    store_results(db_engine, generate_results(TARGETS, NOW - timedelta(hours=5), NOW))
    # 10:41 with 5 min to settle: 05:00 .. 09:00 are due.
    assert rollup_due(db_engine, NOW, settle_s=300) == 5
    with db_engine.connect() as conn:
        hours = sorted(h for (h,) in conn.execute(sa.select(ROLLED.c.hour)))
    assert hours == [floor_hour(NOW) - i * HOUR for i in range(5, 0, -1)]
    # Later: 10:00 is now settled, and the last two rolled hours are redone for late results.
    assert rollup_due(db_engine, NOW + HOUR, settle_s=300, lookback_hours=2) == 3


def test_rollup_due_fills_the_digest_columns_of_hours_rolled_before_0005(
    db_engine: Engine,
) -> None:
    store_results(db_engine, generate_results(TARGETS, NOW - timedelta(days=2), NOW))
    assert rollup_due(db_engine, NOW, settle_s=300) == 48
    # As if rolled up by a version without the columns (what migration 0005 leaves behind).
    with db_engine.begin() as conn:
        conn.execute(ROLLUPS.update().values(usage_counts=sa.null(), error_details=sa.null()))

    def null_hours() -> list[datetime]:
        with db_engine.connect() as conn:
            rows = conn.execute(
                sa.select(ROLLUPS.c.hour).where(ROLLUPS.c.usage_counts.is_(None)).distinct()
            )
            return sorted(h for (h,) in rows)

    assert len(null_hours()) == 48
    # The last `refresh_hours` are redone in the next run; older hours stay as they are
    # (the digest reads them from raw rows while those exist).
    assert rollup_due(db_engine, NOW, settle_s=300, refresh_hours=26) == 26
    assert null_hours() == [floor_hour(NOW) - i * HOUR for i in range(48, 26, -1)]
    # Nothing left to refresh: back to the usual lookback.
    assert rollup_due(db_engine, NOW, settle_s=300, lookback_hours=2) == 2


def test_prune_rolls_up_first_then_deletes(db_engine: Engine) -> None:
    items = generate_results(TARGETS, NOW - timedelta(days=4), NOW, step_s=900)
    store_results(db_engine, items)
    # Only the most recent day is rolled up; the older hours must be rolled before pruning.
    rollup_hours(db_engine, NOW - timedelta(days=1), NOW, now=NOW)
    raw_cutoff = NOW - timedelta(days=2)
    rollup_cutoff = floor_hour(NOW - timedelta(days=3))
    # (valid, bad) over a window whose raw rows are about to go: must survive via rollups.
    window = (floor_hour(raw_cutoff) - timedelta(hours=20), floor_hour(raw_cutoff))
    before = window_counts(db_engine, "beta", *window)
    assert before[0] > 0

    result = prune(db_engine, 2 * 86400, 3 * 86400, NOW)

    old = [r for r, _ in items if r.started_at < raw_cutoff]
    assert result.raw_deleted == len(old)
    assert result.hours_rolled == 24 + 1  # hours from 3 days ago up to the raw cutoff
    with db_engine.connect() as conn:
        remaining = conn.execute(sa.text("SELECT count(*) FROM probe_results")).scalar_one()
        oldest_rollup = conn.execute(sa.select(sa.func.min(ROLLUPS.c.hour))).scalar_one()
        pruned = conn.execute(
            sa.select(sa.func.count()).where(ROLLED.c.raw_pruned == sa.true())
        ).scalar_one()
    assert remaining == len(items) - len(old)
    assert floor_hour(oldest_rollup) == rollup_cutoff
    assert pruned == result.hours_rolled
    assert result.rollups_deleted == 0  # those hours were never rolled up
    assert window_counts(db_engine, "beta", *window) == before

    # A pruned hour is never recomputed from its now partial raw rows.
    pruned_hour = floor_hour(raw_cutoff)
    snapshot = rollup_rows(db_engine)
    assert rollup_hours(db_engine, pruned_hour, pruned_hour + HOUR, now=NOW) == 0
    assert rollup_rows(db_engine) == snapshot

    # Rollups age out too.
    later = prune(db_engine, 2 * 86400, 2.5 * 86400, NOW)
    assert later.rollups_deleted > 0 and later.raw_deleted == 0
    with db_engine.connect() as conn:
        oldest_rollup = conn.execute(sa.select(sa.func.min(ROLLUPS.c.hour))).scalar_one()
        oldest_rolled = conn.execute(sa.select(sa.func.min(ROLLED.c.hour))).scalar_one()
    assert floor_hour(oldest_rollup) == floor_hour(NOW - timedelta(days=2.5))
    assert floor_hour(oldest_rolled) == floor_hour(NOW - timedelta(days=2.5))


def daily_rows(engine: Engine) -> dict[tuple, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(DAILY)).mappings().all()
    return {(r["day"], r["target"], r["probe"], r["location"]): dict(r) for r in rows}


def test_daily_rows_are_exact_sums_of_their_hours(db_engine: Engine) -> None:
    day = floor_day(NOW) - DAY
    store_results(db_engine, generate_results(TARGETS, day - HOUR, NOW, step_s=600))
    # Up to 10:00 today: yesterday is complete, today is not.
    rollup_hours(db_engine, day - HOUR, floor_hour(NOW), now=NOW)
    with db_engine.connect() as conn:
        days = [d for (d,) in conn.execute(sa.select(ROLLED_DAYS.c.day))]
    assert days == [day]

    hourly = rollup_rows(db_engine)
    daily = daily_rows(db_engine)
    assert {k[1:] for k in daily} == {k[1:] for k in hourly if day <= k[0] < day + DAY}
    for key, row in daily.items():
        parts = [r for k, r in hourly.items() if k[1:] == key[1:] and day <= k[0] < day + DAY]
        for column in ("total", "ok_count", "sli_ok_count", "completion_tokens", "cost_count"):
            assert row[column] == sum(p[column] for p in parts)
        assert math.isclose(row["cost_usd"], sum(p["cost_usd"] for p in parts))
        errors: Counter[str] = Counter()
        merged = Sketch()
        for p in parts:
            errors.update(p["errors"])
            merged.merge_json(p["latency_sketch"])
        assert row["errors"] == dict(errors)
        assert Sketch.from_json(row["latency_sketch"]) == merged

    # Re-rolling one hour of that day recomputes the day: same rows, none lost meanwhile.
    rollup_hours(db_engine, day + 5 * HOUR, day + 6 * HOUR, now=NOW)
    strip = {k: {c: v for c, v in r.items() if c != "id"} for k, r in daily.items()}
    again = daily_rows(db_engine)
    assert {k: {c: v for c, v in r.items() if c != "id"} for k, r in again.items()} == strip


def test_pruning_rollups_takes_whole_days(db_engine: Engine) -> None:
    start = floor_day(NOW) - 3 * DAY
    store_results(db_engine, generate_results(["alpha"], start, NOW, step_s=1800))
    rollup_hours(db_engine, start, floor_hour(NOW), now=NOW)
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ROLLED_DAYS)).scalar() == 3
    # The cutoff falls inside the oldest day but one: both those days lose their daily rows.
    prune(db_engine, 30 * 86400, (NOW - (start + DAY + 6 * HOUR)).total_seconds(), NOW)
    with db_engine.connect() as conn:
        days = sorted(d for (d,) in conn.execute(sa.select(ROLLED_DAYS.c.day)))
        daily_days = {d for (d,) in conn.execute(sa.select(DAILY.c.day))}
        oldest_hour = conn.execute(sa.select(sa.func.min(ROLLUPS.c.hour))).scalar_one()
    assert days == [start + 2 * DAY] and daily_days == {start + 2 * DAY}
    assert oldest_hour == start + DAY + 6 * HOUR


def test_digest_columns_match_raw_rows(db_engine: Engine) -> None:
    """usage_counts: one count per successful result with a usage; error_details: the
    newest failure of each kind (its text, even when it has none)."""
    start = floor_hour(NOW) - 3 * HOUR
    items = generate_results(TARGETS, start, floor_hour(NOW), step_s=60)
    for i, (r, _) in enumerate(items):
        if r.error is not None:
            r.detail = None if i % 7 == 0 else f"{r.error.value} #{i}"
        if r.completion_tokens is not None:
            r.output_chars, r.counted_tokens = 30 + i % 3, None if i % 5 == 0 else 10 + i % 2
            r.reasoning_tokens = None if i % 2 else 0
    store_results(db_engine, items)
    rollup_hours(db_engine, start, floor_hour(NOW), now=NOW)

    groups: dict[tuple, list[ProbeResult]] = defaultdict(list)
    for r, _ in sorted(items, key=lambda pair: pair[0].started_at):
        groups[key_of(r)].append(r)
    rows = rollup_rows(db_engine)
    assert set(rows) == set(groups)
    for key, results in groups.items():
        usage = Counter(
            (r.completion_tokens, r.reasoning_tokens, r.output_chars, r.counted_tokens)
            for r in results
            if r.ok and r.completion_tokens is not None and r.output_chars is not None
        )
        stored = rows[key]["usage_counts"]
        assert {tuple(entry[:4]): entry[4] for entry in stored} == usage
        assert len(stored) == len(usage)
        newest = {r.error.value: r for r in results if r.error is not None}
        assert rows[key]["error_details"] == {
            kind: [r.started_at.isoformat(timespec="microseconds"), r.detail]
            for kind, r in newest.items()
        }
    assert any(rows[key]["error_details"] for key in rows)
    assert any(len(rows[key]["usage_counts"]) > 3 for key in rows)
