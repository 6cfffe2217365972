"""Uptime badges: one target's uptime over a window, drawn as a shields.io-style SVG.

badge_uptime reads the store (blocking: the server calls it in a worker thread); the rest
is pure text layout.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from checker.config.schema import Config, Target
from checker.render import env
from checker.store.plan import as_utc
from checker.store.queries.counts import window_counts_many
from checker.store.queries.status import WINDOWS
from checker.units import parse_duration

__all__ = [
    "BADGE_WINDOWS",
    "badge_color",
    "badge_context",
    "badge_svg",
    "badge_uptime",
    "badge_value",
]

BADGE_WINDOWS: tuple[str, ...] = WINDOWS

# Approximate advance widths of Verdana 11px, the shields.io badge font.
_NARROW = frozenset("ilj.,:;|!'() ")
_WIDE = frozenset("mwMW%@")


def badge_uptime(
    engine: Engine, cfg: Config, target: Target, window: str, now: datetime
) -> float | None:
    """Uptime of one target over one of BADGE_WINDOWS ending now."""
    since = as_utc(now) - timedelta(seconds=parse_duration(window))
    rl = cfg.slo(target).count_rate_limited
    valid, bad = window_counts_many(engine, [target.name], since, as_utc(now), rl)[target.name]
    return (valid - bad) / valid if valid else None


def _text_width(text: str) -> float:
    return sum(3.6 if ch in _NARROW else 10.0 if ch in _WIDE else 6.8 for ch in text)


def badge_color(uptime: float | None) -> str:
    """shields.io's colour scale, from bright green at 99.9 % down to red."""
    if uptime is None:
        return "#9f9f9f"
    for floor, color in (
        (0.999, "#44cc11"),
        (0.99, "#97ca00"),
        (0.98, "#a4a61d"),
        (0.95, "#dfb317"),
        (0.90, "#fe7d37"),
    ):
        if uptime >= floor:
            return color
    return "#e05d44"


def badge_value(uptime: float | None) -> str:
    """The badge's right-hand text: a percentage, truncated, or `no data`."""
    if uptime is None:
        return "no data"
    # Never round a failure up to 100%: 99.9996% shows as 99.999%.
    if uptime < 1.0:
        return f"{int(uptime * 100_000) / 1000:.3f}".rstrip("0").rstrip(".") + "%"
    return "100%"


def badge_context(label: str, value: str, color: str) -> dict[str, Any]:
    """What badge.svg.j2 needs: both texts, the colour and the measured geometry."""
    left = round(_text_width(label) + 12)
    right = round(_text_width(value) + 12)
    return {
        "label": label,
        "value": value,
        "color": color,
        "left": left,
        "right": right,
        "width": left + right,
        "label_x": left / 2,
        "value_x": left + right / 2,
    }


def badge_svg(window: str, uptime: float | None) -> str:
    """The `uptime <window>` badge for this uptime (None: no data)."""
    ctx = badge_context(f"uptime {window}", badge_value(uptime), badge_color(uptime))
    return env().get_template("badge.svg.j2").render(**ctx)
