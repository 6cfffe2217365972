"""Parsing of human units used in the config: durations and percentages (pure)."""

from __future__ import annotations

import math
import re

# One or more number-unit parts, largest unit first: `90s`, `1m30s`, `1h 30m`, `1.5h`.
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_ORDER = ("w", "d", "h", "m", "s", "ms")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def _parts(text: str) -> list[tuple[str, str]] | None:
    """The (number, unit) parts of `1m30s`, or None unless the whole text is such parts
    with each unit once and the larger first (`30s1m` is a typo, not 90 seconds)."""
    parts, pos = [], 0
    while m := _PART.match(text, pos):
        parts.append((m.group(1), m.group(2)))
        pos = m.end()
    units = [unit for _, unit in parts]
    ordered = sorted(units, key=_ORDER.index) == units and len(set(units)) == len(units)
    return parts if parts and text[pos:].strip() == "" and ordered else None


def parse_duration(value: object) -> float:
    """Seconds from `500ms`, `30s`, `1m30s`, `5m`, `1h`, `30d`, `1w`; a bare number means
    seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 500ms, 30s, 1m30s, 5m, 1h, 30d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (parts := _parts(value)):
        seconds = sum(float(number) * _SECONDS[unit] for number, unit in parts)
    else:
        raise ValueError(f"expected a duration like 500ms, 30s, 1m30s, 5m, 1h, 30d (got {value!r})")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive duration (got {value!r})")
    return seconds


# The longest duration a config may hold: the longest retention anyone keeps. Past it a
# number is a typo, and at 1e20 days a datetime overflows.
MAX_CONFIG_DURATION_S = 400 * 86400.0


def parse_config_duration(value: object) -> float:
    """parse_duration, bounded to 400 days (MAX_CONFIG_DURATION_S)."""
    seconds = parse_duration(value)
    if seconds > MAX_CONFIG_DURATION_S:
        raise ValueError(f"expected a duration of at most 400d (got {value!r})")
    return seconds


def parse_window(value: str, longest_s: float) -> float:
    """Seconds of a query window (`12h`, `90d`): at least a minute (shorter holds too few
    probes to mean anything) and at most `longest_s` (the rollup retention: older results
    are gone). ValueError says what is expected; it does not echo the value (a web query
    parameter must not be reflected)."""
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = 0.0
    if not 60.0 <= seconds <= longest_s:
        raise ValueError(
            f"expected a duration from 1m to {format_duration(longest_s)} "
            "(the rollup retention), like 1h, 24h, 7d or 90d"
        )
    return seconds


def parse_fraction(value: object) -> float:
    """A fraction in (0, 1) from `99.5%` or 0.995."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage like 99.5%")
    if isinstance(value, str) and (m := _PERCENT.match(value)):
        frac = float(m.group(1)) / 100.0
    elif isinstance(value, int | float):
        frac = float(value)
    else:
        raise ValueError(f"expected a percentage like 99.5% (got {value!r})")
    if not 0.0 < frac < 1.0:
        raise ValueError(f"expected a percentage strictly between 0% and 100% (got {value!r})")
    return frac


def format_duration(seconds: float) -> str:
    """Shortest exact rendering, for messages: 90 -> '90s', 3600 -> '1h'."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"


def format_elapsed(seconds: float) -> str:
    """A length of time for people, its two largest units: '45s', '12m 5s', '1h 12m',
    '3d 4h' (rounded to the second; negative clock skew reads as 0s)."""
    left = max(0, round(seconds))
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        size = int(_SECONDS[unit])
        count, left = divmod(left, size)
        if count or parts:
            parts.append(f"{count}{unit}")
    # Two units at most, the smaller dropped when it is zero: '2h', not '2h 0m'.
    shown = parts[:2] if parts else ["0s"]
    return " ".join(p for i, p in enumerate(shown) if i == 0 or not p.startswith("0"))


__all__ = [
    "MAX_CONFIG_DURATION_S",
    "format_duration",
    "format_elapsed",
    "parse_config_duration",
    "parse_duration",
    "parse_fraction",
    "parse_window",
]
