"""What the service asks of the garbage collector, and when.

Modules, the config, the tokenizer, SQLAlchemy's and pydantic's structures, then the
per-target objects the first round of probes builds (connection pools, SLO counters,
metric series): hundreds of thousands of objects that live as long as the process. Every
full collection walked them all, 130-250 ms on the event loop every few seconds at 5,000
probes/min (and over a second at 10,000 with prometheus_client's series), and those pauses
were the scheduler's worst lags. `gc.freeze()` moves them to the permanent generation, where
no collection looks; objects made later are collected as before.

So: freeze at the end of start-up, again once the first interval has run (warm-up: every
target probed once), and after each reload (the new config and its jobs). Each freeze
follows a full `gc.collect()`, so no garbage is frozen (unless another thread is collecting
at that moment, its finalizer having released the GIL: then `gc.collect()` returns at once
and that round's cyclic garbage is frozen with the rest, once). `stopped()` unfreezes: what was
frozen may be garbage once the service is gone (a process hosting services, the tests).

The young generation's threshold is raised from 700 to 10,000 allocations: a probe
allocates a few thousand short-lived objects (request, response, parser, coroutine
frames), so with 700 several collections ran per probe and promoted live in-flight
objects to older generations, which the full collections then walked. Measured with
bench/footprint.py at 5,000 streaming targets (10,000 probes/min, 72 s): full collections
45 -> 1, time in the collector 15.7 -> 6.4 s; at 250 targets no full or middle collection
ran at all (docs/PERFORMANCE.md, "Memory and GC").
"""

from __future__ import annotations

import asyncio
import gc
from time import perf_counter

from checker.config.schema import Config
from checker.service import gc_stats

__all__ = ["GEN0_THRESHOLD", "MAX_WARMUP_S", "CollectorPolicy", "freeze_now", "warmup_s"]

GEN0_THRESHOLD = 10_000
MAX_WARMUP_S = 600.0  # a 1 h interval still gets its warm-up freeze within 10 minutes


def freeze_now() -> None:
    """Collect, then move every surviving object to the permanent generation (the benches
    do this to their own clients, as the service does)."""
    gc.collect()
    gc.freeze()


def warmup_s(cfg: Config) -> float:
    """When every probe has run once: the longest interval (first runs are spread over it)
    plus that target's timeout."""
    return max((cfg.interval(t) + cfg.timeout(t) for t in cfg.targets), default=0.0)


class CollectorPolicy:
    """Freezes after start-up, warm-up and reloads; records pauses with CHECKER_GC_STATS."""

    def __init__(self) -> None:
        self._pauses = gc_stats.from_environment()
        self._later: asyncio.TimerHandle | None = None
        self._thresholds = gc.get_threshold()

    def started(self, cfg: Config) -> None:
        """Start-up is done: freeze now, and again when the first round of probes is over."""
        gc.set_threshold(GEN0_THRESHOLD, *self._thresholds[1:])
        self._freeze()
        loop = asyncio.get_running_loop()
        self._later = loop.call_later(min(warmup_s(cfg), MAX_WARMUP_S), self._freeze)
        if self._pauses is not None:
            self._pauses.install()

    def reloaded(self) -> None:
        self._freeze()

    def _freeze(self) -> None:
        # Our own full collection is timed apart: it runs once at a known moment, while the
        # recorder's figures are the collections the interpreter starts on its own.
        began = perf_counter()
        if self._pauses is not None:
            with self._pauses.paused():
                freeze_now()
        else:
            freeze_now()
        if self._pauses is not None:
            self._pauses.freezes_s.append(perf_counter() - began)

    def stopped(self) -> None:
        if self._later is not None:
            self._later.cancel()
        if self._pauses is not None:
            self._pauses.write()
        gc.unfreeze()
        gc.set_threshold(*self._thresholds)
