"""The status page's charts (pure): uptime bars (hourly over 24 h, daily over 90 days) and
latency sparklines, laid out as SVG coordinates with a tooltip per bucket.

Buckets without results are blank, never drawn as down: a route added yesterday shows 88
blank days and two bars, not 88 red ones. A chart starts at its first result, and a lone
value (a route's first hour) is drawn as a visible tick, not a zero-length line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

__all__ = [
    "BAR_STEP",
    "Bar",
    "BarChart",
    "DayLike",
    "HourLike",
    "Level",
    "SparkHour",
    "Sparkline",
    "daily_bars",
    "hourly_bars",
    "level",
    "pct",
    "spark",
    "sparkline",
]

Level = Literal["ok", "minor", "major", "none"]
BAR_STEP = 6  # SVG units per bar; a bar is 4.4 wide, the rest is the gap


class DayLike(Protocol):
    """One UTC day of uptime (store.queries.page.DayUptime)."""

    @property
    def day(self) -> date: ...
    @property
    def total(self) -> int: ...
    @property
    def valid(self) -> int: ...
    @property
    def good(self) -> int: ...


class HourLike(Protocol):
    """One hour of a series (store.queries.series.HourPoint)."""

    @property
    def hour(self) -> datetime: ...
    @property
    def results(self) -> int: ...
    @property
    def valid(self) -> int: ...
    @property
    def good(self) -> int: ...
    @property
    def latency_p50(self) -> float | None: ...
    @property
    def ttft_p50(self) -> float | None: ...


def level(uptime: float | None, objective: float) -> Level:
    """ok: met the objective; minor: within ten budgets of it; major: worse; none: no data."""
    if uptime is None:
        return "none"
    if uptime >= objective:
        return "ok"
    if uptime >= 1 - 10 * (1 - objective):
        return "minor"
    return "major"


def pct(x: float | None) -> str:
    """A share truncated to 0.01 % (99.999 % is not 100 %); `-` without data."""
    if x is None:
        return "-"
    if x >= 1:
        return "100%"
    return f"{int(x * 10000) / 100:.2f}%"


# --- uptime bars ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: int
    level: Level  # "none": blank
    label: str  # tooltip


@dataclass(frozen=True)
class BarChart:
    bars: tuple[Bar, ...]
    width: int
    uptime: float | None  # over the whole chart
    valid: int  # the results it rests on
    first: str | None  # the first bucket with results, when it is not the chart's first

    @property
    def drawn(self) -> tuple[Bar, ...]:
        """The bars with results: blank buckets draw nothing."""
        return tuple(b for b in self.bars if b.level != "none")


def _chart(cells: Sequence[tuple[str, int, int, int]], objective: float) -> BarChart:
    """cells: (bucket label, results, valid, good) per bucket, oldest first."""
    bars = []
    first = next((i for i, c in enumerate(cells) if c[1]), None)
    for i, (name, results, valid, good) in enumerate(cells):
        uptime = good / valid if valid else None
        if uptime is not None:
            text = f"{name} · {pct(uptime)} ({good} of {valid} ok)"
        elif results:
            text = f"{name} · maintenance only"
        elif first is None or i < first:
            text = f"{name} · before the first result"
        else:
            text = f"{name} · no results"
        bars.append(Bar(i * BAR_STEP, level(uptime, objective), text))
    valid = sum(c[2] for c in cells)
    good = sum(c[3] for c in cells)
    return BarChart(
        tuple(bars),
        len(cells) * BAR_STEP,
        good / valid if valid else None,
        valid,
        cells[first][0] if first else None,
    )


def daily_bars(days: Sequence[DayLike], objective: float) -> BarChart:
    """One bar per UTC day (every probe: the SLO's view)."""
    return _chart([(d.day.isoformat(), d.total, d.valid, d.good) for d in days], objective)


def hourly_bars(hours: Sequence[HourLike], objective: float) -> BarChart:
    """One bar per hour (the series' probe)."""
    return _chart([(f"{h.hour:%H:00} UTC", h.results, h.valid, h.good) for h in hours], objective)


# --- sparklines -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkHour:
    x: float
    width: float
    label: str  # tooltip


@dataclass(frozen=True)
class Sparkline:
    path: str  # SVG path data; gaps where an hour has no value
    hours: tuple[SparkHour, ...]
    latest: float | None
    high: float | None
    width: float
    height: float


def sparkline(
    values: Sequence[float | None],
    labels: Sequence[str],
    width: float = 300.0,
    height: float = 44.0,
    pad: float = 3.0,
) -> Sparkline:
    """A line over `values` scaled from 0 to the highest value (a baseline at zero keeps
    small wobbles small); None values break the line."""
    n = len(values)
    present = [v for v in values if v is not None]
    high = max(present) if present else None
    step = width / max(n - 1, 1)
    scale = (height - 2 * pad) / high if high else 0.0
    segments: list[list[tuple[float, float]]] = []
    previous: float | None = None
    for i, v in enumerate(values):
        if v is not None:
            point = (i * step, height - pad - v * scale)
            if previous is None:
                segments.append([point])
            else:
                segments[-1].append(point)
        previous = v
    paths = []
    for seg in segments:
        if len(seg) == 1:
            # A lone hour between gaps (or a route's first): a tick one hour wide, centred
            # on it but kept inside the chart, so it shows at any zoom.
            x, y = seg[0]
            left = min(max(0.0, x - step / 2), max(0.0, width - step))
            right = min(width, left + step)
            paths.append(f"M{left:.1f},{y:.1f} L{right:.1f},{y:.1f}")
        else:
            paths.append("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in seg))
    hours = tuple(
        SparkHour(x=max(0.0, i * step - step / 2), width=step, label=labels[i]) for i in range(n)
    )
    latest = next((v for v in reversed(values) if v is not None), None)
    return Sparkline(" ".join(paths), hours, latest, high, width, height)


def spark(points: Sequence[HourLike], values: Sequence[float | None], what: str) -> Sparkline:
    """A sparkline of one figure of an hourly series, each hour's value in its tooltip with
    the successful results it rests on."""
    labels = []
    for p, value in zip(points, values, strict=True):
        shown = "no data" if value is None else f"{value:,.0f} ms of {p.good} ok"
        labels.append(f"{p.hour:%H:00} UTC · {what} {shown}")
    return sparkline(values, labels)
