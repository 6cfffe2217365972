"""Polling for tests: the one place that waits for a condition, sync or async.

`becomes_true` returns whether the condition held in time, so a test can attach its own
message (`assert becomes_true(...), service.log()`); `wait_until` and `eventually` fail the
test with one clear line instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

__all__ = ["abecomes_true", "becomes_true", "eventually", "wait_until"]


def becomes_true(condition: Callable[[], bool], within: float, every: float = 0.05) -> bool:
    """Poll from synchronous code; the condition's value at the deadline."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return condition()


async def abecomes_true(condition: Callable[[], bool], within: float, every: float = 0.02) -> bool:
    """Poll without blocking the event loop (the service under test may run on it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(every)
    return condition()


def wait_until(condition: Callable[[], bool], within: float = 10.0, every: float = 0.05) -> None:
    if not becomes_true(condition, within, every):
        pytest.fail(f"condition not met within {within}s")


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    if not await abecomes_true(condition, within):
        pytest.fail(f"condition not met within {within}s")
