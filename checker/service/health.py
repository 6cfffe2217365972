"""What `/healthz` says: the service is healthy when it probes and what it measures lands.

503 with the reason when the scheduler is stopped or has run no probe for two of the
shortest intervals, when results could not be written for longer than
`storage.unhealthy_after`, when the writer queue is over 90% full, or when the database
does not answer. The same facts are gauges on /metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.config.schema import Config
from checker.store.db import ping
from checker.store.writer import ResultWriter
from checker.web.metrics import Metrics

__all__ = ["QUEUE_FULL_SHARE", "Heartbeat", "service_health"]

QUEUE_FULL_SHARE = 0.9


@dataclass
class Heartbeat:
    """When the scheduler last started a probe job (monotonic seconds)."""

    clock: Callable[[], float]
    last_probe: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.last_probe = self.clock()  # start-up counts as a beat

    def beat(self) -> None:
        self.last_probe = self.clock()


def service_health(
    engine: Engine,
    cfg: Callable[[], Config],
    writer: Callable[[], ResultWriter | None],
    heartbeat: Heartbeat,
    scheduler_running: Callable[[], bool],
    metrics: Metrics,
) -> Callable[[], tuple[bool, str]]:
    """A blocking health check (it pings the database): the web server runs it in a thread."""

    def check() -> tuple[bool, str]:
        current = cfg()
        now = heartbeat.clock()
        w = writer()
        failing_s = w.failing_for(time.monotonic()) if w is not None else 0.0
        fill = w.queue_depth / w.queue_max if w is not None else 0.0
        idle = now - heartbeat.last_probe
        metrics.writer_failing.set(failing_s)
        metrics.scheduler_idle.set(idle)
        reason = None
        intervals = [current.interval(t) for t in current.targets]
        if not scheduler_running():
            reason = "scheduler is not running"
        elif intervals and idle > 2 * min(intervals):
            reason = f"no probe started for {idle:.0f}s (two intervals: {2 * min(intervals):g}s)"
        elif failing_s > current.storage.unhealthy_after:
            error = w.last_error if w is not None else None
            reason = f"results not written for {failing_s:.0f}s ({error})"
        elif fill > QUEUE_FULL_SHARE:
            reason = f"result queue {fill:.0%} full"
        if reason is None:
            try:
                ping(engine)
            except sa.exc.SQLAlchemyError as exc:
                reason = f"database does not answer ({type(exc).__name__})"
        metrics.healthy.set(0 if reason else 1)
        return (reason is None, reason or "ok")

    return check
