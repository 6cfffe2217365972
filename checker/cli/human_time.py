"""Moments for people reading a terminal: local time, whole seconds, the zone's name.

The JSON keeps ISO 8601 UTC at full precision; the tables say "2026-12-07 14:03:12 CET".
`tz=None` is the local zone as the process sees it (TZ, else the system's), which
`datetime.astimezone` reads; tests pass a zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

__all__ = ["local_clock", "local_time", "parse_utc"]


def parse_utc(value: str | datetime) -> datetime:
    """An aware datetime from the ISO 8601 the JSON carries ('...Z' or '+00:00'); a naive
    one is UTC, as the database stores it."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _local(at: str | datetime, tz: tzinfo | None) -> datetime:
    # Microseconds dropped, not rounded: a moment never moves into the next second.
    return parse_utc(at).astimezone(tz).replace(microsecond=0)


def local_time(at: str | datetime, tz: tzinfo | None = None) -> str:
    """'2026-12-07 14:03:12 CET'."""
    return _local(at, tz).strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def local_clock(at: str | datetime, tz: tzinfo | None = None) -> str:
    """'14:03:12 CET': a moment within the next hours, where the date goes without saying."""
    return _local(at, tz).strftime("%H:%M:%S %Z").rstrip()
