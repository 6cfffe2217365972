"""Badges: one target's uptime, latency, health or certificate expiry, drawn as a
shields.io-style SVG.

The badge_* readers read the store (blocking: the server calls them in a worker thread);
the rest is pure text layout. Each badge's tooltip (its SVG title) says what the figure
rests on: the probe and how many results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from checker.config.schema import Config, Target
from checker.render import env
from checker.store.plan import as_utc
from checker.store.queries import page as page_queries
from checker.store.queries.counts import window_counts_many
from checker.store.queries.status import WINDOWS, status
from checker.units import parse_duration
from checker.web.heartbeat import slow_rule
from checker.web.status_data import budgets
from checker.web.wording import HEALTH_WORDS, Health, health

__all__ = [
    "BADGE_WINDOWS",
    "HEALTH_COLORS",
    "Latency",
    "badge",
    "badge_color",
    "badge_context",
    "badge_health",
    "badge_latency",
    "badge_svg",
    "badge_uptime",
    "badge_value",
    "cert_badge",
    "health_badge",
    "latency_badge",
]

BADGE_WINDOWS: tuple[str, ...] = WINDOWS

# Approximate advance widths of Verdana 11px, the shields.io badge font.
_NARROW = frozenset("ilj.,:;|!'() ")
_WIDE = frozenset("mwMW%@")
_GREEN, _YELLOW, _RED, _GREY, _BLUE = "#44cc11", "#dfb317", "#e05d44", "#9f9f9f", "#007ec6"
HEALTH_COLORS: dict[Health, str] = {
    "up": _GREEN,
    "degraded": _YELLOW,
    "failing": "#fe7d37",
    "down": _RED,
    "unknown": _GREY,
}


# --- readers (blocking) ---------------------------------------------------------------------


def badge_uptime(
    engine: Engine, cfg: Config, target: Target, window: str, now: datetime
) -> float | None:
    """Uptime of one target over one of BADGE_WINDOWS ending now."""
    since = as_utc(now) - timedelta(seconds=parse_duration(window))
    rl = cfg.slo(target).count_rate_limited
    valid, bad = window_counts_many(engine, [target.name], since, as_utc(now), rl)[target.name]
    return (valid - bad) / valid if valid else None


@dataclass(frozen=True)
class Latency:
    probe: str
    p50_ms: float | None
    results: int  # the successful results the median rests on


def badge_latency(
    engine: Engine, cfg: Config, target: Target, window: str, now: datetime
) -> Latency:
    """The median latency of the target's primary probe over the window (never a mix of
    probes: a models call and a stream are different requests)."""
    row = status(
        engine,
        [target.name],
        as_utc(now),
        windows=(window,),
        main_window=window,
        count_rate_limited=cfg.slo(target).count_rate_limited,
        with_last=False,
        layout=cfg.probe_layout(),
    )[0].primary
    return Latency(target.primary, row.latency_ms.get("p50"), row.good)


@dataclass(frozen=True)
class _Newest:
    ok: bool | None


def badge_health(engine: Engine, cfg: Config, target: Target, now: datetime) -> Health:
    """The target's health as the status page words it."""
    now = as_utc(now)
    row = status(
        engine,
        [target.name],
        now,
        windows=("1h",),
        main_window="1h",
        count_rate_limited=cfg.slo(target).count_rate_limited,
        layout=cfg.probe_layout(),
    )[0]
    opened = [
        i
        for i in page_queries.incidents(engine, open_only=True, limit=0)
        if i.target == target.name
    ]
    budget = budgets(engine, cfg, [target], now)[target.name]
    newest = _Newest(None if not row.last else bool(row.last["ok"]))
    return health(newest, opened, budget.remaining)


# --- layout (pure) --------------------------------------------------------------------------


def _text_width(text: str) -> float:
    return sum(3.6 if ch in _NARROW else 10.0 if ch in _WIDE else 6.8 for ch in text)


def badge_color(uptime: float | None) -> str:
    """shields.io's colour scale, from bright green at 99.9 % down to red."""
    if uptime is None:
        return _GREY
    for floor, color in (
        (0.999, _GREEN),
        (0.99, "#97ca00"),
        (0.98, "#a4a61d"),
        (0.95, _YELLOW),
        (0.90, "#fe7d37"),
    ):
        if uptime >= floor:
            return color
    return _RED


def badge_value(uptime: float | None) -> str:
    """The badge's right-hand text: a percentage, truncated, or `no data`."""
    if uptime is None:
        return "no data"
    # Never round a failure up to 100%: 99.9996% shows as 99.999%.
    if uptime < 1.0:
        return f"{int(uptime * 100_000) / 1000:.3f}".rstrip("0").rstrip(".") + "%"
    return "100%"


def badge_context(label: str, value: str, color: str, title: str | None = None) -> dict[str, Any]:
    """What badge.svg.j2 needs: both texts, the colour, the tooltip and the geometry."""
    left = round(_text_width(label) + 12)
    right = round(_text_width(value) + 12)
    return {
        "label": label,
        "value": value,
        "color": color,
        "title": title or f"{label}: {value}",
        "left": left,
        "right": right,
        "width": left + right,
        "label_x": left / 2,
        "value_x": left + right / 2,
    }


def badge(label: str, value: str, color: str, title: str | None = None) -> str:
    return env().get_template("badge.svg.j2").render(**badge_context(label, value, color, title))


def badge_svg(window: str, uptime: float | None) -> str:
    """The `uptime <window>` badge for this uptime (None: no data)."""
    return badge(f"uptime {window}", badge_value(uptime), badge_color(uptime))


def latency_badge(cfg: Config, target: Target, window: str, found: Latency) -> str:
    """`latency 24h | 812 ms`: green within the target's latency objective (or alert
    threshold), red above it, blue when it has none."""
    label = f"latency {window}"
    if found.p50_ms is None:
        return badge(label, "no data", _GREY, f"{label}: no successful {found.probe} result")
    ms = found.p50_ms
    value = f"{ms / 1000:.2f} s" if ms >= 10_000 else f"{ms:,.0f} ms"
    rule = slow_rule(cfg, target)
    # The objective may be on TTFT: the badge's latency is then judged by nothing.
    color = _BLUE if rule is None or rule.metric != "latency_ms" else _GREEN
    if rule is not None and rule.metric == "latency_ms" and ms > rule.above_ms:
        color = _RED
    title = f"{label}: p50 {value} of the {found.probe} probe, {found.results:,} results"
    return badge(label, value, color, title)


def health_badge(state: Health) -> str:
    words = HEALTH_WORDS[state].lower()
    return badge("health", words, HEALTH_COLORS[state])


def cert_badge(days_left: float | None, warn_days: int | None) -> str:
    """`certificate | 41 days`: red within the cert rule's days (or expired), yellow
    within twice that, green beyond; days are truncated, never rounded up."""
    if days_left is None:
        return badge("certificate", "no data", _GREY, "certificate: not read yet")
    if days_left <= 0:
        return badge("certificate", "expired", _RED)
    days = math.floor(days_left)
    warn = warn_days or 14
    color = _RED if days_left <= warn else _YELLOW if days_left <= 2 * warn else _GREEN
    return badge("certificate", f"{days} {'day' if days == 1 else 'days'}", color)
