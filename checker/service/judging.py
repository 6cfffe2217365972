"""When the service judges: right after each flush (only `down`, for the targets just
written: results count once committed) and in the periodic round (every rule with every
window, then the SLO gauges). Only the leader judges; a failure to confirm runs a re-probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from checker.alerting.deliver import Deliverer
from checker.alerting.evaluator import Context, EvaluatorTask, window_signals
from checker.alerting.outbox import pending_count
from checker.config.schema import Config
from checker.probes.base import ProbeResult
from checker.service.gauges import update_slo_gauges
from checker.store.leader import Leadership
from checker.web.metrics import Metrics

__all__ = ["Judging"]

log = logging.getLogger("checker.service")


class Judging:
    def __init__(
        self,
        engine: Engine,
        context: Callable[[], Context],
        leadership: Leadership,
        deliverer: Deliverer,
        metrics: Metrics,
        *,
        cfg: Callable[[], Config],
        now: Callable[[], datetime],
        reprobe: Callable[[str, str], Any],
        known: Callable[[str], bool],
    ) -> None:
        self.engine = engine
        self.evaluator = EvaluatorTask(engine, context)
        self.leadership = leadership
        self.deliverer = deliverer
        self.metrics = metrics
        self._cfg = cfg
        self._now = now
        self._reprobe = reprobe
        self._known = known
        self._flushed: set[str] = set()
        self._flush_eval: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def after_flush(self, rows: list[ProbeResult]) -> None:
        """Runs in the background and coalesces: the writer never waits for the evaluator."""
        self._flushed.update(r.target for r in rows)
        if self._flush_eval is None or self._flush_eval.done():
            self._flush_eval = asyncio.create_task(self._evaluate_flushed())

    async def _evaluate_flushed(self) -> None:
        while self._flushed:
            names, self._flushed = self._flushed, set()
            if not await asyncio.to_thread(self.leadership.check):
                return
            confirms = await self.evaluator.run(sorted(names), windows=False)
            self._confirm(confirms)
            self.deliverer.wake()

    async def round(self) -> None:
        """The periodic round: every rule with every window, and the SLO gauges."""
        cfg, now = self._cfg(), self._now()
        # Read once for both: the rules and the gauges need the same window counts.
        try:
            counts = await asyncio.to_thread(window_signals, self.engine, cfg, cfg.targets, now)
        except SQLAlchemyError as exc:  # the database is away: the next round tries again
            log.warning("evaluation skipped: database error %s", type(exc).__name__)
            return
        confirms = await self.evaluator.run(counts=counts, now=now)
        self._confirm(confirms)
        self.deliverer.wake()
        await update_slo_gauges(self.engine, self.metrics, cfg, counts, now)
        self.metrics.outbox.set(await asyncio.to_thread(pending_count, self.engine))

    def _confirm(self, requests: list[Any]) -> None:
        """Run the confirmation re-probe now; its stored result decides whether `down` fires."""
        for req in requests:
            if not self._known(req.target):
                continue
            log.info("%s %s: confirming the failure with a re-probe", req.target, req.probe)
            task = asyncio.create_task(self._reprobe(req.target, req.probe))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Results flushed just now may complete an incident: judge them before leaving."""
        if self._flush_eval is not None:
            await asyncio.wait({self._flush_eval}, timeout=5)
        for task in list(self._background):
            task.cancel()
