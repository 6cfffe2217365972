"""SLO math against the SRE workbook's worked numbers and hand-computed cases."""

from __future__ import annotations

import pytest

from checker.alerting.slo import (
    WindowCounts,
    budget_remaining,
    burn_rate,
    burn_windows,
    count_events,
    detection_time_s,
    error_rate,
    evaluate_burn,
    explain_page_sensitivity,
    fewest_bad_to_page,
    is_bad,
    latency_sli,
    required_windows,
    single_failure_pages,
    sli,
    time_to_exhaust_s,
    uptime,
)
from checker.config.schema import Slo
from checker.probes.base import ErrorKind

MIN = 60.0
HOUR = 3600.0
DAY = 86400.0


def slo(availability: float = 0.999, window: float = 30 * DAY, **kw: object) -> Slo:
    return Slo(availability=availability, window=window, **kw)


def counts_per_minute(
    bad: dict[float, int], total_s: float = 30 * DAY
) -> dict[float, WindowCounts]:
    """One probe a minute; `bad` maps window length to its bad probes (default 0)."""
    lengths = [5 * MIN, 30 * MIN, HOUR, 2 * HOUR, 6 * HOUR, DAY, 3 * DAY, total_s]
    return {w: WindowCounts(int(w // MIN), bad.get(w, 0)) for w in lengths}


# --- events and SLIs -------------------------------------------------------------------------


def test_ok_results_are_good_and_failures_bad() -> None:
    s = slo()
    assert is_bad(None, True, s) is False
    assert is_bad(ErrorKind.timeout, False, s) is True
    assert is_bad("server_error", False, s) is True
    assert is_bad(None, False, s) is True  # failed without a kind is still a failure


def test_rate_limited_counts_as_bad_unless_switched_off() -> None:
    assert is_bad(ErrorKind.rate_limited, False, slo()) is True
    assert is_bad(ErrorKind.rate_limited, False, slo(count_rate_limited=False)) is None
    assert is_bad("rate_limited", False, slo(count_rate_limited=False)) is None


def test_count_events_skips_invalid_events() -> None:
    events = [
        (None, True),
        (ErrorKind.rate_limited, False),
        (ErrorKind.timeout, False),
        (None, True),
    ]
    assert count_events(events, slo()) == WindowCounts(valid=4, bad=2)
    assert count_events(events, slo(count_rate_limited=False)) == WindowCounts(valid=3, bad=1)


def test_window_counts_reject_impossible_numbers() -> None:
    with pytest.raises(ValueError):
        WindowCounts(valid=3, bad=4)
    with pytest.raises(ValueError):
        WindowCounts(valid=3, bad=-1)
    assert WindowCounts(3, 1) + WindowCounts(2, 2) == WindowCounts(5, 3)
    assert WindowCounts(5, 3).good == 2


def test_sli_error_rate_and_uptime() -> None:
    c = WindowCounts(valid=200, bad=3)
    assert sli(c) == pytest.approx(197 / 200)
    assert uptime(c) == sli(c)
    assert error_rate(c) == pytest.approx(3 / 200)
    empty = WindowCounts(0, 0)
    assert sli(empty) is None and error_rate(empty) is None and burn_rate(empty, 0.999) is None


def test_budget_remaining_is_a_fraction_of_the_budget_and_goes_negative() -> None:
    # 99.9% of 1000 probes allows exactly 1 failure.
    assert budget_remaining(WindowCounts(1000, 0), 0.999) == pytest.approx(1.0)
    assert budget_remaining(WindowCounts(1000, 1), 0.999) == pytest.approx(0.0)
    assert budget_remaining(WindowCounts(1000, 2), 0.999) == pytest.approx(-1.0)
    # 99.5% of 10 000 allows 50; 25 used leaves half.
    assert budget_remaining(WindowCounts(10_000, 25), 0.995) == pytest.approx(0.5)
    assert budget_remaining(WindowCounts(0, 0), 0.995) is None


def test_latency_sli_counts_only_measured_probes() -> None:
    assert latency_sli([100.0, 2000.0, None, 3000.0], 2000.0) == pytest.approx(2 / 3)
    assert latency_sli([None, None], 2000.0) is None


# --- the workbook's numbers -------------------------------------------------------------------


def test_thirty_day_table_is_the_workbooks() -> None:
    windows = burn_windows(30 * DAY)
    table = [(w.name, w.severity, w.long_s, w.short_s, w.budget_fraction) for w in windows]
    assert table == [
        ("page-1h", "page", HOUR, 5 * MIN, 0.02),
        ("page-6h", "page", 6 * HOUR, 30 * MIN, 0.05),
        ("ticket-1d", "ticket", DAY, 2 * HOUR, 0.10),
        ("ticket-3d", "ticket", 3 * DAY, 6 * HOUR, 0.10),
    ]
    assert [w.factor for w in windows] == pytest.approx([14.4, 6.0, 3.0, 1.0])


def test_burning_at_the_factor_spends_the_stated_budget_share() -> None:
    # Workbook: a 14.4 burn rate for 1 hour consumes 2% of a 30-day budget.
    for w in burn_windows(30 * DAY):
        assert w.factor * w.long_s / (30 * DAY) == pytest.approx(w.budget_fraction)


def test_full_outage_of_a_999_service_exhausts_the_budget_in_43_2_minutes() -> None:
    outage = WindowCounts(valid=60, bad=60)
    burn = burn_rate(outage, 0.999)
    assert burn == pytest.approx(1000.0)
    assert time_to_exhaust_s(burn, 30 * DAY) == pytest.approx(43.2 * MIN)
    # Burn rate 1 spends the budget exactly over the period; 14.4 in a little over 2 days.
    assert time_to_exhaust_s(1.0, 30 * DAY) == pytest.approx(30 * DAY)
    assert time_to_exhaust_s(14.4, 30 * DAY) == pytest.approx(50 * HOUR)
    assert time_to_exhaust_s(14.4, 30 * DAY, remaining=0.5) == pytest.approx(25 * HOUR)
    assert time_to_exhaust_s(0.0, 30 * DAY) is None


def test_detection_time_of_a_full_outage() -> None:
    # Workbook: (1 - SLO) / error ratio x window x burn rate.
    assert detection_time_s(1.0, HOUR, 14.4, 0.999) == pytest.approx(51.84)
    assert detection_time_s(1.0, 6 * HOUR, 6.0, 0.999) == pytest.approx(129.6)
    # A 10% error ratio takes ten times as long.
    assert detection_time_s(0.1, HOUR, 14.4, 0.999) == pytest.approx(518.4)


@pytest.mark.parametrize(
    ("period_days", "factors"),
    [
        (28, [13.44, 5.6, 2.8, 0.93333333]),
        (7, [3.36, 1.4, 0.7, 0.23333333]),
        (90, [43.2, 18.0, 9.0, 3.0]),
    ],
)
def test_factors_follow_the_period(period_days: int, factors: list[float]) -> None:
    windows = burn_windows(period_days * DAY)
    assert [w.factor for w in windows] == pytest.approx(factors)
    assert [w.long_s for w in windows] == [HOUR, 6 * HOUR, DAY, 3 * DAY]


def test_windows_longer_than_the_period_are_dropped() -> None:
    assert [w.name for w in burn_windows(DAY)] == ["page-1h", "page-6h", "ticket-1d"]
    assert [w.factor for w in burn_windows(DAY)] == pytest.approx([0.48, 0.2, 0.1])


def test_required_windows_cover_every_pair_and_the_slo_window() -> None:
    assert required_windows(slo()) == [
        5 * MIN,
        30 * MIN,
        HOUR,
        2 * HOUR,
        6 * HOUR,
        DAY,
        3 * DAY,
        30 * DAY,
    ]


# --- evaluate_burn ------------------------------------------------------------------------------


def test_three_failures_in_five_minutes_page_at_999() -> None:
    # 1/min: 1h holds 60, 3 bad = 5% = burn 50; 5m holds 5, 3 bad = burn 600.
    # 6h: 3/360 = burn 8.3 > 6 and 30m: 3/30 = burn 100: the 6h pair fires too.
    # 1d: 3/1440 = burn 2.08 < 3: no ticket either way.
    windows = {5 * MIN: 3, 30 * MIN: 3, HOUR: 3, 2 * HOUR: 3, 6 * HOUR: 3, DAY: 3, 3 * DAY: 3}
    alerts = evaluate_burn(counts_per_minute(windows), slo())
    assert [a.window.name for a in alerts] == ["page-1h", "page-6h"]
    assert alerts[0].long_burn == pytest.approx(50.0)
    assert alerts[0].short_burn == pytest.approx(600.0)
    assert alerts[1].long_burn == pytest.approx(3 / 360 / 0.001)


def test_min_bad_guards_low_traffic_windows() -> None:
    windows = {5 * MIN: 2, 30 * MIN: 2, HOUR: 2, 2 * HOUR: 2, 6 * HOUR: 2, DAY: 2, 3 * DAY: 2}
    assert evaluate_burn(counts_per_minute(windows), slo(min_bad=3)) == []
    fired = evaluate_burn(counts_per_minute(windows), slo(min_bad=2))
    # 2/60 = burn 33 > 14.4 pages; 2/360 = burn 5.6 stays under the 6h factor of 6.
    assert [a.window.name for a in fired] == ["page-1h"]


def test_a_recovered_short_window_stops_the_page() -> None:
    # 10 failures 30-40 minutes ago: the 1h window still burns 167x, the 5m window 0.
    windows = {HOUR: 10, 2 * HOUR: 10, 6 * HOUR: 10, DAY: 10, 3 * DAY: 10}
    names = [a.window.name for a in evaluate_burn(counts_per_minute(windows), slo())]
    # Neither 5m nor 30m holds them any more: no page. The slow pairs still see the burn:
    # 1d 10/1440 = 6.9 > 3 with 2h 10/120; 3d 10/4320 = 2.3 > 1 with 6h 10/360.
    assert names == ["ticket-1d", "ticket-3d"]


def test_slow_burn_raises_only_a_ticket() -> None:
    # 99.5%: 3d holds 4320 with 30 bad (burn 1.39), 6h holds 360 with 3 bad (burn 1.67).
    # 1d: 10/1440 = burn 1.39 < 3; the 1h and 6h page pairs see too little.
    windows = {6 * HOUR: 3, DAY: 10, 2 * HOUR: 1, 3 * DAY: 30}
    alerts = evaluate_burn(counts_per_minute(windows), slo(0.995))
    assert [(a.window.name, a.severity) for a in alerts] == [("ticket-3d", "ticket")]
    assert alerts[0].long_burn == pytest.approx(30 / 4320 / 0.005)


def test_a_page_suppresses_tickets() -> None:
    bad = {5 * MIN: 5, 30 * MIN: 30, HOUR: 60, 2 * HOUR: 120, 6 * HOUR: 360}
    bad |= {DAY: 360, 3 * DAY: 360}
    alerts = evaluate_burn(counts_per_minute(bad), slo())
    assert {a.severity for a in alerts} == {"page"}


def test_exact_tie_with_the_factor_does_not_fire() -> None:
    # 99%: the 1h factor 14.4 means an error rate of 0.144; 18/125 is exactly that.
    s = slo(0.99, min_bad=1)
    base = {w: WindowCounts(1000, 0) for w in required_windows(s)}
    tie = base | {HOUR: WindowCounts(125, 18), 5 * MIN: WindowCounts(5, 5)}
    assert evaluate_burn(tie, s) == []
    above = base | {HOUR: WindowCounts(125, 19), 5 * MIN: WindowCounts(5, 5)}
    assert [a.window.name for a in evaluate_burn(above, s)] == ["page-1h"]


def test_empty_windows_never_fire() -> None:
    s = slo(min_bad=1)
    assert evaluate_burn({w: WindowCounts(0, 0) for w in required_windows(s)}, s) == []


def test_a_missing_window_is_an_error() -> None:
    s = slo()
    partial = {w: WindowCounts(10, 0) for w in required_windows(s) if w != 5 * MIN}
    with pytest.raises(KeyError, match="5m"):
        evaluate_burn(partial, s)


# --- low-traffic warning ------------------------------------------------------------------------


def test_at_999_and_one_probe_a_minute_a_single_failure_pages() -> None:
    # DESIGN.md: 1/60 = 1.7% error rate = burn 16.7 > 14.4, and 1/5 in the 5m window.
    assert single_failure_pages(60, slo(min_bad=1)) is True
    assert fewest_bad_to_page(60, slo(min_bad=1)) == 1
    assert "single failed probe pages" in explain_page_sensitivity(60, slo(min_bad=1))


def test_min_bad_keeps_a_single_failure_from_paging() -> None:
    assert single_failure_pages(60, slo(min_bad=3)) is False
    assert fewest_bad_to_page(60, slo(min_bad=3)) == 3
    assert "3 failed probes (min_bad)" in explain_page_sensitivity(60, slo(min_bad=3))


def test_lower_objectives_need_more_failures() -> None:
    # 99%: 1h needs k/60/0.01 > 14.4, k > 8.64 -> 9; 6h needs k/360/0.01 > 6 -> 22.
    assert fewest_bad_to_page(60, slo(0.99, min_bad=1)) == 9
    # 90%: at most burn 10 < 14.4, so only the 6h pair can: k/360/0.1 > 6 -> 217.
    assert fewest_bad_to_page(60, slo(0.90, min_bad=1)) == 217
    # 80%: at most burn 5, below both page factors.
    assert fewest_bad_to_page(60, slo(0.80, min_bad=1)) is None
    assert "no number of failures can page" in explain_page_sensitivity(60, slo(0.80))


def test_long_intervals_make_one_failure_page_even_at_lower_objectives() -> None:
    # Every 5 minutes at 99.5%: 1/12/0.005 = burn 16.7 > 14.4; the 5m window holds 1 probe.
    assert single_failure_pages(300, slo(0.995, min_bad=1)) is True
    assert single_failure_pages(30, slo(0.995, min_bad=1)) is False


def test_several_probes_per_interval_dilute_one_failure() -> None:
    # Two probes a minute: 1/120/0.001 = 8.3 < 14.4; two failures make 16.7.
    assert fewest_bad_to_page(60, slo(min_bad=1), probes_per_interval=2) == 2
    assert single_failure_pages(60, slo(min_bad=1), probes_per_interval=2) is False


def test_explanation_names_the_numbers() -> None:
    text = explain_page_sensitivity(60, slo(min_bad=1))
    assert "1m" in text and "99.9%" in text and "60 probes" in text and "14.4x" in text
