"""The long-running service: building it, starting and stopping it, reloading its config.

Wiring only: measuring lives in probes/, storing in store/, judging in alerting/. What is
scheduled when is the job table in jobs.py; spend caps and Retry-After holds are
accounting.py; the SLO gauges are gauges.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from time import perf_counter
from typing import Any

from apscheduler.schedulers.base import STATE_RUNNING

from checker import logs
from checker.alerting.certs import CertWatch
from checker.alerting.channels import load_channels
from checker.alerting.deliver import Deliverer
from checker.alerting.evaluator import Context as EvalContext
from checker.alerting.maintenance import MaintenanceCalendar
from checker.config import load as config_mod
from checker.config.load import ConfigError
from checker.config.schema import Config
from checker.cost.tokens import warm_up as warm_up_tokens
from checker.probes.base import ProbeResult
from checker.redact import Redactor
from checker.service import jobs, sdnotify
from checker.service.accounting import Accounting, CostLimits
from checker.service.clock import SYSTEM_CLOCK, Clock
from checker.service.concurrency import concurrency_limit
from checker.service.gc_policy import CollectorPolicy
from checker.service.health import Heartbeat, service_health
from checker.service.housekeeping import digest_wanted, prune_old, roll_up, send_digest
from checker.service.judging import Judging
from checker.service.node import TICK_S, Node
from checker.service.results import log_transition, settle
from checker.store.leader import Leadership
from checker.store.single_node import SingleNodeLock
from checker.web.metrics import Metrics

__all__ = ["Service"]

log = logging.getLogger("checker.service")


class Service:
    """One process's probes, writer, evaluator, deliverer and web server, started together."""

    def __init__(
        self,
        config_path: Path | None,
        cfg: Config,
        *,
        on_result: Callable[[ProbeResult], None] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        location: str | None = None,
    ) -> None:
        self.clock = clock
        self.config_path = config_path
        self._location = location  # --location: wins over the config's, across reloads
        cfg = self._localized(cfg)
        self.cfg = cfg
        # Config.target() scans the list: at 500 targets that was a measurable part of each
        # probe job (py-spy at 5,000 probes/min). Rebuilt on reload.
        self._targets = {t.name: t for t in cfg.targets}
        self.cost_limits = CostLimits(clock)
        self.redactor = Redactor(cfg.secrets())
        self.accounting = Accounting(clock, cfg.location)
        self.inflight: set[asyncio.Task[Any]] = set()
        self._jobs_running: set[asyncio.Task[Any]] = set()  # see jobs.schedule
        self.skipped: dict[str, int] = {"retry_after": 0, "spend_cap": 0, "max_instances": 0}
        self._on_result = on_result
        self._stopping = asyncio.Event()
        self._started = False
        self._watchdog: asyncio.Task[None] | None = None
        self.max_concurrency = concurrency_limit(cfg)  # probes in flight at once
        self._semaphore = asyncio.Semaphore(self.max_concurrency)
        self._calendar = MaintenanceCalendar(cfg.maintenance)
        self.metrics = Metrics(cfg.location)
        self.lag = jobs.StartLag(self.metrics)  # planned start to slot, for metrics and the bench
        self.scheduler_lag_s = self.lag.lags  # recent lags (seconds), newest last
        self.web: Any = None
        self.certs = CertWatch()
        self.metrics.bind_targets(lambda: self.cfg, lambda: self.certs.expiry)
        self.heartbeat = Heartbeat(self.clock.monotonic)
        self._gc = CollectorPolicy()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        from checker.cost.prices import PriceBook
        from checker.probes.transport.pool import ClientPool
        from checker.store import db
        from checker.store.models import sync_targets
        from checker.store.startup import upgrade_or_explain
        from checker.store.writer import ResultWriter

        url = self.cfg.storage.resolved_url()
        await asyncio.to_thread(upgrade_or_explain, url)
        self._single_node = SingleNodeLock(url)
        self._single_node.acquire(f"pid {os.getpid()}, location {self.cfg.location}")
        self.engine = db.make_engine(url)
        await asyncio.to_thread(sync_targets, self.engine, self.cfg)
        self.prices = await asyncio.to_thread(PriceBook, self.cfg)
        # Tokenizer files load in ~0.7 s: never on the event loop while probes run.
        await asyncio.to_thread(warm_up_tokens, [t.model for t in self.cfg.targets])
        self.writer = ResultWriter(
            self.engine, self.cfg.storage, on_flush=lambda rows: self.judging.after_flush(rows)
        )
        await self.writer.start()
        await self.accounting.load_spend_today(self.engine)
        await self.accounting.sync_holds(self.engine)  # before the first probe runs
        self.pool = ClientPool(self.cfg)
        self.leadership = Leadership(self.engine)
        self.node = Node(
            self.engine,
            self.cfg.location,
            self.leadership,
            self.accounting,
            self.metrics,
            self.clock,
        )
        self.channels = load_channels(self.cfg)
        self.deliverer = Deliverer(
            self.engine,
            lambda: self.channels,
            lambda: self.redactor,
            on_attempt=self._on_delivery,
        )
        self.deliverer.start()
        self.judging = Judging(
            self.engine,
            self._eval_context,
            self.leadership,
            self.deliverer,
            self.metrics,
            cfg=lambda: self.cfg,
            now=self.clock.now,
            reprobe=lambda name, probe: self._probe_job(name, probe, scheduled=False),
            known=lambda name: name in self._targets,
        )
        self.metrics.bind_queue(lambda: self.writer.queue_depth, lambda: self.writer.dropped)
        self.scheduler = jobs.ProbeScheduler(timezone=UTC)
        jobs.watch_lag(self.scheduler, self.metrics, self.lag, self.skipped)
        jobs.schedule_probes(self.scheduler, self.cfg, self._probe_job)
        self._schedule(self._job_table(self.cfg))
        self.scheduler.start()
        self._started = True
        if self.cfg.server is not None:
            from checker.web.server import WebServer

            self.web = WebServer(
                lambda: self.cfg,
                self.engine,
                self.metrics,
                service_health(
                    self.engine,
                    lambda: self.cfg,
                    lambda: getattr(self, "writer", None),
                    self.heartbeat,
                    lambda: self._started and self.scheduler.state == STATE_RUNNING,
                    self.metrics,
                ),
                cert_days_left=self.certs.days_left,
            )
            await self.web.start()
        self._gc.started(self.cfg)
        # Idleness counts from readiness: a slow start (a loaded machine, a long migration)
        # is not "no probe started".
        self.heartbeat.beat()
        sdnotify.notify("READY=1\nSTATUS=probing")
        if (every := sdnotify.watchdog_interval()) is not None:
            self._watchdog = asyncio.create_task(
                sdnotify.watchdog_loop(every, lambda: self.scheduler.running)
            )
        log.info(
            "service started: %d targets, %d probe jobs, storage %s",
            len(self.cfg.targets),
            sum(len(t.probe_names) for t in self.cfg.targets),
            db.describe(self.engine),
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        await self.start()
        await self._stopping.wait()
        await self.stop()
        return 0

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self, seconds: float | None = None) -> bool:
        """Wait for a stop request; False when `seconds` ran out first."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop scheduling, give in-flight probes a grace, flush every result, then exit."""
        if not self._started:
            return
        self._started = False
        sdnotify.notify("STOPPING=1")
        log.info("stopping: %d probes in flight", len(self.inflight))
        # Pause, not shut down: APScheduler's shutdown cancels running jobs, and in-flight
        # probes deserve their grace period to finish and be recorded.
        self.scheduler.pause()
        await asyncio.sleep(0)  # jobs submitted just now start, and so register themselves
        if running := self.inflight | self._jobs_running:
            _done, pending = await asyncio.wait(running, timeout=self.cfg.scheduler.shutdown_grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        self.scheduler.shutdown(wait=False)
        if self._watchdog:
            self._watchdog.cancel()
        if self.web is not None:
            await self.web.stop()
        await self.writer.close()
        await self.judging.close()
        await self.deliverer.close()
        await self.pool.aclose()
        await self.node.stop()
        await asyncio.to_thread(self.leadership.release)
        await asyncio.to_thread(self.engine.dispose)
        self._single_node.release()
        self._gc.stopped()  # unfreezes: what start() froze may be garbage now
        log.info(
            "stopped: %d results written, %d dropped, %d still queued",
            self.writer.written,
            self.writer.dropped,
            self.writer.queue_depth,
        )

    async def reload(self) -> bool:
        """SIGHUP: apply a new config without a restart; a broken one is rejected, old kept."""
        if self.config_path is None:
            return False
        try:
            new = self._localized(await asyncio.to_thread(config_mod.load, self.config_path))
            # Before anything is swapped: an unreadable apprise_config rejects the reload.
            channels = await asyncio.to_thread(load_channels, new)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected, keeping the running config: %s", problem)
            self.metrics.reloads.labels("rejected").inc()
            return False
        except ValueError as exc:
            log.error("reload rejected, keeping the running config: %s", exc)
            self.metrics.reloads.labels("rejected").inc()
            return False
        if new.storage.resolved_url() != self.cfg.storage.resolved_url():
            log.warning("reload: storage.url changes need a restart; keeping the old database")
        # Before the swap: a model that needs another encoding would otherwise load it
        # (~0.5 s) at its first count, on the event loop.
        await asyncio.to_thread(warm_up_tokens, [t.model for t in new.targets])
        old = self.cfg
        self.cfg = new
        self._targets = {t.name: t for t in new.targets}
        self.cost_limits = CostLimits(self.clock)  # the new config's limits
        self.redactor = Redactor(new.secrets())
        self._calendar = MaintenanceCalendar(new.maintenance)
        logs.set_redactor(self.redactor)
        self.pool.update(new)
        if (limit := concurrency_limit(new)) != self.max_concurrency:  # old runs keep old slots
            self.max_concurrency, self._semaphore = limit, asyncio.Semaphore(limit)
        from checker.cost.prices import PriceBook
        from checker.store.models import sync_targets

        self.prices = await asyncio.to_thread(PriceBook, new)
        self.channels = channels
        await asyncio.to_thread(sync_targets, self.engine, new)
        added, changed, removed = jobs.schedule_probes(self.scheduler, new, self._probe_job)
        self._schedule([job for job in self._job_table(new) if job.reschedule])
        # New or moved https targets: read their certificates now, not in up to 6 hours.
        self.scheduler.modify_job("housekeeping:certs", next_run_time=datetime.now(UTC))
        for gone in {t.name for t in old.targets} - {t.name for t in new.targets}:
            self.metrics.forget_target(gone, old.target(gone).probe_names)
        self.metrics.reloads.labels("ok").inc()
        self._gc.reloaded()  # the new config, jobs and series join the frozen objects
        log.info("config reloaded: %d jobs added, %d changed, %d removed", added, changed, removed)
        return True

    def _localized(self, cfg: Config) -> Config:
        if self._location is None or self._location == cfg.location:
            return cfg
        return cfg.model_copy(update={"location": self._location})

    # --- scheduling -------------------------------------------------------------------------

    def _job_table(self, cfg: Config) -> list[jobs.JobSpec]:
        return jobs.service_jobs(
            cfg,
            evaluate=self.judging.round,
            digest=lambda: send_digest(
                self.engine, self.cfg, self.prices, self.redactor, self.clock.now()
            ),
            digest_wanted=lambda: digest_wanted(self.channels, self.cfg),
            rollup=partial(roll_up, self.engine, self.clock.now),
            prune=lambda: prune_old(self.engine, self.cfg.storage, self.clock.now()),
            certs=lambda: self.certs.refresh(self.cfg),
            node_tick=self.node.tick,
            node_tick_s=TICK_S,
        )

    def _schedule(self, specs: list[jobs.JobSpec]) -> None:
        jobs.schedule(
            self.scheduler, specs, leads=self.leadership.check, running=self._jobs_running
        )

    # --- the probe job ----------------------------------------------------------------------

    async def _probe_job(self, target_name: str, probe: str, *, scheduled: bool = True) -> None:
        from checker.probes.runner import run_probe

        self.heartbeat.beat()
        jid = jobs.job_id(target_name, probe) if scheduled else None  # None: a re-probe
        target = self._targets.get(target_name)
        if target is None:  # removed by a reload while this run was queued
            return
        if (why := self.accounting.why_not(target, probe)) is not None:
            self.skipped[why] += 1
            self.metrics.skipped.labels(why).inc()
            return
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
        try:
            async with self._semaphore:
                self.lag.started(jid)  # the lag includes the wait for this slot
                began = perf_counter()  # real elapsed time, for failed runs too
                result = await run_probe(self.cfg, target, probe, self.pool, self.redactor)
                took = perf_counter() - began
            settle(
                target,
                result,
                prices=self.prices,
                accounting=self.accounting,
                metrics=self.metrics,
                usage_ratio_band=self.cfg.digest.usage_ratio_band,
                hold_max_s=self.cfg.retry_after_max(target),
            )
            maintenance = self._calendar.active(target.name, result.started_at)
            self.writer.submit(result, maintenance=maintenance)
            self.metrics.observe(result, took)
            log_transition(self.accounting.runtime(target.name), target, result)
            if self._on_result is not None:
                self._on_result(result)
        finally:
            if task is not None:
                self.inflight.discard(task)

    def _eval_context(self) -> EvalContext:
        return EvalContext(
            cfg=self.cfg,
            calendar=self._calendar,
            channels=self.channels,
            redactor=self.redactor,
            spend_today=self.accounting.spend_today,
            cert_days_left=self.certs.days_left,
            output_price=lambda name: self.prices.output_per_mtok(
                self._targets.get(name), self.clock.now()
            ),
            rate_limit_hold=self.accounting.held_for,
            nodes=self.node.live_nodes,
            probe_cost_limit=lambda name, probe: self.cost_limits.limit(
                self._targets.get(name), probe, self.prices
            ),
        )

    def _on_delivery(self, outcome: str) -> None:
        if outcome != "delivered":
            self.metrics.delivery_failures.inc()
