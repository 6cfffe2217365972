"""The job table: every job the service schedules, its trigger, and who runs it.

    id                        trigger                           leader only  first run
    probe:<target>:<probe>    every target interval             no           a stable offset
    housekeeping:rollup       every 5 min                       yes          start + 30 s
    housekeeping:prune        every 6 h                         yes          start + 1 min
    housekeeping:certs        every alerting.certs.CHECK_EVERY_S no          at start
    leader:evaluate           every scheduler.evaluate_every    yes          start + 2 s
    leader:digest             cron digest.at in digest.timezone yes          its cron time
    leader:digest-catch-up    once                              yes          start + 20 s
    node:tick                 every node.TICK_S (5 s)           no           at start

`service_jobs()` is that table in code (all but the probe jobs, one per target x probe,
which `schedule_probes()` keeps in step with the config). Leader-only jobs ask
`Leadership.check()` before each run, so across nodes exactly one runs them. The
`reschedule` jobs depend on the config and are scheduled again on every reload.
APScheduler keeps real time: the times given to it are the system clock's.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from checker.alerting.certs import CHECK_EVERY_S
from checker.config.schema import Config, Target
from checker.service.concurrency import local_probes
from checker.web.metrics import Metrics

__all__ = [
    "PROBE_JOB_PREFIX",
    "Job",
    "JobSpec",
    "ProbeScheduler",
    "StartLag",
    "job_id",
    "schedule",
    "schedule_probes",
    "service_jobs",
    "spread_offset",
    "watch_lag",
]

PROBE_JOB_PREFIX = "probe:"

Job = Callable[[], Awaitable[object]]


class ProbeScheduler(AsyncIOScheduler):
    """APScheduler's asyncio scheduler with a cheaper timer, for thousands of probe jobs.

    Its timer calls `wakeup`, which is thread-safe: every wakeup wrote to the loop's
    self-pipe and waited a loop iteration for it, and with spread start times there was a
    wakeup per run (333 a second at 20,000 probes/min). Here the timer runs the due jobs
    directly; and while rounds come less than TICK_S apart, the next one waits at least
    TICK_S, so the runs due within a tick start together: APScheduler's CPU per run
    150 -> 85 us (a bare scheduler with 2,000 jobs at 6 s, one core), for at most TICK_S
    more lag, which the lag reports. At low rates rounds are further apart and on time.
    `wakeup()` (after add_job, modify_job, resume) stays as it is.
    """

    TICK_S = 0.01
    _last_round = -1.0  # loop time of the last timer round
    _busy = False  # the last two timer rounds came less than TICK_S apart

    def _start_timer(self, wait_seconds: float | None) -> None:
        self._stop_timer()
        if wait_seconds is not None:
            wait = max(wait_seconds, self.TICK_S) if self._busy else wait_seconds
            self._timeout = self._eventloop.call_later(wait, self._on_timer)

    def _on_timer(self) -> None:
        now = self._eventloop.time()
        self._busy = now - self._last_round < self.TICK_S * 1.5
        self._last_round = now
        self._timeout = None
        self._start_timer(self._process_jobs())


@dataclass(frozen=True)
class JobSpec:
    """One row of the job table."""

    id: str
    run: Job
    trigger: BaseTrigger | None  # None: runs once, at first_run
    leader_only: bool
    first_run: timedelta | None = None  # after scheduling; None: when the trigger says
    misfire_grace_time: int | None = None  # None: APScheduler's default
    reschedule: bool = False  # scheduled again on a reload (the trigger reads the config)
    # A cheap local test run before the leadership round trip; False skips this run.
    precheck: Callable[[], bool] | None = None


def service_jobs(
    cfg: Config,
    *,
    evaluate: Job,
    digest: Job,
    digest_wanted: Callable[[], bool],
    rollup: Job,
    prune: Job,
    certs: Job,
    node_tick: Job,
    node_tick_s: float,
) -> list[JobSpec]:
    """Every job but the probes, for this config."""
    hour, minute = (int(x) for x in cfg.digest.at.split(":"))
    return [
        JobSpec(
            "housekeeping:rollup",
            rollup,
            IntervalTrigger(minutes=5, timezone=UTC),
            # Nodes rolling up the same hours at once would race on the same rows.
            leader_only=True,
            first_run=timedelta(seconds=30),
        ),
        JobSpec(
            "housekeeping:prune",
            prune,
            IntervalTrigger(hours=6, timezone=UTC),
            leader_only=True,
            first_run=timedelta(minutes=1),
        ),
        # Every node reads certificates (one handshake per https target every few hours), so
        # a node that becomes the leader already knows them.
        JobSpec(
            "housekeeping:certs",
            certs,
            IntervalTrigger(seconds=CHECK_EVERY_S, timezone=UTC),
            leader_only=False,
            first_run=timedelta(0),
        ),
        JobSpec(
            "node:tick",
            node_tick,
            IntervalTrigger(seconds=node_tick_s, timezone=UTC),
            leader_only=False,
            first_run=timedelta(0),
        ),
        JobSpec(
            "leader:evaluate",
            evaluate,
            IntervalTrigger(seconds=cfg.scheduler.evaluate_every, timezone=UTC),
            leader_only=True,
            first_run=timedelta(seconds=2),
            reschedule=True,
        ),
        JobSpec(
            "leader:digest",
            digest,
            CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(cfg.digest.timezone)),
            leader_only=True,
            misfire_grace_time=3600,
            reschedule=True,
            precheck=digest_wanted,
        ),
        # A digest missed while the service was down goes out at start (once per day).
        JobSpec(
            "leader:digest-catch-up",
            digest,
            None,
            leader_only=True,
            first_run=timedelta(seconds=20),
            reschedule=True,
            precheck=digest_wanted,
        ),
    ]


def schedule(
    scheduler: AsyncIOScheduler,
    specs: list[JobSpec],
    *,
    leads: Callable[[], bool],
    running: set[asyncio.Task[Any]],
) -> None:
    """Add (or replace) the jobs. `leads` blocks (it is called in a thread).

    A running job registers in `running`, so stop() lets it finish within the shutdown
    grace, like a probe: APScheduler's shutdown cancels running jobs and logs each as
    failed, so an evaluation round cut short by a routine stop would leave an ERROR line
    and a half-judged round.
    """
    now = datetime.now(UTC)
    for spec in specs:
        options: dict[str, Any] = {}
        if spec.first_run is not None:
            options["next_run_time"] = now + spec.first_run
        if spec.misfire_grace_time is not None:
            options["misfire_grace_time"] = spec.misfire_grace_time
        scheduler.add_job(
            _tracked(spec, leads, running),
            trigger=spec.trigger,
            id=spec.id,
            name=spec.id,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            **options,
        )


def _tracked(spec: JobSpec, leads: Callable[[], bool], running: set[asyncio.Task[Any]]) -> Job:
    async def run() -> None:
        task = asyncio.current_task()
        if task is not None:
            running.add(task)
        try:
            if spec.precheck is not None and not spec.precheck():
                return
            if spec.leader_only and not await asyncio.to_thread(leads):
                return
            await spec.run()
        finally:
            if task is not None:
                running.discard(task)

    return run


def job_id(target: str, probe: str) -> str:
    return f"{PROBE_JOB_PREFIX}{target}:{probe}"


def spread_offset(key: str, interval: float) -> float:
    """A stable start offset within the interval, so 500 targets never fire at once.

    Stable across restarts (a hash, not random), so a restart does not bunch probes up.
    """
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") / 2**64) * interval


def schedule_probes(
    scheduler: AsyncIOScheduler,
    cfg: Config,
    probe: Callable[[str, str], Awaitable[None]],
) -> tuple[int, int, int]:
    """One job per target x probe; returns how many were added, changed and removed.

    A job whose interval is unchanged keeps its place in time.
    """
    wanted: dict[str, tuple[Target, str, float]] = {
        job_id(t.name, p): (t, p, interval) for t, p, interval in local_probes(cfg)
    }
    existing = {j.id: j for j in scheduler.get_jobs() if j.id.startswith(PROBE_JOB_PREFIX)}
    removed = 0
    for jid in set(existing) - set(wanted):
        scheduler.remove_job(jid)
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
        scheduler.add_job(
            probe,
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


class StartLag:
    """Each scheduled probe run's start lag: when it got its concurrency slot minus when
    APScheduler planned it.

    APScheduler's own lateness (submitted - planned) is only part of it: a run then waits
    for a slot of `scheduler.max_concurrency`, and with too few slots that wait grows
    until runs are skipped. The planned time is noted at submission, per job id (a job
    runs at most once at a time, so one entry per id), and taken when the run has its slot.
    A run skipped before it asks for a slot (a hold, a spend cap) leaves its entry to be
    replaced at the job's next submission. Re-probes ordered by the evaluator are not
    scheduled runs and have no lag.
    """

    KEEP = 10_000  # recent lags kept for the bench and tests; the histogram has them all

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._planned: dict[str, tuple[float, float]] = {}  # job id -> (planned, submitted)
        self.lags: list[float] = []  # seconds, newest last, at most KEEP (2 x KEEP briefly)
        self.slot_waits: list[float] = []  # the part of each lag spent waiting for a slot
        self.count = 0  # lags recorded since start (the lists keep only the newest)

    def submitted(self, job: str, planned: datetime) -> None:
        self._planned[job] = (planned.timestamp(), time.time())

    def started(self, job: str | None) -> None:
        """The run of `job` has its slot now (None: a re-probe, not a scheduled run)."""
        entry = self._planned.pop(job, None) if job is not None else None
        if entry is None:
            return
        now = time.time()
        lag = now - entry[0]
        self.lags.append(lag)
        self.slot_waits.append(now - entry[1])
        self.count += 1
        self._metrics.lag.observe(max(0.0, lag))
        if len(self.lags) > 2 * self.KEEP:
            del self.lags[: self.KEEP]
            del self.slot_waits[: self.KEEP]


def watch_lag(
    scheduler: AsyncIOScheduler, metrics: Metrics, lag: StartLag, skipped: dict[str, int]
) -> None:
    """Note each probe run's planned start in `lag`; count runs skipped as overlapping."""

    def on_event(event: Any) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            skipped["max_instances"] += 1
            metrics.skipped.labels("max_instances").inc()
            return
        if isinstance(event, JobSubmissionEvent) and event.job_id.startswith(PROBE_JOB_PREFIX):
            lag.submitted(event.job_id, event.scheduled_run_times[-1])

    scheduler.add_listener(on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
