"""Capacity: the scheduler lag a run reports includes its wait for a concurrency slot.

The service runs in this process against the simulator over loopback, so the test reads
the service's own lag record and its Prometheus histogram.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.triggers.interval import IntervalTrigger

from checker.config import load as config_mod
from checker.service.concurrency import derived_limit
from checker.service.jobs import ProbeScheduler, StartLag, job_id, spread_offset, watch_lag
from checker.service.wiring import Service
from checker.sim.server import SimServer
from checker.web.metrics import Metrics
from tests.service.test_control import service_in_process
from tests.service.test_service import config_yaml, sqlite_url, target_yaml
from tests.waiting import abecomes_true

# Two names whose first runs are planned 10 us apart, 2.5 ms after the start, at a 1 s
# interval (spread_offset is a stable hash): with one slot, the second waits for the first.
TWINS = ("t149", "t220")


async def test_the_lag_includes_the_wait_for_a_concurrency_slot(
    sim: SimServer, tmp_path: Path
) -> None:
    offsets = [spread_offset(job_id(name, "stream"), 1.0) for name in TWINS]
    assert max(offsets) < 0.01 and abs(offsets[0] - offsets[1]) < 0.001
    sim.set("slow", ttft_ms=400)
    targets = [target_yaml(n, sim.url("slow"), probes=("stream",), interval="1s") for n in TWINS]
    text = config_yaml(sqlite_url(tmp_path / "c.db"), targets)
    text = text.replace("scheduler: {", "scheduler: {max_concurrency: 1, ")
    async with service_in_process(text) as service:
        assert await abecomes_true(lambda: service.lag.count >= 2, 5)
        lags, waits = service.lag.lags[:2], service.lag.slot_waits[:2]
        histogram = service.metrics.registry.get_sample_value
        observed = histogram("checker_scheduler_lag_seconds_sum")
        count = histogram("checker_scheduler_lag_seconds_count")
    # The first run had the slot at once; the second waited for the first's 400 ms answer,
    # and its lag includes that wait (on top of APScheduler's own lateness).
    assert min(waits) < 0.1 and max(waits) > 0.4
    assert all(lag >= wait for lag, wait in zip(lags, waits, strict=True))
    assert max(lags) > 0.4
    assert count is not None and count >= 2
    assert observed is not None and observed >= max(lags)


def test_without_a_configured_limit_the_service_derives_it(tmp_path: Path) -> None:
    # 30 targets, each every 2 s and up to 1 s: 15 runs in flight at worst.
    targets = [target_yaml(f"t{i}", "http://127.0.0.1:9/v1", interval="2s", extra="timeout: 1s")
               for i in range(30)]  # fmt: skip
    text = config_yaml(sqlite_url(tmp_path / "c.db"), targets)
    cfg = config_mod.parse(text)
    assert cfg.scheduler.max_concurrency is None
    assert Service(None, cfg).max_concurrency == derived_limit(cfg) >= 2 * 30 * 0.5
    explicit = config_mod.parse(text.replace("scheduler: {", "scheduler: {max_concurrency: 7, "))
    assert Service(None, explicit).max_concurrency == 7


async def test_the_probe_scheduler_starts_every_run_on_time_within_its_tick() -> None:
    # 40 jobs spread over a 200 ms interval: a timer round every 5 ms on average, so most
    # rounds wait for the 10 ms tick and start the runs due within it together.
    metrics = Metrics("here")
    lag = StartLag(metrics)
    scheduler = ProbeScheduler(timezone=UTC)
    watch_lag(scheduler, metrics, lag, {"max_instances": 0})

    async def run(jid: str) -> None:
        lag.started(jid)

    start = datetime.now(UTC) + timedelta(seconds=0.05)
    for i in range(40):
        jid = job_id(f"t{i}", "stream")
        trigger = IntervalTrigger(
            seconds=0.2, start_date=start + timedelta(seconds=i * 0.005), timezone=UTC
        )
        scheduler.add_job(run, trigger=trigger, args=[jid], id=jid, max_instances=1)
    scheduler.start()
    try:
        assert await abecomes_true(lambda: lag.count >= 120, 5)
    finally:
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
    assert min(lag.lags) >= 0  # never early
    assert max(lag.lags) < ProbeScheduler.TICK_S + 0.09  # at most a tick late, plus the loop
