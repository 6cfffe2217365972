"""The digest's charts as geometry: whole pixels and colours a mail client can draw (pure).

Mail clients run no JavaScript, load no external image and render SVG unreliably (Gmail
and Outlook drop it), so every chart is table cells and divs with inline pixel sizes and
background colours, which survive css-inline, Gmail and Outlook. This module decides every
pixel and colour; templates/digest.html.j2 only places them.

Per route, over the period's hours:
- uptime bars: one per hour, height and colour from that hour's uptime over every probe
  (the SLO counts them all); an hour without a valid probe is blank, never drawn as 0 %;
- a TTFT band: the hour's p50 (a dark mark) and the spread up to its p95 (a light band),
  of the route's streaming probe only, so two probe kinds never share a percentile; an
  hour without a TTFT is blank. The scale is 0 to a round number above the day's top p95.
Per model (routes to the same model, checker.compare): the ranking, best first, with a
bar for the real price (the reference workload a month at the route's usage ratio).

Each chart carries how many probes it rests on. `UptimeChart.strip` gives the text digest
the same hourly uptime as one line of block characters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from checker.compare.view import CompareView

__all__ = [
    "BAND_PX",
    "BAR_MIN_PX",
    "COLOURS",
    "MARK_PX",
    "UPTIME_PX",
    "BandHour",
    "PriceBar",
    "RankingChart",
    "TtftBand",
    "UptimeBar",
    "UptimeChart",
    "UptimeState",
    "nice_ceiling",
    "ranking_charts",
    "ttft_band",
    "uptime_chart",
]

UPTIME_PX = 28  # chart heights
BAND_PX = 48
BAR_MIN_PX = 3  # an hour at 0 % still shows a red stub: a blank hour is something else
MARK_PX = 2  # the p50 mark

UptimeState = Literal["good", "degraded", "bad", "empty"]
COLOURS: dict[str, str] = {
    "good": "#2da44e",
    "degraded": "#d4a72c",
    "bad": "#cf222e",
    "empty": "#eaeef2",  # the background of a blank hour
    "band": "#b6d4fe",
    "mark": "#0550ae",
    "price": "#8c959f",
}
# Below this an hour is "bad" whatever the objective; between it and the objective, degraded.
DEGRADED_FROM = 0.9
_STEPS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)
_STRIP: dict[UptimeState, str] = {
    "good": "\u2588",
    "degraded": "\u2584",
    "bad": "\u2581",
    "empty": " ",
}


# --- uptime bars -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UptimeBar:
    start: datetime
    label: str  # local hour, e.g. "08"
    valid: int
    good: int
    px: int  # 0 for a blank hour
    state: UptimeState

    @property
    def uptime(self) -> float | None:
        return self.good / self.valid if self.valid else None

    @property
    def colour(self) -> str:
        return COLOURS[self.state]


@dataclass(frozen=True, slots=True)
class UptimeChart:
    bars: list[UptimeBar]
    probes: int  # valid probes over all hours
    height_px: int = UPTIME_PX

    @property
    def strip(self) -> str:
        """The bars as one line for the text digest: a full block for an hour at or above
        the objective, a half block for a degraded hour, a low one for a bad hour, a space
        for a blank hour. (A block per uptime level would draw 99 % and 90 % alike.)"""
        return "".join(_STRIP[bar.state] for bar in self.bars)


def _state(uptime: float, objective: float) -> UptimeState:
    if uptime >= objective:
        return "good"
    return "degraded" if uptime >= DEGRADED_FROM else "bad"


def uptime_chart(
    hours: Sequence[tuple[datetime, str, int, int]], objective: float, height_px: int = UPTIME_PX
) -> UptimeChart:
    """One bar per (hour start, label, valid, good): height in proportion to the uptime
    (at least BAR_MIN_PX), colour against the objective."""
    bars = []
    for start, label, valid, good in hours:
        if valid <= 0:
            bars.append(UptimeBar(start, label, 0, 0, 0, "empty"))
            continue
        uptime = good / valid
        px = max(round(uptime * height_px), BAR_MIN_PX)
        bars.append(UptimeBar(start, label, valid, good, px, _state(uptime, objective)))
    return UptimeChart(bars, sum(b.valid for b in bars), height_px)


# --- the TTFT band ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BandHour:
    """One hour of the band, as stacked pixels from the top: gap (above p95), band (p95
    down to p50), mark (the p50), base (below it). All 0 for a blank hour."""

    start: datetime
    label: str
    count: int  # TTFTs the hour's percentiles rest on
    p50: float | None
    p95: float | None
    gap_px: int
    band_px: int
    mark_px: int
    base_px: int

    @property
    def blank(self) -> bool:
        return self.p50 is None


@dataclass(frozen=True, slots=True)
class TtftBand:
    probe: str | None  # None: the route runs no streaming probe
    hours: list[BandHour]
    top_ms: float | None  # the value at the chart's top; None without any TTFT
    probes: int
    height_px: int = BAND_PX

    @property
    def empty(self) -> bool:
        return self.top_ms is None

    @property
    def band_colour(self) -> str:
        return COLOURS["band"]

    @property
    def mark_colour(self) -> str:
        return COLOURS["mark"]


def nice_ceiling(value: float) -> float:
    """The smallest round number >= value (> 0): 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a
    power of ten, so the largest value fills at least two thirds of the chart."""
    if value <= 0 or not math.isfinite(value):
        raise ValueError(f"expected a positive number (got {value})")
    power = 10.0 ** math.floor(math.log10(value))
    # The next decade too: log10 of a value just above a power of ten may round below it.
    for base in (power, power * 10):
        for step in _STEPS:
            if step * base >= value:
                return step * base
    return power * 100  # unreachable: power * 10 > value


def _band_hour(
    start: datetime,
    label: str,
    count: int,
    p50: float | None,
    p95: float | None,
    top: float,
    height_px: int,
) -> BandHour:
    if p50 is None or count <= 0:
        return BandHour(start, label, 0, None, None, 0, 0, 0, 0)
    high = p95 if p95 is not None and p95 >= p50 else p50
    y50 = min(max(round(p50 / top * height_px), MARK_PX), height_px)
    y95 = min(max(round(high / top * height_px), y50), height_px)
    return BandHour(
        start, label, count, p50, high, height_px - y95, y95 - y50, MARK_PX, y50 - MARK_PX
    )


def ttft_band(
    probe: str | None,
    hours: Sequence[tuple[datetime, str, int, float | None, float | None]],
    height_px: int = BAND_PX,
) -> TtftBand:
    """The band of one probe's (hour start, label, count, p50, p95) hours."""
    tops = [p95 if p95 is not None else p50 for _, _, n, p50, p95 in hours if n and p50]
    top = nice_ceiling(max(tops)) if tops else None
    cells = [
        _band_hour(start, label, n, p50, p95, top, height_px)
        if top is not None
        else BandHour(start, label, 0, None, None, 0, 0, 0, 0)
        for start, label, n, p50, p95 in hours
    ]
    return TtftBand(probe, cells, top, sum(c.count for c in cells), height_px)


