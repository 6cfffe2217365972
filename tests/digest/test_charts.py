"""The digest's chart geometry (checker.digest.charts): whole pixels that add up, blank
hours that stay blank, scales that hold every value, counts that match their hours."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.compare.view import CompareView, GroupView, RouteView
from checker.digest.charts import (
    BAND_PX,
    BAR_MIN_PX,
    MARK_PX,
    UPTIME_PX,
    nice_ceiling,
    ranking_charts,
    ttft_band,
    uptime_chart,
)

FAST = settings(max_examples=100, deadline=None)
T0 = datetime(2026, 5, 11, 8, tzinfo=UTC)
counts = st.tuples(st.integers(0, 500), st.integers(0, 500)).map(
    lambda vg: (max(vg), min(vg))  # (valid, good), good <= valid
)
ms = st.floats(0.5, 120_000, allow_nan=False)


def hour(i: int) -> tuple[datetime, str]:
    at = T0 + timedelta(hours=i)
    return at, f"{at:%H}"


@FAST
@given(st.lists(counts, max_size=30), st.floats(0.5, 0.99999))
def test_uptime_bars_fit_the_chart_and_blank_hours_stay_blank(
    hours: list[tuple[int, int]], objective: float
) -> None:
    chart = uptime_chart([(*hour(i), v, g) for i, (v, g) in enumerate(hours)], objective)
    assert len(chart.bars) == len(hours) == len(chart.strip)
    assert chart.probes == sum(v for v, _ in hours)  # what the chart rests on
    for bar, (valid, good) in zip(chart.bars, hours, strict=True):
        if valid == 0:  # blank, never a 0 % bar
            assert (bar.px, bar.state, bar.uptime) == (0, "empty", None)
            continue
        assert BAR_MIN_PX <= bar.px <= UPTIME_PX
        assert bar.uptime == good / valid
        assert bar.state == (
            "good" if good / valid >= objective else "degraded" if good / valid >= 0.9 else "bad"
        )
    # Taller means more uptime.
    drawn = sorted((b for b in chart.bars if b.valid), key=lambda b: b.uptime or 0.0)
    assert [b.px for b in drawn] == sorted(b.px for b in drawn)


def test_uptime_strip_reads_by_state() -> None:
    rows = [(*hour(0), 100, 100), (*hour(1), 100, 95), (*hour(2), 100, 10), (*hour(3), 0, 0)]
    chart = uptime_chart(rows, 0.99)
    assert chart.strip == "\u2588\u2584\u2581 "
    assert [b.px for b in chart.bars] == [UPTIME_PX, round(0.95 * UPTIME_PX), BAR_MIN_PX, 0]


@FAST
@given(st.floats(1e-6, 1e9, allow_nan=False))
def test_nice_ceiling_is_round_and_close_above(value: float) -> None:
    top = nice_ceiling(value)
    assert value <= top and top <= 1.5 * value * (1 + 1e-9)
    mantissa = top / 10 ** math.floor(math.log10(top) + 1e-9)
    assert any(math.isclose(mantissa, step) for step in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10))


def test_nice_ceiling_examples_and_bad_input() -> None:
    assert [nice_ceiling(v) for v in (1, 1.1, 2, 2.2, 3.5, 7, 9, 10, 1164, 0.031)] == [
        1, 1.5, 2, 2.5, 4, 8, 10, 10, 1500, 0.04
    ]  # fmt: skip
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            nice_ceiling(bad)


band_hours = st.lists(
    st.one_of(
        st.just((0, None, None)),
        st.tuples(st.integers(1, 300), ms, ms).map(lambda t: (t[0], min(t[1:]), max(t[1:]))),
    ),
    max_size=30,
)


@FAST
@given(band_hours)
def test_band_pixels_stack_to_the_chart_height_with_p50_under_p95(
    hours: list[tuple[int, float | None, float | None]],
) -> None:
    band = ttft_band("stream", [(*hour(i), *h) for i, h in enumerate(hours)])
    assert len(band.hours) == len(hours)
    assert band.probes == sum(n for n, _, _ in hours)
    values = [p95 for n, _, p95 in hours if n]
    if not values:
        assert band.empty and all(h.blank for h in band.hours)
        return
    assert band.top_ms is not None and band.top_ms >= max(v for v in values if v is not None)
    for h, (n, p50, p95) in zip(band.hours, hours, strict=True):
        parts = (h.gap_px, h.band_px, h.mark_px, h.base_px)
        if not n:
            assert h.blank and parts == (0, 0, 0, 0)
            continue
        assert sum(parts) == BAND_PX and min(parts) >= 0 and h.mark_px == MARK_PX
        assert (h.count, h.p50, h.p95) == (n, p50, p95)
        # The mark sits at the p50, the band's top at the p95, within a pixel of rounding.
        assert p50 is not None and p95 is not None
        top_of_mark = h.base_px + h.mark_px
        assert abs(top_of_mark - p50 / band.top_ms * BAND_PX) <= max(1, MARK_PX)
        assert abs(top_of_mark + h.band_px - p95 / band.top_ms * BAND_PX) <= max(1, MARK_PX)


def test_band_of_a_route_without_a_streaming_probe_is_empty() -> None:
    band = ttft_band(None, [(*hour(0), 0, None, None)])
    assert band.empty and band.probe is None and band.probes == 0


def route(target: str, rank: int, n: int, monthly: float | None) -> RouteView:
    return RouteView(
        target, rank, n, 0.99, (0.98, 1.0), {"p50": 300.0}, {"p50": 600.0}, 60.0, None, 1.0,
        0.6, monthly, {}, [],
    )  # fmt: skip


def test_ranking_in_rank_order_with_bars_against_the_dearest_route() -> None:
    view = CompareView(
        "24h",
        "stream",
        [
            GroupView(
                "gpt-4o-mini",
                "direct",
                [
                    route("relay", 2, 90, 4.0),
                    route("direct", 1, 100, 2.0),
                    route("new", 3, 5, None),
                ],
            )
        ],
    )
    [chart] = ranking_charts(view)
    assert [b.target for b in chart.bars] == ["direct", "relay", "new"]
    assert [b.pct for b in chart.bars] == [50, 100, 0]
    assert chart.probes == 195 and chart.probe == "stream" and chart.reference == "direct"
    assert ranking_charts(None) == []
