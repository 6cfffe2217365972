"""status(), window_counts() and hourly_series() against brute force over the raw rows."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.probes.base import ErrorKind, ProbeResult
from checker.store.db import make_engine
from checker.store.plan import DAY, HOUR, floor_hour, plan_window
from checker.store.prune import prune
from checker.store.queries.counts import spend_since, window_counts
from checker.store.queries.series import hourly_series, hourly_series_many
from checker.store.queries.status import status
from checker.store.rollup import rollup_hours
from checker.store.sketch import ALPHA
from checker.store.tables import ROLLED_DAYS
from tests.fixtures_db import generate_results, store_results

NOW = datetime(2026, 6, 3, 9, 23, 41, 250000, tzinfo=UTC)
TARGETS = ["alpha", "beta", "gamma"]
WINDOWS = ("1h", "24h", "2d")
SPANS = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "2d": timedelta(days=2)}
Items = list[tuple[ProbeResult, bool]]


# --- brute force -------------------------------------------------------------------------


def in_window(items: Items, target: str, since: datetime, until: datetime) -> Items:
    return [(r, m) for r, m in items if r.target == target and since <= r.started_at < until]


def brute_counts(rows: Items, count_rate_limited: bool = True) -> tuple[int, int]:
    valid = [
        r
        for r, m in rows
        if not m and (count_rate_limited or r.error is not ErrorKind.rate_limited)
    ]
    return len(valid), sum(not r.ok for r in valid)


def brute_uptime(rows: Items, count_rate_limited: bool) -> float | None:
    valid, bad = brute_counts(rows, count_rate_limited)
    return (valid - bad) / valid if valid else None


def lower(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def good_values(rows: Items, field: str) -> list[float]:
    return [getattr(r, field) for r, m in rows if r.ok and not m and getattr(r, field) is not None]


def assert_close(estimate: float | None, exact: float | None) -> None:
    if exact is None:
        assert estimate is None
    else:
        assert estimate is not None and abs(estimate - exact) <= ALPHA * exact * (1 + 1e-9)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(module_db_url: str) -> Iterator[tuple[Engine, Items]]:
    """Two days and a bit of results; hours rolled up except the last two whole ones.
    Shared by the read-only tests of this module."""
    engine = make_engine(module_db_url)
    items = generate_results(TARGETS, NOW - timedelta(days=2, hours=3), NOW, step_s=300)
    store_results(engine, items)
    rollup_hours(engine, NOW - timedelta(days=3), floor_hour(NOW) - 2 * HOUR, now=NOW)
    yield engine, items
    engine.dispose()


# --- tests -------------------------------------------------------------------------------


def test_plan_window_splits_rollups_and_raw() -> None:
    h = datetime(2026, 1, 1, 10, tzinfo=UTC)
    since, until = h + timedelta(minutes=20), h + timedelta(hours=4, minutes=5)
    rolled = {h: False, h + HOUR: False, h + 2 * HOUR: False}  # 13:00 not rolled yet
    plan = plan_window(since, until, rolled)
    assert plan.rollup == ((h + HOUR, h + 3 * HOUR),)
    assert plan.raw == ((since, h + HOUR), (h + 3 * HOUR, until))

    # The head hour's raw rows were pruned: its whole-hour rollup stands in.
    plan = plan_window(since, until, {**rolled, h: True})
    assert plan.rollup == ((h, h + 3 * HOUR),)
    assert plan.raw == ((h + 3 * HOUR, until),)

    # A day with daily rollups is read whole from them when all its hours are rolled.
    d = datetime(2026, 1, 2, tzinfo=UTC)
    all_rolled = {d - HOUR + i * HOUR: False for i in range(27)}  # 23:00 the day before ..
    plan = plan_window(
        d - timedelta(minutes=30),
        d + DAY + timedelta(hours=1, minutes=5),
        all_rolled,
        days={d, d + DAY},
    )
    assert plan.daily == ((d, d + DAY),)
    assert plan.rollup == ((d + DAY, d + DAY + HOUR),)
    assert plan.raw == (
        (d - timedelta(minutes=30), d),
        (d + DAY + HOUR, d + DAY + HOUR + timedelta(minutes=5)),
    )
    missing_hour = {h: v for h, v in all_rolled.items() if h != d + 7 * HOUR}
    plan = plan_window(d, d + DAY, missing_hour, days={d})
    assert plan.daily == () and plan.raw == ((d + 7 * HOUR, d + 8 * HOUR),)

    # Inside one hour, and aligned windows.
    assert plan_window(since, since + timedelta(minutes=5), rolled).raw == (
        (since, since + timedelta(minutes=5)),
    )
    assert plan_window(h, h + 2 * HOUR, rolled) == plan_window(h, h + 2 * HOUR, rolled)
    assert plan_window(h, h + 2 * HOUR, rolled).raw == ()


@pytest.mark.parametrize("count_rate_limited", [True, False])
def test_status_matches_brute_force(loaded: tuple[Engine, Items], count_rate_limited: bool) -> None:
    engine, items = loaded
    got = status(
        engine,
        [*TARGETS, "silent"],
        NOW,
        windows=WINDOWS,
        main_window="24h",
        count_rate_limited={"alpha": count_rate_limited, "beta": count_rate_limited},
    )
    assert [s.target for s in got] == [*TARGETS, "silent"]
    for s in got[:3]:
        # gamma has no per-target setting: rate limits count, the default.
        counts_rl = count_rate_limited if s.target != "gamma" else True
        # Every figure is per probe: a 1 ms models answer never enters a stream percentile.
        assert list(s.probes) == ["models", "stream"]
        for probe, ps in s.probes.items():
            mine = [(r, m) for r, m in items if r.probe == probe]
            for w in WINDOWS:
                rows = in_window(mine, s.target, NOW - SPANS[w], NOW)
                assert ps.uptime[w] == pytest.approx(brute_uptime(rows, counts_rl), abs=1e-12), (
                    probe,
                    w,
                )
            main = in_window(mine, s.target, NOW - SPANS["24h"], NOW)
            assert ps.results == len(main)
            assert ps.errors == dict(Counter(r.error.value for r, _ in main if r.error))
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                assert_close(ps.latency_ms[name], lower(good_values(main, "latency_ms"), q))
                assert_close(ps.ttft_ms[name], lower(good_values(main, "ttft_ms"), q))
                assert_close(ps.ttfo_ms[name], lower(good_values(main, "ttfo_ms"), q))
                assert_close(ps.itl_ms[name], lower(good_values(main, "itl_p50_ms"), q))
            assert_close(ps.tokens_per_s_p50, lower(good_values(main, "tokens_per_s"), 0.5))
        # The headline is the primary probe's (stream before models), and says so.
        doc = s.to_json()
        assert s.primary_probe == doc["primary_probe"] == "stream"
        for key in ("results", "errors", "uptime", "latency_ms", "ttft_ms", "tokens_per_s_p50"):
            assert doc[key] == doc["probes"]["stream"][key], key
        newest = max((r for r, _ in items if r.target == s.target), key=lambda r: r.started_at)
        assert s.last == newest.to_json()

    silent = got[3]
    assert silent.results == 0 and silent.errors == {} and silent.last is None
    assert silent.probes == {} and silent.primary_probe is None
    assert silent.latency_ms == {"p50": None, "p95": None, "p99": None}
    assert set(silent.to_json()) == {
        "target",
        "primary_probe",
        "results",
        "errors",
        "uptime",
        "latency_ms",
        "ttft_ms",
        "tokens_per_s_p50",
        "probes",
        "last",
        "held_until",
        "location",
    }
    assert silent.to_json()["held_until"] is None  # no Retry-After hold on it


def test_last_result_is_the_newest_at_now_not_after(loaded: tuple[Engine, Items]) -> None:
    """A `now` in the past (a digest's previous period) sees the newest result up to it,
    never a later one, also for targets quiet for a long time before `now`."""
    engine, items = loaded
    for past in (NOW - timedelta(days=1), NOW - timedelta(days=2, hours=2, minutes=30)):
        got = status(engine, TARGETS, past, windows=("1h",), main_window="1h")
        for s in got:
            newest = max(
                (r for r, _ in items if r.target == s.target and r.started_at <= past),
                key=lambda r: r.started_at,
            )
            assert s.last == newest.to_json()


def test_last_result_ties_odd_names_and_targets_without_results(db_engine: Engine) -> None:
    """Equal start times: the later insert wins. Names are data, not SQL. A target with no
    result at all has no `last`."""
    names = ['it\'s "quoted"', "tie", "never-probed"]
    at = NOW - timedelta(minutes=5)
    failed = ProbeResult(target="tie", probe="models", started_at=at, ok=False, error="timeout")
    items = [
        (ProbeResult(target=names[0], probe="stream", started_at=at, ok=True), False),
        (ProbeResult(target="tie", probe="stream", started_at=at, ok=True), False),
        (failed, False),
    ]
    store_results(db_engine, items)
    got = {s.target: s.last for s in status(db_engine, names, NOW, windows=("1h",))}
    assert got[names[0]] == items[0][0].to_json()
    assert got["tie"] == items[2][0].to_json()
    assert got["never-probed"] is None


def test_rollups_change_nothing_but_speed(db_engine: Engine) -> None:
    """Rollups are an exact merge: the answer is identical with and without them."""
    items = generate_results(TARGETS, NOW - timedelta(days=1, hours=2), NOW, step_s=300)
    store_results(db_engine, items)
    raw_only = [
        s.to_json() for s in status(db_engine, TARGETS, NOW, windows=WINDOWS, main_window="2d")
    ]
    rollup_hours(db_engine, NOW - timedelta(days=2), NOW, now=NOW)
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ROLLED_DAYS)).scalar() == 1
    rolled = [
        s.to_json() for s in status(db_engine, TARGETS, NOW, windows=WINDOWS, main_window="2d")
    ]
    assert rolled == raw_only


def test_window_counts_match_brute_force(loaded: tuple[Engine, Items]) -> None:
    engine, items = loaded
    windows = [
        (NOW - timedelta(minutes=5), NOW),
        (NOW - timedelta(hours=6, minutes=7), NOW - timedelta(minutes=30)),
        (NOW - timedelta(days=2), NOW),
        (floor_hour(NOW) - 10 * HOUR, floor_hour(NOW) - 4 * HOUR),
    ]
    for since, until in windows:
        for target in TARGETS:
            rows = in_window(items, target, since, until)
            for counts_rl in (True, False):
                got = window_counts(engine, target, since, until, counts_rl)
                assert got == brute_counts(rows, counts_rl), (since, until, target)
    assert window_counts(engine, "nobody", NOW - HOUR, NOW) == (0, 0)


def test_hourly_series_matches_brute_force(loaded: tuple[Engine, Items]) -> None:
    engine, items = loaded
    since = NOW - timedelta(hours=5, minutes=10)
    points = hourly_series(engine, "beta", since, NOW)
    assert [p.hour for p in points] == [floor_hour(since) + i * HOUR for i in range(6)]
    for p in points:
        rows = in_window(items, "beta", max(since, p.hour), min(NOW, p.hour + HOUR))
        valid, bad = brute_counts(rows)
        assert (p.results, p.valid, p.good) == (len(rows), valid, valid - bad)
        assert_close(p.latency_p95, lower(good_values(rows, "latency_ms"), 0.95))
        assert_close(p.ttft_p50, lower(good_values(rows, "ttft_ms"), 0.5))


def test_hourly_series_of_many_targets_is_each_targets_series(
    loaded: tuple[Engine, Items],
) -> None:
    engine, _ = loaded
    since = NOW - timedelta(hours=5, minutes=10)
    rl = {"alpha": True, "beta": False, "nobody": True}
    many = hourly_series_many(engine, rl, since, NOW)
    assert list(many) == list(rl)
    for target, count_rl in rl.items():
        assert many[target] == hourly_series(engine, target, since, NOW, count_rl)
    assert all(p.results == 0 and p.latency_p50 is None for p in many["nobody"])
    lean = hourly_series_many(engine, {"beta": False}, since, NOW, ttft=False)["beta"]
    assert all(p.ttft_p50 is None and p.ttft_p95 is None for p in lean)
    assert [p.latency_p95 for p in lean] == [p.latency_p95 for p in many["beta"]]


def test_hourly_series_of_one_probe_never_mixes_probes(loaded: tuple[Engine, Items]) -> None:
    engine, items = loaded
    since = NOW - timedelta(hours=30)  # rolled-up hours and raw ones
    points = hourly_series_many(engine, {"beta": True}, since, NOW, probes={"beta": "stream"})
    streams = [(r, m) for r, m in items if r.probe == "stream"]
    for p in points["beta"]:
        rows = in_window(streams, "beta", max(since, p.hour), min(NOW, p.hour + HOUR))
        valid, bad = brute_counts(rows)
        assert (p.results, p.valid, p.good) == (len(rows), valid, valid - bad)
        assert_close(p.latency_p50, lower(good_values(rows, "latency_ms"), 0.5))


def test_after_pruning_long_windows_come_from_rollups(db_engine: Engine) -> None:
    engine = db_engine
    items = generate_results(TARGETS, NOW - timedelta(days=2, hours=3), NOW, step_s=600)
    store_results(engine, items)
    rollup_hours(engine, NOW - timedelta(days=3), floor_hour(NOW) - 2 * HOUR, now=NOW)
    before = status(engine, TARGETS, NOW, windows=WINDOWS)
    prune(engine, raw_retention_s=26 * 3600, rollup_retention_s=400 * 86400, now=NOW)
    after = status(engine, TARGETS, NOW, windows=WINDOWS)
    for b, a in zip(before, after, strict=True):
        assert a.uptime["1h"] == b.uptime["1h"]
        assert a.uptime["24h"] == b.uptime["24h"]
        assert a.to_json()["last"] == b.to_json()["last"]
        # The 2d window's first partial hour now counts whole (its raw rows are gone).
        head = floor_hour(NOW - SPANS["2d"])
        rows = [(r, m) for r, m in in_window(items, a.target, head, NOW) if r.probe == "stream"]
        assert a.uptime["2d"] == pytest.approx(brute_uptime(rows, True), abs=1e-12)


def test_spend_since_sums_cost_per_target(db_engine: Engine) -> None:
    items = generate_results(TARGETS, NOW - timedelta(hours=30), NOW, step_s=600)
    store_results(db_engine, items)
    midnight = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    spent = spend_since(db_engine, midnight)
    for target in TARGETS:
        costs = [r.cost_usd for r, _ in items if r.target == target and r.started_at >= midnight]
        assert spent[target] == pytest.approx(sum(c for c in costs if c is not None))
    assert spend_since(db_engine, NOW + HOUR) == {}


def test_without_last_everything_else_is_the_same(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded
    full = status(engine, TARGETS, NOW, main_window="7d")
    lean = status(engine, TARGETS, NOW, main_window="7d", with_last=False)
    assert all(s.last is not None for s in full)
    assert all(s.last is None for s in lean)
    for a, b in zip(full, lean, strict=True):
        a.last = None
        assert a == b
