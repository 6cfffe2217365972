"""Per-route state: standing behaviours, scripts, counters and server-side timings.

The registry is shared by the server's loop and the threads that control it
(`SimServer.set/script/stats` from a test), so every access takes its lock.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from checker.sim.behaviour import Behavior

__all__ = ["DEFAULT_ROUTE", "MAX_TIMINGS", "ROUTE_PATTERN", "Registry", "Timing", "check_route"]

ROUTE_PATTERN = "[a-z0-9-]+"
DEFAULT_ROUTE = "default"
MAX_TIMINGS = 10_000

_ROUTE_RE = re.compile(rf"^{ROUTE_PATTERN}$")


@dataclass
class Timing:
    """Server-side ground truth of one request; time.perf_counter() values (monotonic)."""

    route: str
    endpoint: str
    received: float
    headers_sent: float | None = None
    first_token_sent: float | None = None
    first_answer_sent: float | None = None  # the first answer (not reasoning) token
    last_byte_sent: float | None = None
    tokens_sent: int = 0
    token_times: list[float] = field(default_factory=list)  # every token chunk's send time
    prompt_sha: str | None = None  # of the last user message, so tests can compare bodies
    prompt_tokens: int | None = None  # as reported in usage
    cached_tokens: int | None = None  # as reported in usage
    # What the request asked for: max_tokens, reasoning_effort, temperature (when sent).
    asked: dict[str, Any] = field(default_factory=dict)

    @property
    def ttft_ms(self) -> float | None:
        if self.first_token_sent is None:
            return None
        return (self.first_token_sent - self.received) * 1000

    @property
    def ttfo_ms(self) -> float | None:
        if self.first_answer_sent is None:
            return None
        return (self.first_answer_sent - self.received) * 1000

    @property
    def duration_ms(self) -> float | None:
        if self.last_byte_sent is None:
            return None
        return (self.last_byte_sent - self.received) * 1000


@dataclass
class _Route:
    standing: Behavior = field(default_factory=Behavior)
    script: deque[Behavior] = field(default_factory=deque)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    completed: int = 0
    cached_prefixes: set[str] = field(default_factory=set)  # digests, for Behavior.cache


def check_route(route: str) -> None:
    if not isinstance(route, str) or not _ROUTE_RE.match(route):
        raise ValueError(f"route name must match {ROUTE_PATTERN}: {route!r}")


class Registry:
    """Routes, scripts, counters and timings; shared by the server loop and other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._timings: deque[Timing] = deque(maxlen=MAX_TIMINGS)

    def _route(self, name: str) -> _Route:
        route = self._routes.get(name)
        if route is None:
            route = self._routes[name] = _Route()
        return route

    def set(self, name: str, behavior: Behavior) -> None:
        with self._lock:
            self._route(name).standing = behavior

    def script(self, name: str, behaviors: list[Behavior]) -> None:
        with self._lock:
            self._route(name).script = deque(behaviors)

    def standing(self, name: str) -> Behavior:
        with self._lock:
            return self._route(name).standing

    def next_for_chat(self, name: str) -> Behavior:
        with self._lock:
            route = self._route(name)
            return route.script.popleft() if route.script else route.standing

    def begin(self, name: str, endpoint: str, timing: Timing) -> None:
        with self._lock:
            self._route(name).requests[endpoint] += 1
            self._timings.append(timing)

    def cache_lookup(self, name: str, prefix_digest: str) -> bool:
        """Whether the route saw this prompt prefix before; remembers it either way."""
        with self._lock:
            seen = self._route(name).cached_prefixes
            hit = prefix_digest in seen
            seen.add(prefix_digest)
            return hit

    def status(self, name: str, status: int) -> None:
        with self._lock:
            self._route(name).statuses[status] += 1

    def completed(self, name: str) -> None:
        with self._lock:
            self._route(name).completed += 1

    def stats(self, name: str | None) -> dict[str, Any]:
        with self._lock:
            names = [name] if name is not None else list(self._routes)
            requests: Counter[str] = Counter()
            statuses: Counter[int] = Counter()
            completed = 0
            for n in names:
                route = self._routes.get(n)
                if route is not None:
                    requests.update(route.requests)
                    statuses.update(route.statuses)
                    completed += route.completed
            return {"requests": dict(requests), "status": dict(statuses), "completed": completed}

    def route_names(self) -> list[str]:
        with self._lock:
            return list(self._routes)

    def timings(self, name: str | None) -> list[Timing]:
        with self._lock:
            return [dataclasses.replace(t) for t in self._timings if name in (None, t.route)]

    def reset_stats(self) -> None:
        with self._lock:
            self._timings.clear()
            for route in self._routes.values():
                route.requests.clear()
                route.statuses.clear()
                route.completed = 0
