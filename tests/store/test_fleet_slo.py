"""The SLO counts fleet rounds, on real SQLite and PostgreSQL: from rollups and from raw
rows alike, and exactly as before for a single location."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from checker.alerting.evaluator import window_signals
from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.fleet_rounds import Outcome, RoundCounts, RoundRule, count_rounds
from checker.store.models import sync_targets
from checker.store.queries.counts import probe_window_counts_many, window_counts_many
from checker.store.queries.window import Counts
from checker.store.rollup import rollup_due, rollup_hours
from checker.store.tables import DAILY, RAW_TABLE, ROLLED, ROLLED_DAYS, ROLLUPS
from tests.fixtures_db import store_results

NOW = datetime(2026, 12, 7, 12, 20, tzinfo=UTC)
THREE = ("east", "west", "north")
ROUTE = "fleet-route"


def config(interval: str = "1m", quorum: object = None) -> Config:
    return Config.model_validate(
        {
            "targets": [
                {
                    "name": ROUTE,
                    "kind": "http",
                    "base_url": "http://127.0.0.1:9/",
                    "interval": interval,
                    "alerts": {"down": {"quorum": quorum}},
                }
            ]
        }
    )


def result(
    location: str | None, at: datetime, error: ErrorKind | None = None, probe: str = "http"
) -> ProbeResult:
    r = ProbeResult(target=ROUTE, probe=probe, started_at=at, ok=error is None)
    r.location = location
    if error is not None:
        r.fail(error, "generated")
    return r


def fleet(failing: set[str], minutes: int, locations: tuple[str, ...] = THREE) -> list[ProbeResult]:
    """One result a minute from each location over the last `minutes`, phases apart."""
    start = NOW - timedelta(minutes=minutes)
    return [
        result(loc, start + timedelta(minutes=i, seconds=5 + 15 * j), ErrorKind.timeout)
        if loc in failing
        else result(loc, start + timedelta(minutes=i, seconds=5 + 15 * j))
        for i in range(minutes)
        for j, loc in enumerate(locations)
    ]


def counts_now(engine: Engine, minutes: int, count_rl: bool = True) -> tuple[int, int]:
    since = NOW - timedelta(minutes=minutes)
    return window_counts_many(engine, [ROUTE], since, NOW, count_rl)[ROUTE]


def per_result(engine: Engine, since: datetime, until: datetime, count_rl: bool) -> tuple[int, int]:
    """Today's numbers before fleet rounds: every result of every location one event."""
    total = Counts()
    for c in probe_window_counts_many(engine, [ROUTE], since, until).values():
        total.add(c.total, c.maintenance, c.sli_ok, c.sli_rate_limited)
    return total.valid(count_rl), total.bad(count_rl)


def test_one_failing_location_of_three_burns_nothing_two_burn_every_round(
    db_engine: Engine,
) -> None:
    cfg = config()
    sync_targets(db_engine, cfg)
    store_results(db_engine, [(r, False) for r in fleet({"east"}, 150)])
    # Another probe of the route, from east only: each of its results counts.
    alone = [
        result("east", NOW - timedelta(minutes=i, seconds=10), probe="models") for i in range(150)
    ]
    store_results(db_engine, [(r, False) for r in alone])
    assert counts_now(db_engine, 120) == (240, 0)  # raw rows
    rollup_hours(db_engine, NOW - timedelta(hours=3), NOW, now=NOW)
    assert counts_now(db_engine, 120) == (240, 0)  # 10:20-11:00 raw, 11-12 rolled, 12:00- raw
    signals = window_signals(db_engine, cfg, cfg.targets, NOW)[ROUTE]
    assert all(w.bad == 0 and w.valid > 0 for w in signals.values())
    # Its windows share the raw tail's counts: each as if counted alone.
    for length, w in signals.items():
        alone = window_counts_many(db_engine, [ROUTE], NOW - timedelta(seconds=length), NOW)
        assert (w.valid, w.bad) == alone[ROUTE]

    with db_engine.begin() as conn:
        for table in (RAW_TABLE, ROLLUPS, ROLLED, DAILY, ROLLED_DAYS):
            conn.execute(table.delete())
    store_results(db_engine, [(r, False) for r in fleet({"east", "west"}, 150)])
    assert counts_now(db_engine, 120) == (120, 120)
    rollup_hours(db_engine, NOW - timedelta(hours=3), NOW, now=NOW)
    assert counts_now(db_engine, 120) == (120, 120)


