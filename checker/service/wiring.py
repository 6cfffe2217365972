"""The long-running service: scheduled probes, the writer, signals, systemd notification.

Wiring only: measuring lives in probes/, storing in store/, judging in slo.py/rules.py.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import importlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from checker import logs
from checker.alerting.certs import CHECK_EVERY_S, CertWatch
from checker.alerting.channels import load_channels, route
from checker.alerting.deliver import Deliverer
from checker.alerting.evaluator import Context as EvalContext
from checker.alerting.evaluator import EvaluatorTask
from checker.alerting.maintenance import MaintenanceCalendar
from checker.alerting.outbox import pending_count
from checker.alerting.slo import WindowCounts
from checker.config import schema as config_mod
from checker.config.schema import FREE_PROBES, Config, ConfigError, Target
from checker.cost.tokens import count_output_tokens
from checker.cost.tokens import warm_up as warm_up_tokens
from checker.probes.base import ErrorKind, ProbeResult
from checker.redact import Redactor
from checker.service import sdnotify
from checker.store.leader import Leadership
from checker.units import format_duration
from checker.web.metrics import Metrics

log = logging.getLogger("checker.service")

PROBE_JOB_PREFIX = "probe:"


def job_id(target: str, probe: str) -> str:
    return f"{PROBE_JOB_PREFIX}{target}:{probe}"


def spread_offset(key: str, interval: float) -> float:
    """A stable start offset within the interval, so 500 targets never fire at once.

    Stable across restarts (a hash, not random), so a restart does not bunch probes up.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") / 2**64) * interval


def finish_before_stop(
    job: Callable[[Service], Awaitable[None]],
) -> Callable[[Service], Awaitable[None]]:
    """A scheduled job that stop() lets finish within the shutdown grace, like a probe.

    APScheduler's shutdown cancels running jobs and logs each as failed: an evaluation
    round cut short by a routine stop would leave an ERROR line and a half-judged round.
    """

    @functools.wraps(job)
    async def tracked(self: Service) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._jobs_running.add(task)
        try:
            await job(self)
        finally:
            if task is not None:
                self._jobs_running.discard(task)

    return tracked


@dataclass
class TargetState:
    """What the scheduler remembers about a target between probes (in memory)."""

    hold_until: float = 0.0  # monotonic; a 429 Retry-After holds the target until then
    spend_day: str = ""
    spend_usd: float = 0.0
    last_ok: dict[str, bool] = field(default_factory=dict)


