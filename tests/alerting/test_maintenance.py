"""Maintenance calendar: crontab windows in time zones, DST, merging and overlap."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from checker.alerting.maintenance import MaintenanceCalendar
from checker.config.schema import Maintenance
from checker.cron import crontab_day_of_week


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def calendar(*windows: dict[str, object]) -> MaintenanceCalendar:
    return MaintenanceCalendar([Maintenance.model_validate(w) for w in windows])


# --- crontab day-of-week numbering ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("*", "*"),
        ("0", "sun"),
        ("7", "sun"),
        ("1", "mon"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("5-7", "sun,fri,sat"),
        ("*/2", "sun,tue,thu,sat"),
        ("sat,sun", "sun,sat"),
        ("mon-wed", "mon,tue,wed"),
        ("0,3", "sun,wed"),
    ],
)
def test_day_of_week_follows_crontab(field: str, names: str) -> None:
    assert crontab_day_of_week(field) == names


def test_day_of_week_rejects_backwards_ranges() -> None:
    with pytest.raises(ValueError):
        crontab_day_of_week("5-1")


def test_zero_means_sunday_like_crontab() -> None:
    # 2024-06-02 is a Sunday; APScheduler 3.x alone would read 0 as Monday.
    cal = calendar({"cron": "0 3 * * 0", "duration": "1h"})
    assert cal.active("api", utc(2024, 6, 2, 3, 30))
    assert not cal.active("api", utc(2024, 6, 3, 3, 30))


# --- active -------------------------------------------------------------------------------------


def test_window_starts_inclusive_and_ends_exclusive() -> None:
    cal = calendar({"cron": "0 3 * * sun", "duration": "1h"})
    assert not cal.active("api", utc(2024, 6, 2, 2, 59, 59))
    assert cal.active("api", utc(2024, 6, 2, 3, 0))
    assert cal.active("api", utc(2024, 6, 2, 3, 59, 59))
    assert not cal.active("api", utc(2024, 6, 2, 4, 0))


def test_targets_limit_a_window() -> None:
    cal = calendar({"cron": "0 3 * * *", "duration": "1h", "targets": ["api"]})
    assert cal.active("api", utc(2024, 6, 2, 3, 30))
    assert not cal.active("other", utc(2024, 6, 2, 3, 30))


def test_window_without_targets_applies_to_all() -> None:
    cal = calendar({"cron": "0 3 * * *", "duration": "1h"})
    assert cal.active("anything", utc(2024, 6, 2, 3, 30))


def test_local_time_follows_the_time_zone_offset() -> None:
    cal = calendar({"cron": "0 2 * * *", "duration": "1h", "timezone": "Europe/Berlin"})
    # Summer: CEST (+2) -> 00:00 UTC. Winter: CET (+1) -> 01:00 UTC.
    assert cal.active("api", utc(2024, 7, 1, 0, 30))
    assert not cal.active("api", utc(2024, 7, 1, 1, 30))
    assert cal.active("api", utc(2024, 1, 10, 1, 30))
    assert not cal.active("api", utc(2024, 1, 10, 0, 30))


def test_aware_non_utc_times_are_accepted() -> None:
    cal = calendar({"cron": "0 3 * * *", "duration": "1h"})
    tokyo = ZoneInfo("Asia/Tokyo")
    assert cal.active("api", datetime(2024, 6, 2, 12, 30, tzinfo=tokyo))  # 03:30 UTC
    assert not cal.active("api", datetime(2024, 6, 2, 3, 30, tzinfo=tokyo))  # 18:30 UTC


def test_naive_times_are_refused() -> None:
    cal = calendar({"cron": "0 3 * * *", "duration": "1h"})
    with pytest.raises(ValueError, match="naive"):
        cal.active("api", datetime(2024, 6, 2, 3, 30))


# --- DST ------------------------------------------------------------------------------------------


def test_spring_forward_starts_a_skipped_time_after_the_gap() -> None:
    # 2024-03-31 Europe/Berlin: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    cal = calendar({"cron": "30 2 * * *", "duration": "2h", "timezone": "Europe/Berlin"})
    day = cal.intervals("api", utc(2024, 3, 31), utc(2024, 4, 1))
    assert day == [(utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 3, 30))]  # 03:30-05:30 CEST


def test_fall_back_starts_a_repeated_time_once() -> None:
    # 2024-10-27 Europe/Berlin: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    cal = calendar({"cron": "30 2 * * *", "duration": "2h", "timezone": "Europe/Berlin"})
    day = cal.intervals("api", utc(2024, 10, 27), utc(2024, 10, 28))
    assert day == [(utc(2024, 10, 27, 0, 30), utc(2024, 10, 27, 2, 30))]
    assert not cal.active("api", utc(2024, 10, 27, 2, 45))
    assert cal.overlap_seconds("api", utc(2024, 10, 26), utc(2024, 10, 29)) == 3 * 7200


def test_duration_is_elapsed_time_across_a_dst_change() -> None:
    # 01:00 CET on spring-forward day = 00:00 UTC; 3 real hours end at 03:00 UTC (05:00 CEST).
    cal = calendar({"cron": "0 1 * * *", "duration": "3h", "timezone": "Europe/Berlin"})
    assert cal.active("api", utc(2024, 3, 31, 2, 59))
    assert not cal.active("api", utc(2024, 3, 31, 3, 0))


def test_frequent_windows_keep_running_through_the_repeated_hour() -> None:
    # Every 15 minutes for 20 minutes: always in maintenance, DST or not.
    cal = calendar({"cron": "*/15 * * * *", "duration": "20m", "timezone": "Europe/Berlin"})
    since, until = utc(2024, 10, 26, 23), utc(2024, 10, 27, 3)
    assert cal.intervals("api", since, until) == [(since, until)]


# --- overlap and merging --------------------------------------------------------------------------


def test_overlap_of_a_daily_window_over_a_week() -> None:
    cal = calendar({"cron": "0 3 * * *", "duration": "1h"})
    assert cal.overlap_seconds("api", utc(2024, 6, 1), utc(2024, 6, 8)) == 7 * 3600


def test_overlap_is_clipped_to_the_range() -> None:
    cal = calendar({"cron": "0 3 * * *", "duration": "1h"})
    # Starts inside a window that opened before `since`, ends inside another.
    assert cal.overlap_seconds("api", utc(2024, 6, 1, 3, 40), utc(2024, 6, 2, 3, 10)) == 30 * 60
    assert cal.intervals("api", utc(2024, 6, 1, 3, 40), utc(2024, 6, 1, 3, 50)) == [
        (utc(2024, 6, 1, 3, 40), utc(2024, 6, 1, 3, 50))
    ]
    assert cal.overlap_seconds("api", utc(2024, 6, 1, 5), utc(2024, 6, 1, 6)) == 0
    assert cal.overlap_seconds("api", utc(2024, 6, 2), utc(2024, 6, 1)) == 0


def test_overlapping_windows_merge_and_are_not_counted_twice() -> None:
    cal = calendar(
        {"cron": "0 3 * * *", "duration": "2h"},
        {"cron": "0 4 * * *", "duration": "2h", "targets": ["api"]},
    )
    assert cal.intervals("api", utc(2024, 6, 1), utc(2024, 6, 2)) == [
        (utc(2024, 6, 1, 3), utc(2024, 6, 1, 6))
    ]
    assert cal.overlap_seconds("api", utc(2024, 6, 1), utc(2024, 6, 3)) == 2 * 3 * 3600
    assert cal.overlap_seconds("other", utc(2024, 6, 1), utc(2024, 6, 3)) == 2 * 2 * 3600


def test_no_windows_means_never_in_maintenance() -> None:
    cal = MaintenanceCalendar([])
    assert not cal.active("api", utc(2024, 6, 1))
    assert cal.overlap_seconds("api", utc(2024, 6, 1), utc(2024, 7, 1)) == 0
    assert cal.ends_at("api", utc(2024, 6, 1)) is None


def test_ends_at_follows_chained_windows() -> None:
    cal = calendar(
        {"cron": "0 3 * * *", "duration": "1h"},
        {"cron": "30 3 * * *", "duration": "1h"},
    )
    assert cal.ends_at("api", utc(2024, 6, 1, 3, 10)) == utc(2024, 6, 1, 4, 30)
    assert cal.ends_at("api", utc(2024, 6, 1, 5)) is None