def test_one_location_counts_exactly_as_before(db_engine: Engine) -> None:
    sync_targets(db_engine, config())
    kinds = [None, None, ErrorKind.timeout, ErrorKind.rate_limited, None]
    items = [
        (result("east", NOW - timedelta(minutes=150 - i), kinds[i % 5]), i % 17 == 0)
        for i in range(150)
    ]
    # Confirmation re-probes: a second result in the same minute.
    items += [
        (result("east", NOW - timedelta(minutes=150 - i, seconds=-30)), False) for i in (7, 80)
    ]
    store_results(db_engine, items)
    for rolled in (False, True):
        if rolled:
            rollup_hours(db_engine, NOW - timedelta(hours=3), NOW, now=NOW)
        for count_rl in (True, False):
            since = NOW - timedelta(minutes=125)
            before = per_result(db_engine, since, NOW, count_rl)
            assert counts_now(db_engine, 125, count_rl) == before
            assert before[1] > 0


def test_rollups_from_before_0011_count_each_result_until_rolled_again(
    db_engine: Engine,
) -> None:
    sync_targets(db_engine, config())
    store_results(db_engine, [(r, False) for r in fleet({"east"}, 150)])
    rollup_hours(db_engine, NOW - timedelta(hours=3), NOW, now=NOW)
    nulls = dict.fromkeys(("fleet_valid", "fleet_bad", "fleet_valid_no_rl", "fleet_bad_no_rl"))
    with db_engine.begin() as conn:
        conn.execute(ROLLUPS.update().values(nulls))
        conn.execute(DAILY.delete())
        conn.execute(ROLLED_DAYS.delete())
    since = NOW - timedelta(hours=1, minutes=20)  # 11:00-12:00 from the old rollup
    old = window_counts_many(db_engine, [ROUTE], since, NOW)[ROUTE]
    assert old == (60 * 3 + 20, 60)  # the rolled hour per result, the raw tail in rounds
    rollup_due(db_engine, NOW)
    assert window_counts_many(db_engine, [ROUTE], since, NOW)[ROUTE] == (80, 0)


def test_sync_targets_stores_interval_and_quorum(db_engine: Engine) -> None:
    for quorum, expected in ((None, (None, None)), (2, (2, None)), ("50%", (None, 0.5))):
        sync_targets(db_engine, config("90s", quorum))
        with db_engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT interval_s, quorum_locations, quorum_share FROM targets")
            ).one()
        assert (row[0], (row[1], row[2])) == (90.0, expected)


# --- rollups and raw rows count the same ---------------------------------------------------

_RESULTS = st.lists(
    st.tuples(
        st.sampled_from([*THREE, None]),
        # Seconds into the three hours, in a few minutes: locations often share a round.
        st.builds(lambda m, s: m * 540 + s, st.integers(0, 19), st.floats(0, 89)),
        st.sampled_from([None, None, None, ErrorKind.timeout, ErrorKind.rate_limited]),
        st.booleans(),  # maintenance, drawn rarely below
        st.sampled_from(["http", "http", "models"]),
    ),
    max_size=60,
)
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    drawn=_RESULTS,
    interval=st.sampled_from(["1m", "90s", "7s", "20m"]),
    quorum=st.sampled_from([None, 1, "100%"]),
    edges=st.tuples(st.floats(0, 3600), st.floats(2 * 3600, 3 * 3600)),
)
def test_a_window_counts_the_same_from_rollups_and_raw_rows(
    db_engine: Engine,
    drawn: list[tuple[str | None, float, ErrorKind | None, bool, str]],
    interval: str,
    quorum: object,
    edges: tuple[float, float],
) -> None:
    with db_engine.begin() as conn:
        for table in (RAW_TABLE, ROLLUPS, ROLLED, DAILY, ROLLED_DAYS):
            conn.execute(table.delete())
    cfg = config(interval, quorum)
    sync_targets(db_engine, cfg)
    items = [
        (result(loc, START + timedelta(seconds=s), err, probe), maint and s < 1800)
        for loc, s, err, maint, probe in drawn
    ]
    store_results(db_engine, items)
    since, until = (START + timedelta(seconds=e) for e in edges)
    raw = {rl: window_counts_many(db_engine, [ROUTE], since, until, rl)[ROUTE] for rl in (1, 0)}
    rollup_hours(db_engine, START, START + timedelta(hours=3), now=NOW)
    rolled = {rl: window_counts_many(db_engine, [ROUTE], since, until, rl)[ROUTE] for rl in (1, 0)}
    assert rolled == raw
    # ... and both are the pure rule over the window's results.
    rule = RoundRule(cfg.interval(cfg.targets[0]), cfg.alerts(cfg.targets[0]).down.quorum)
    expected = RoundCounts()
    for probe in ("http", "models"):
        stored = [
            Outcome(r.location or "", r.started_at, r.ok, m, r.error.value if r.error else None)
            for r, m in items
            if since <= r.started_at < until and r.probe == probe
        ]
        expected.add(count_rounds(stored, rule))
    assert raw == {1: expected.of(True), 0: expected.of(False)}
