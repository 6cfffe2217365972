"""Fixtures that start the simulated OpenAI-compatible server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checker.sim import SimServer

SIM_API_KEY = "sk-sim-SECRET-0123456789"


def _serve(api_key: str | None) -> Iterator[SimServer]:
    # Own loop in its own thread: the simulator's timing never shares an event loop with
    # the checker under test, and sync tests can use it too.
    server = SimServer(api_key=api_key)
    server.start_in_thread()
    try:
        yield server
    finally:
        server.stop_thread()


@pytest.fixture
def sim() -> Iterator[SimServer]:
    yield from _serve(None)


@pytest.fixture
def sim_with_key() -> Iterator[SimServer]:
    yield from _serve(SIM_API_KEY)
