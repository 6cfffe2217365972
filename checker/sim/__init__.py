"""The simulator: an OpenAI- and Anthropic-compatible endpoint with exact, scriptable behaviour.

Tests, the demo and the benchmarks point probes at it to get known latencies, token counts
and faults. It stands alone: it imports no other part of checker.

  behaviour.py  what a route does (Behavior, its validation, the tokens it generates)
  dialects.py   the OpenAI and Anthropic wire shapes (bodies, usage, errors, SSE events)
  routes.py     per-route state: standing behaviours, scripts, counters, Timing
  exchange.py   one request/response cycle: timed writes, waits, injected faults
  server.py     sockets, lifecycle, URL wiring, HTTP control, `checker sim`
"""

from checker.sim.behaviour import FAULTS, Behavior, Fault, split_even
from checker.sim.routes import DEFAULT_ROUTE, Timing
from checker.sim.server import SimServer, run_forever

__all__ = [
    "DEFAULT_ROUTE",
    "FAULTS",
    "Behavior",
    "Fault",
    "SimServer",
    "Timing",
    "run_forever",
    "split_even",
]
