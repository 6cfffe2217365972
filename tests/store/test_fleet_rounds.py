"""The fleet-round rule (pure): how the SLO counts the results of several locations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from checker.config.schema import DownRule
from checker.store.fleet_rounds import (
    Outcome,
    RoundCounts,
    RoundRule,
    RoundShape,
    count_rounds,
    round_events,
    slot_of,
)
from checker.store.queries.window import Counts

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def outcome(
    location: str, second: float, ok: bool = True, error: str | None = None, maint: bool = False
) -> Outcome:
    error = error if error is not None or ok else "timeout"
    return Outcome(location, T0 + timedelta(seconds=second), ok, maint, error)


def rounds_of(failing: set[str], locations: tuple[str, ...], n: int) -> list[Outcome]:
    """n rounds of one result per location a minute, `failing` ones failing every round."""
    return [
        outcome(loc, 60 * i + 7 * j, ok=loc not in failing)
        for i in range(n)
        for j, loc in enumerate(locations)
    ]


def test_one_failing_location_of_three_burns_nothing_two_burn_every_round() -> None:
    three = ("east", "west", "north")
    assert count_rounds(rounds_of({"east"}, three, 10), RoundRule()) == RoundCounts(10, 0, 10, 0)
    both = count_rounds(rounds_of({"east", "west"}, three, 10), RoundRule())
    assert both == RoundCounts(10, 10, 10, 10)


def test_one_location_counts_every_result_confirm_retries_included() -> None:
    results = rounds_of({"east"}, ("east",), 5)
    results.append(outcome("east", 4 * 60 + 30, ok=False))  # a confirmation re-probe
    results.append(outcome("east", 4 * 60 + 40, ok=True))
    assert count_rounds(results, RoundRule()) == RoundCounts(7, 6, 7, 6)


def test_the_quorum_is_the_down_rules() -> None:
    three = ("east", "west", "north")
    one_failing = rounds_of({"east"}, three, 4)
    assert count_rounds(one_failing, RoundRule(quorum=1)).bad == 4  # any location
    assert count_rounds(one_failing, RoundRule(quorum=0.3)).bad == 4  # 30% of 3: 1
    two_failing = rounds_of({"east", "west"}, three, 4)
    assert count_rounds(two_failing, RoundRule(quorum=1.0)).bad == 0  # 100%: all three
    for quorum in (None, 1, 2, 3, 0.5, 0.34, 1.0):
        for reporting in range(1, 8):
            expected = DownRule.model_construct(quorum=quorum).needed(reporting)
            assert RoundRule(quorum=quorum).needed(reporting) == expected


def test_quorum_is_of_the_locations_that_reported_in_the_round() -> None:
    # north is silent in the second round: east failing alone is 1 of 2, short of a
    # majority (2); in the first round east and west failing are 2 of 3.
    results = [
        outcome("east", 1, ok=False),
        outcome("west", 2, ok=False),
        outcome("north", 3),
        outcome("east", 61, ok=False),
        outcome("west", 62),
    ]
    assert count_rounds(results, RoundRule()) == RoundCounts(2, 1, 2, 1)


def test_a_location_fails_a_round_when_any_of_its_results_there_is_bad() -> None:
    results = [
        outcome("east", 1, ok=False),
        outcome("east", 40),  # a retry that passed: east still failed this round
        outcome("west", 2, ok=False),
        outcome("north", 3),
    ]
    assert count_rounds(results, RoundRule()) == RoundCounts(1, 1, 1, 1)


def test_rate_limits_and_maintenance() -> None:
    results = [
        outcome("east", 1, ok=False, error="rate_limited"),
        outcome("west", 2, ok=False, error="rate_limited"),
        outcome("north", 3),
        # Next round: west and north in maintenance, east alone counts each result.
        outcome("east", 61, ok=False),
        outcome("west", 62, ok=False, maint=True),
        outcome("north", 63, maint=True),
    ]
    counted = count_rounds(results, RoundRule())
    # Rate limits counted: round 1 is 2 of 3 failing (bad); left out: north alone (good).
    assert counted.of(True) == (2, 2)
    assert counted.of(False) == (2, 1)


def test_slots_restart_every_hour() -> None:
    assert slot_of(T0 + timedelta(minutes=59, seconds=59), 60) == (T0, 59)
    assert slot_of(T0 + timedelta(hours=1, seconds=1), 60) == (T0 + timedelta(hours=1), 0)
    # 7 s does not divide an hour: the hour's last slot is short, the next hour starts at 0.
    assert slot_of(T0 + timedelta(seconds=3599), 7) == (T0, 514)
    assert slot_of(T0 + timedelta(seconds=3601), 7) == (T0 + timedelta(hours=1), 0)
    # Two locations either side of an hour are two one-location rounds, not one round.
    results = [outcome("east", 3599, ok=False), outcome("west", 3601, ok=False)]
    assert count_rounds(results, RoundRule(interval_s=7)) == RoundCounts(2, 2, 2, 2)


@pytest.mark.parametrize("total,maint,ok,rl", [(10, 0, 10, 0), (10, 2, 5, 1), (3, 3, 0, 0)])
def test_per_result_counts_match_the_window_counts(
    total: int, maint: int, ok: int, rl: int
) -> None:
    counts = Counts(total, maint, ok, rl)
    per_result = RoundCounts.per_result(total, maint, ok, rl)
    for count_rl in (True, False):
        assert per_result.of(count_rl) == (counts.valid(count_rl), counts.bad(count_rl))


def test_round_events_by_shape() -> None:
    rule = RoundRule()  # a majority
    # 40 rounds where 3 reported and 2 failed: 40 events, all bad.
    assert round_events(RoundShape(3, 2, 40, 120, 80), rule) == (40, 40)
    # ... 1 of 3 failed: 40 good events.
    assert round_events(RoundShape(3, 1, 40, 120, 40), rule) == (40, 0)
    # 5 rounds where one location reported and failed: its 6 results (a passing confirm
    # re-probe among them), 5 bad.
    assert round_events(RoundShape(1, 1, 5, 6, 5), rule) == (6, 5)
    # Nobody reported (maintenance, or 429s left out): nothing.
    assert round_events(RoundShape(0, 0, 40, 0, 0), rule) == (0, 0)