# --- the ranking per model -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceBar:
    rank: int
    target: str
    n: int  # probes of the compared probe in the window
    monthly_usd: float | None  # the reference workload at the route's usage ratio
    output_per_mtok: float | None  # the real output price
    pct: int  # bar width, % of the dearest route's (a phone's width varies); 0: no price
    flags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RankingChart:
    model: str
    probe: str
    reference: str | None
    bars: list[PriceBar]
    probes: int

    @property
    def colour(self) -> str:
        return COLOURS["price"]


def ranking_charts(view: CompareView | None) -> list[RankingChart]:
    """One chart per model group, routes in rank order, bars against the group's dearest."""
    if view is None:
        return []
    charts = []
    for group in view.groups:
        routes = sorted(group.routes, key=lambda r: (r.rank, r.target))
        prices = [r.workload_usd_per_month for r in routes if r.workload_usd_per_month]
        dearest = max(prices, default=0.0)
        bars = [
            PriceBar(
                rank=r.rank,
                target=r.target,
                n=r.n,
                monthly_usd=r.workload_usd_per_month,
                output_per_mtok=r.usd_per_mtok_output,
                pct=max(round(r.workload_usd_per_month / dearest * 100), 1)
                if r.workload_usd_per_month and dearest
                else 0,
                flags=tuple(r.flags),
            )
            for r in routes
        ]
        charts.append(
            RankingChart(group.model, view.probe, group.reference, bars, sum(b.n for b in bars))
        )
    return charts