class Service:
    def __init__(
        self,
        config_path: Path | None,
        cfg: Config,
        *,
        on_result: Callable[[ProbeResult], None] | None = None,
    ) -> None:
        self.config_path = config_path
        self.cfg = cfg
        # Config.target() scans the list: at 500 targets that was a measurable part of each
        # probe job (py-spy at 5,000 probes/min). Rebuilt on reload.
        self._targets = {t.name: t for t in cfg.targets}
        self.redactor = Redactor(cfg.secrets())
        self.states: dict[str, TargetState] = {}
        self.inflight: set[asyncio.Task[Any]] = set()
        self._jobs_running: set[asyncio.Task[Any]] = set()  # see finish_before_stop
        self.scheduler_lag_s: list[float] = []  # recent lags, for metrics and the bench
        self.skipped: dict[str, int] = {"retry_after": 0, "spend_cap": 0, "max_instances": 0}
        self._on_result = on_result
        self._stopping = asyncio.Event()
        self._started = False
        self._watchdog: asyncio.Task[None] | None = None
        self._semaphore = asyncio.Semaphore(cfg.scheduler.max_concurrency)
        self._calendar = MaintenanceCalendar(cfg.maintenance)
        self.metrics = Metrics()
        self.web: Any = None
        self._flushed_targets: set[str] = set()
        self._flush_eval: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.certs = CertWatch()

    # --- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        from checker.cost.prices import PriceBook
        from checker.probes.measure import ClientPool
        from checker.store import db, migrate
        from checker.store.models import sync_targets
        from checker.store.writer import ResultWriter

        url = self.cfg.storage.resolved_url()
        await asyncio.to_thread(migrate.upgrade, url)
        self.engine = db.make_engine(url)
        await asyncio.to_thread(sync_targets, self.engine, self.cfg)
        self.prices = await asyncio.to_thread(PriceBook, self.cfg)
        # Tokenizer files load in ~0.7 s: never on the event loop while probes run.
        await asyncio.to_thread(warm_up_tokens, [t.model for t in self.cfg.targets])
        self.writer = ResultWriter(self.engine, self.cfg.storage, on_flush=self._after_flush)
        await self.writer.start()
        await self._load_spend_today()
        self.pool = ClientPool(self.cfg)
        self.leadership = Leadership(self.engine)
        self.channels = load_channels(self.cfg)
        self.evaluator = EvaluatorTask(self.engine, self._eval_context)
        self.deliverer = Deliverer(
            self.engine,
            lambda: self.channels,
            lambda: self.redactor,
            on_attempt=self._on_delivery,
        )
        self.deliverer.start()
        self.metrics.bind_queue(lambda: self.writer.queue_depth, lambda: self.writer.dropped)
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.scheduler.add_listener(
            self._on_job_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES
        )
        self._schedule_probes(self.cfg)
        self._schedule_housekeeping()
        self._schedule_leader_jobs(self.cfg)
        self.scheduler.start()
        self._started = True
        if self.cfg.server is not None:
            from checker.web.server import WebServer, database_health

            self.web = WebServer(
                lambda: self.cfg,
                self.engine,
                self.metrics,
                database_health(
                    self.engine,
                    lambda: self._started and self.scheduler.state == STATE_RUNNING,
                ),
            )
            await self.web.start()
        _freeze_startup_objects()
        sdnotify.notify("READY=1\nSTATUS=probing")
        if (every := sdnotify.watchdog_interval()) is not None:
            self._watchdog = asyncio.create_task(self._watchdog_loop(every))
        log.info(
            "service started: %d targets, %d probe jobs, storage %s",
            len(self.cfg.targets),
            sum(len(t.probe_names) for t in self.cfg.targets),
            _describe_url(url),
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
        # Results flushed just now may complete an incident: judge them before leaving.
        if self._flush_eval is not None:
            await asyncio.wait({self._flush_eval}, timeout=5)
        for task in list(self._background):
            task.cancel()
        await self.deliverer.close()
        await self.pool.aclose()
        await asyncio.to_thread(self.leadership.release)
        await asyncio.to_thread(self.engine.dispose)
        gc.unfreeze()  # what start() froze may be garbage now (a process hosting services)
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
            new = await asyncio.to_thread(config_mod.load, self.config_path)
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
        self.redactor = Redactor(new.secrets())
        self._calendar = MaintenanceCalendar(new.maintenance)
        logs.set_redactor(self.redactor)
        self.pool.update(new)
        from checker.cost.prices import PriceBook
        from checker.store.models import sync_targets

        self.prices = await asyncio.to_thread(PriceBook, new)
        self.channels = channels
        await asyncio.to_thread(sync_targets, self.engine, new)
        added, changed, removed = self._schedule_probes(new, old)
        self._schedule_leader_jobs(new)
        # New or moved https targets: read their certificates now, not in up to 6 hours.
        self.scheduler.modify_job("housekeeping:certs", next_run_time=datetime.now(UTC))
        for gone in {t.name for t in old.targets} - {t.name for t in new.targets}:
            self.metrics.forget_target(gone, old.target(gone).probe_names)
        self.metrics.reloads.labels("ok").inc()
        log.info("config reloaded: %d jobs added, %d changed, %d removed", added, changed, removed)
        return True

    # --- scheduling -------------------------------------------------------------------------

    def _schedule_probes(self, cfg: Config, old: Config | None = None) -> tuple[int, int, int]:
        wanted: dict[str, tuple[Target, str, float]] = {}
        for t in cfg.targets:
            for p in t.probe_names:
                wanted[job_id(t.name, p)] = (t, p, cfg.interval(t))
        existing = {j.id: j for j in self.scheduler.get_jobs() if j.id.startswith(PROBE_JOB_PREFIX)}
        removed = 0
        for jid in set(existing) - set(wanted):
            self.scheduler.remove_job(jid)
            removed += 1
        added = changed = 0
        now = datetime.now(UTC)
        for jid, (t, p, interval) in wanted.items():
            job = existing.get(jid)
            if job is not None:
                old_interval = job.trigger.interval.total_seconds()
                if old_interval == interval:
                    continue
                changed += 1
            else:
                added += 1
            start = now + timedelta(seconds=spread_offset(jid, interval))
            self.scheduler.add_job(
                self._probe_job,
                trigger=IntervalTrigger(seconds=interval, start_date=start, timezone=UTC),
                args=[t.name, p],
                id=jid,
                name=jid,
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(cfg.scheduler.misfire_grace)),
            )
        return added, changed, removed

    def _schedule_housekeeping(self) -> None:
        self.scheduler.add_job(
            self._rollup_job,
            trigger=IntervalTrigger(minutes=5, timezone=UTC),
            id="housekeeping:rollup",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=30),
        )
        self.scheduler.add_job(
            self._prune_job,
            trigger=IntervalTrigger(hours=6, timezone=UTC),
            id="housekeeping:prune",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(minutes=1),
        )
        # Every node reads certificates (one handshake per https target every few hours), so
        # a node that becomes the leader already knows them.
        self.scheduler.add_job(
            self._cert_job,
            trigger=IntervalTrigger(seconds=CHECK_EVERY_S, timezone=UTC),
            id="housekeeping:certs",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
        )

    def _on_job_event(self, event: Any) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self.skipped["max_instances"] += 1
            return
        if isinstance(event, JobSubmissionEvent) and event.job_id.startswith(PROBE_JOB_PREFIX):
            planned = event.scheduled_run_times[-1]
            lag = (datetime.now(UTC) - planned).total_seconds()
            self.scheduler_lag_s.append(lag)
            self.metrics.lag.observe(max(0.0, lag))
            if len(self.scheduler_lag_s) > 10_000:
                del self.scheduler_lag_s[:5_000]

    # --- the probe job ----------------------------------------------------------------------

    def _state(self, name: str) -> TargetState:
        return self.states.setdefault(name, TargetState())

    def _allowed(self, target: Target, probe: str) -> str | None:
        """Why this probe must not run now, or None."""
        state = self._state(target.name)
        if time.monotonic() < state.hold_until:
            return "retry_after"
        cap = target.spend_cap_usd_per_day
        if cap is not None and probe not in FREE_PROBES:
            self._roll_spend_day(state)
            if state.spend_usd >= cap:
                return "spend_cap"
        return None

    async def _probe_job(self, target_name: str, probe: str) -> None:
        from checker.probes.runner import run_probe

        target = self._targets.get(target_name)
        if target is None:  # removed by a reload while this run was queued
            return
        if (why := self._allowed(target, probe)) is not None:
            self.skipped[why] += 1
            return
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
        try:
            async with self._semaphore:
                result = await run_probe(self.cfg, target, probe, self.pool, self.redactor)
            self._account(target, result)
            maintenance = self._in_maintenance(target, result.started_at)
            self.writer.submit(result, maintenance=maintenance)
            self.metrics.observe(result)
            self._log_transition(target, result)
            if self._on_result is not None:
                self._on_result(result)
        finally:
            if task is not None:
                self.inflight.discard(task)

    def _account(self, target: Target, result: ProbeResult) -> None:
        if result.cost_usd is None and result.prompt_tokens is not None:
            result.cost_usd = self.prices.cost_of_result(target, result)
        count_output_tokens(result, target)
        if self._usage_mismatch(result):
            self.metrics.usage_mismatch.labels(target.name).inc()
        state = self._state(target.name)
        if result.cost_usd:
            self._roll_spend_day(state)
            state.spend_usd += result.cost_usd
        if result.error == ErrorKind.rate_limited and result.retry_after_s:
            state.hold_until = time.monotonic() + result.retry_after_s

    def _usage_mismatch(self, result: ProbeResult) -> bool:
        from checker.cost.tokens import counted_usage_mismatch

        return bool(
            counted_usage_mismatch(
                result.completion_tokens,
                result.reasoning_tokens,
                result.counted_tokens,
                self.cfg.digest.usage_ratio_band,
            )
        )

    def _roll_spend_day(self, state: TargetState) -> None:
        today = datetime.now(UTC).date().isoformat()
        if state.spend_day != today:
            state.spend_day, state.spend_usd = today, 0.0

    async def _load_spend_today(self) -> None:
        """Spend caps survive restarts: start from what today's stored results cost."""
        from checker.store.queries import spend_since

        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        spent = await asyncio.to_thread(spend_since, self.engine, midnight)
        today = midnight.date().isoformat()
        for name, usd in spent.items():
            state = self._state(name)
            state.spend_day, state.spend_usd = today, usd

    def _in_maintenance(self, target: Target, at: datetime) -> bool:
        return self._calendar.active(target.name, at)

    def _log_transition(self, target: Target, result: ProbeResult) -> None:
        """One line per state change, not per probe."""
        state = self._state(target.name)
        before = state.last_ok.get(result.probe)
        state.last_ok[result.probe] = result.ok
        if before is None and result.ok:
            return
        if before is not False and not result.ok:
            log.warning(
                "%s %s: failing: %s%s",
                target.name,
                result.probe,
                result.error,
                f" ({result.detail})" if result.detail else "",
            )
        elif before is False and result.ok:
            log.info("%s %s: recovered", target.name, result.probe)

    def _after_flush(self, rows: list[ProbeResult]) -> None:
        """Results count only once committed, so `down` is judged right after each flush.

        Runs in the background and coalesces: the writer never waits for the evaluator.
        """
        self._flushed_targets.update(r.target for r in rows)
        if self._flush_eval is None or self._flush_eval.done():
            self._flush_eval = asyncio.create_task(self._evaluate_flushed())

    async def _evaluate_flushed(self) -> None:
        while self._flushed_targets:
            names, self._flushed_targets = self._flushed_targets, set()
            if not await asyncio.to_thread(self.leadership.check):
                return
            confirms = await self.evaluator.run(sorted(names), windows=False)
            self._confirm(confirms)
            self.deliverer.wake()

    @finish_before_stop
    async def _evaluate_job(self) -> None:
        """The periodic round: every rule with every window, and the SLO gauges."""
        from checker.alerting.evaluator import window_signals

        if not await asyncio.to_thread(self.leadership.check):
            return
        cfg, now = self.cfg, datetime.now(UTC)
        # Read once for both: the rules and the gauges need the same window counts.
        try:
            counts = await asyncio.to_thread(window_signals, self.engine, cfg, cfg.targets, now)
        except SQLAlchemyError as exc:  # the database is away: the next round tries again
            log.warning("evaluation skipped: database error %s", type(exc).__name__)
            return
        confirms = await self.evaluator.run(counts=counts, now=now)
        self._confirm(confirms)
        self.deliverer.wake()
        await self._update_slo_gauges(cfg, counts, now)
        self.metrics.outbox.set(await asyncio.to_thread(pending_count, self.engine))

    def _confirm(self, requests: list[Any]) -> None:
        """Run the confirmation re-probe now; its stored result decides whether `down` fires."""
        for req in requests:
            if req.target not in self._targets:
                continue
            log.info("%s %s: confirming the failure with a re-probe", req.target, req.probe)
            task = asyncio.create_task(self._probe_job(req.target, req.probe))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _eval_context(self) -> EvalContext:
        return EvalContext(
            cfg=self.cfg,
            calendar=self._calendar,
            channels=self.channels,
            redactor=self.redactor,
            spend_today=self._spend_today,
            cert_days_left=self.certs.days_left,
        )

    def _spend_today(self, name: str) -> float | None:
        state = self._state(name)
        self._roll_spend_day(state)
        return state.spend_usd

    def _on_delivery(self, outcome: str) -> None:
        if outcome != "delivered":
            self.metrics.delivery_failures.inc()

    async def _update_slo_gauges(
        self, cfg: Config, counts: dict[str, dict[float, WindowCounts]], now: datetime
    ) -> None:
        from checker.alerting.slo import budget_remaining, burn_rate

        uptime_windows = {"1h": 3600.0, "24h": 86400.0, "7d": 7 * 86400.0, "30d": 30 * 86400.0}
        up = await asyncio.to_thread(self._uptime_counts, uptime_windows, now)
        for t in cfg.targets:
            slo = cfg.slo(t)
            mine = counts.get(t.name, {})
            if (total := mine.get(slo.window)) is not None:
                remaining = budget_remaining(total, slo.availability)
                if remaining is not None:
                    self.metrics.budget.labels(t.name).set(remaining)
            for length, c in mine.items():
                rate = burn_rate(c, slo.availability)
                if rate is not None and length != slo.window:
                    self.metrics.burn.labels(t.name, format_duration(length)).set(rate)
            for label in uptime_windows:
                valid, bad = up[label].get(t.name, (0, 0))
                if valid:
                    self.metrics.uptime.labels(t.name, label).set((valid - bad) / valid)

    def _uptime_counts(
        self, windows: dict[str, float], now: datetime
    ) -> dict[str, dict[str, tuple[int, int]]]:
        from checker.store.queries import window_counts_many

        names = [t.name for t in self.cfg.targets]
        return {
            label: window_counts_many(self.engine, names, now - timedelta(seconds=s), now)
            for label, s in windows.items()
        }

    @finish_before_stop
    async def _digest_job(self) -> None:
        if not route(self.channels, self.cfg.digest.tags, "digest"):
            # Nowhere to send it: say so as digest.run_scheduled would, without loading the
            # digest (Jinja, css-inline: ~5 MB resident) into the service.
            log.warning("digest: no notify channel is tagged %s", ", ".join(self.cfg.digest.tags))
            return
        if not await asyncio.to_thread(self.leadership.check):
            return
        # Imported in a worker thread: ~70 ms of module loading would stall every probe.
        digest = await asyncio.to_thread(importlib.import_module, "checker.digest.build")
        try:
            await digest.run_scheduled(self.engine, self.cfg, datetime.now(UTC), prices=self.prices)
        except Exception as exc:  # the next run retries; the service keeps probing
            log.error("digest failed: %s", self.redactor.text(f"{type(exc).__name__}: {exc}"))

    def _schedule_leader_jobs(self, cfg: Config) -> None:
        """The evaluator and the digest: they run where leadership.check() says so."""
        self.scheduler.add_job(
            self._evaluate_job,
            trigger=IntervalTrigger(seconds=cfg.scheduler.evaluate_every, timezone=UTC),
            id="leader:evaluate",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=2),
        )
        hour, minute = (int(x) for x in cfg.digest.at.split(":"))
        self.scheduler.add_job(
            self._digest_job,
            trigger=CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(cfg.digest.timezone)),
            id="leader:digest",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )
        # A digest missed while the service was down goes out at start (once per day).
        self.scheduler.add_job(
            self._digest_job,
            id="leader:digest-catch-up",
            replace_existing=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=20),
        )

    # --- housekeeping -----------------------------------------------------------------------

    @finish_before_stop
    async def _rollup_job(self) -> None:
        from checker.store.rollup import rollup_due

        # Leader only: nodes rolling up the same hours at once would race on the same rows.
        if not await asyncio.to_thread(self.leadership.check):
            return

        # Every hour since the newest rolled one (hours missed while the service was down
        # included), the last two again for late results, and hours rolled before the
        # digest's rollup columns existed (migration 0005).
        await asyncio.to_thread(rollup_due, self.engine, datetime.now(UTC))

    @finish_before_stop
    async def _cert_job(self) -> None:
        await self.certs.refresh(self.cfg)

    @finish_before_stop
    async def _prune_job(self) -> None:
        from checker.store.rollup import prune

        if not await asyncio.to_thread(self.leadership.check):
            return

        s = self.cfg.storage
        await asyncio.to_thread(
            prune, self.engine, s.raw_retention, s.rollup_retention, datetime.now(UTC)
        )

    async def _watchdog_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            # Ping only while the scheduler is alive: a wedged service must get restarted.
            if self.scheduler.running:
                sdnotify.notify("WATCHDOG=1")


def _freeze_startup_objects() -> None:
    """Keep what start() built out of the garbage collector's full passes.

    Modules, the config, the tokenizer, SQLAlchemy's and pydantic's structures: hundreds of
    thousands of objects that live as long as the process. Every full collection walked
    them all, 130-250 ms on the event loop every few seconds at 5,000 probes/min, and those
    pauses were the scheduler's p99 lag. gc.freeze() moves them to the permanent generation;
    objects made later are collected as before.
    """
    gc.collect()
    gc.freeze()


def _describe_url(url: str) -> str:
    """The storage URL without credentials, for logs."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
