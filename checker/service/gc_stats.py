"""Garbage-collector pauses of the running service, for the footprint bench.

With `CHECKER_GC_STATS=PATH` in its environment the service times every collection from
the end of its start-up (after `gc.freeze()`) with a `gc.callbacks` callback, in wall time
(the pause the event loop sees) and in the thread's CPU time (the collector's own work,
without the time another process held the core), and writes a summary per generation to
PATH as JSON when it stops. Without the variable nothing is installed. The pure part
(`summarize`) takes the recorded pauses and does no I/O.
"""

from __future__ import annotations

import gc
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter, thread_time
from typing import Any

__all__ = ["ENV_VAR", "GcPauses", "from_environment", "summarize"]

ENV_VAR = "CHECKER_GC_STATS"
# A bound on what is kept: at 10,000 probes/min there are a few young collections a second.
_MAX_PAUSES = 200_000


def summarize(pauses_s: dict[int, list[float]]) -> dict[str, dict[str, float | int]]:
    """Per generation: how many collections, and their p50, p99 and max pause in ms."""
    out: dict[str, dict[str, float | int]] = {}
    for generation in sorted(pauses_s):
        values = sorted(p * 1000 for p in pauses_s[generation])
        if not values:
            continue

        def rank(q: float, v: list[float] = values) -> float:
            # Nearest rank: a real pause, never an interpolation between two.
            return v[max(math.ceil(q * len(v)) - 1, 0)]

        out[str(generation)] = {
            "collections": len(values),
            "p50_ms": round(rank(0.50), 3),
            "p99_ms": round(rank(0.99), 3),
            "max_ms": round(values[-1], 3),
            "total_ms": round(sum(values), 1),
        }
    return out


class GcPauses:
    """Times each collection by generation while installed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pauses_s: dict[int, list[float]] = {0: [], 1: [], 2: []}
        # The same collections in CPU time of the collecting thread: the wall-clock pause
        # also holds any time the OS gave the core to another process meanwhile.
        self.cpu_s: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.freezes_s: list[float] = []  # the service's own collect-and-freeze, apart
        # Each full collection: seconds since install, wall ms, CPU ms (they are few).
        self.full: list[tuple[float, float, float]] = []
        self._installed = perf_counter()
        self._began: float | None = None
        self._began_cpu = 0.0
        self._kept = 0
        self._paused = False

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if self._paused:
            return
        if phase == "start":
            self._began, self._began_cpu = perf_counter(), thread_time()
        elif self._began is not None:
            if self._kept < _MAX_PAUSES:
                self.pauses_s[info["generation"]].append(perf_counter() - self._began)
                self.cpu_s[info["generation"]].append(thread_time() - self._began_cpu)
                self._kept += 1
                if info["generation"] == 2:
                    wall, cpu = self.pauses_s[2][-1], self.cpu_s[2][-1]
                    at = self._began - self._installed
                    self.full.append((round(at, 1), round(wall * 1000, 1), round(cpu * 1000, 1)))
            self._began = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Collections inside are not recorded (the service's deliberate ones)."""
        self._paused, self._began = True, None
        try:
            yield
        finally:
            self._paused = False

    def install(self) -> None:
        self._installed = perf_counter()
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def write(self) -> None:
        """Uninstall and write the summary (also the thresholds and frozen-object count)."""
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)
        report = {
            "generations": summarize(self.pauses_s),
            "cpu": summarize(self.cpu_s),
            "thresholds": list(gc.get_threshold()),
            "frozen": gc.get_freeze_count(),
            "freezes_ms": [round(f * 1000, 1) for f in self.freezes_s],
            "full": self.full,
        }
        self.path.write_text(json.dumps(report))


def from_environment() -> GcPauses | None:
    """A recorder when CHECKER_GC_STATS names a file, else None."""
    path = os.environ.get(ENV_VAR)
    return GcPauses(Path(path)) if path else None
