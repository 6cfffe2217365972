"""The service's clock: what "now" is for its decisions (holds, spend days, rounds' `now`).

Production uses the system clock. A test passes an `OffsetClock` and advances it, instead of
sleeping until, say, a Retry-After hold runs out. APScheduler keeps real time regardless:
when jobs fire is the system's clock, what they judge is this one's.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "OffsetClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall-clock time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for durations and deadlines)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()


class OffsetClock:
    """The system clock, moved on by every `advance()` so far (both readings alike)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self.offset += seconds

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset
