"""The status page's charts (pure): blank before the first result, a lone value visible."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from checker.store.queries.page import DayUptime
from checker.store.queries.series import HourPoint
from checker.web.charts import BAR_STEP, daily_bars, hourly_bars, spark

NOW = datetime(2026, 6, 3, 9, 30, tzinfo=UTC)


def hour(h: datetime, valid: int = 0, good: int = 0, latency: float | None = None) -> HourPoint:
    return HourPoint(h, valid, valid, good, latency, None, None, None)


def test_daily_bars_start_at_the_first_result() -> None:
    first = date(2026, 6, 1)
    days = [DayUptime(first - timedelta(days=i), 0, 0, 0) for i in range(88, 0, -1)]
    days += [DayUptime(first, 10, 10, 10), DayUptime(first + timedelta(days=1), 0, 0, 0)]
    days += [DayUptime(first + timedelta(days=2), 12, 10, 5)]
    chart = daily_bars(days, 0.995)
    assert len(chart.bars) == 91 and chart.width == 91 * BAR_STEP
    assert [b.level for b in chart.drawn] == ["ok", "major"]
    assert chart.bars[0].label == "2026-03-05 · before the first result"
    assert chart.bars[89].label == "2026-06-02 · no results"  # a gap after the first: blank
    assert chart.bars[88].label == "2026-06-01 · 100% (10 of 10 ok)"
    assert chart.bars[90].label == "2026-06-03 · 50.00% (5 of 10 ok)"
    assert (chart.first, chart.valid, chart.uptime) == ("2026-06-01", 20, 0.75)


def test_hourly_bars_and_a_single_point_are_drawn() -> None:
    hours = [NOW.replace(minute=0) - timedelta(hours=i) for i in range(24, -1, -1)]
    series = [hour(h) for h in hours[:-1]] + [hour(hours[-1], 1, 1, 812.0)]
    chart = hourly_bars(series, 0.995)
    assert [(b.x, b.label) for b in chart.drawn] == [
        (24 * BAR_STEP, "09:00 UTC · 100% (1 of 1 ok)")
    ]
    assert chart.first == "09:00 UTC"
    line = spark(series, [p.latency_p50 for p in series], "latency p50")
    # The route's only value so far, at the right edge: a tick, not an invisible dot.
    assert line.path == "M287.5,3.0 L300.0,3.0"
    assert line.hours[-1].label == "09:00 UTC · latency p50 812 ms of 1 ok"
    assert line.hours[0].label == "09:00 UTC · latency p50 no data"
    empty = hourly_bars([hour(h) for h in hours], 0.995)
    assert (empty.drawn, empty.first, empty.uptime, empty.valid) == ((), None, None, 0)
