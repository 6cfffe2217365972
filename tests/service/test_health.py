"""`/healthz` tells the truth: 503 with the reason while results cannot be written, while
the queue is nearly full, while no probe runs or the database does not answer; 200 again
once they recover. Real SQLite files, a real PostgreSQL proxy, the real service."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from checker.config.load import parse
from checker.probes.base import ProbeResult
from checker.service.health import Heartbeat, service_health
from checker.service.wiring import Service
from checker.sim.server import SimServer
from checker.store import migrate
from checker.store.db import make_engine
from checker.store.writer import ResultWriter
from checker.web.metrics import Metrics
from tests.waiting import abecomes_true


def service_config(sim: SimServer, db: Path, extra: str = "") -> str:
    return f"""
targets:
  - {{name: t, kind: openai, base_url: "{sim.url()}", model: sim-small, probes: [models],
     interval: 200ms}}
storage: {{url: "sqlite:///{db}", flush_every: 100ms, unhealthy_after: 1s}}
scheduler: {{shutdown_grace: 2s}}
server: {{listen: "127.0.0.1:0"}}
{extra}"""


async def test_healthz_is_503_while_sqlite_cannot_be_written(
    sim: SimServer, tmp_path: Path
) -> None:
    db = tmp_path / "c.db"
    service = Service(None, parse(service_config(sim, db)))
    await service.start()
    assert service.web is not None
    lock = sqlite3.connect(db, timeout=1)
    try:
        async with httpx.AsyncClient(base_url=service.web.url, timeout=10) as client:

            async def healthz() -> httpx.Response:
                return await client.get("/healthz")

            # Healthy once probing (a loaded machine may start the first probe late).
            statuses: list[httpx.Response] = []

            async def healthy() -> bool:
                statuses.append(await healthz())
                return statuses[-1].status_code == 200

            for _ in range(100):
                if await healthy():
                    break
                await asyncio.sleep(0.1)
            assert statuses[-1].status_code == 200, statuses[-1].text
            lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
            down = None

            async def reports_down() -> bool:
                nonlocal down
                down = await healthz()
                return down.status_code == 503

            for _ in range(200):  # up to 20 s: the writer notices at its next flush
                if await reports_down():
                    break
                await asyncio.sleep(0.1)
            assert down is not None and down.status_code == 503
            assert "results not written for" in down.text, down.text
            assert "locked" in down.text
            metrics = (await client.get("/metrics")).text
            assert "checker_healthy 0.0" in metrics
            lock.rollback()  # the lock is released: the queue drains, health returns
            assert await abecomes_true(lambda: service.writer.last_error is None, 15)
            ok = await healthz()
            assert ok.status_code == 200 and ok.text == "ok\n"
    finally:
        lock.close()
        await service.stop()


def test_health_facts_queue_idle_scheduler_and_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    cfg = parse(
        "targets: [{name: t, kind: http, base_url: 'http://127.0.0.1:9', interval: 10s}]\n"
        f"storage: {{url: '{url}', queue_max: 100}}\n"
    )

    class FakeClock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

    clock = FakeClock()
    beat = Heartbeat(clock)
    running = [True]
    metrics = Metrics()
    check = service_health(engine, lambda: cfg, lambda: None, beat, lambda: running[0], metrics)
    assert check() == (True, "ok")
    clock.now += 21  # two intervals of 10 s without a probe
    healthy, reason = check()
    assert not healthy and reason.startswith("no probe started for 21s")
    beat.beat()
    assert check() == (True, "ok")
    running[0] = False
    assert check() == (False, "scheduler is not running")
    running[0] = True
    engine.dispose()
    away = make_engine("postgresql+psycopg://checker@127.0.0.1:9/none?connect_timeout=2")
    try:
        check = service_health(away, lambda: cfg, lambda: None, beat, lambda: True, metrics)
        assert check() == (False, "database does not answer (OperationalError)")
    finally:
        away.dispose()


async def test_healthz_reason_while_the_result_queue_is_over_90_percent_full(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    cfg = parse("targets: [{name: t, kind: http, base_url: 'http://127.0.0.1:9'}]\n")
    # A real writer that has not started: nothing drains it, as while the database is slow.
    writer = ResultWriter(engine, queue_max=10, flush_every=0.05)
    check = service_health(
        engine, lambda: cfg, lambda: writer, Heartbeat(time.monotonic), lambda: True, Metrics()
    )

    def submit(n: int) -> None:
        for _ in range(n):
            writer.submit(ProbeResult(target="t", probe="http", started_at=datetime.now(UTC)))

    submit(9)
    assert check() == (True, "ok")  # 90% is the limit, not over it
    submit(1)
    assert check() == (False, "result queue 100% full")
    async with writer:  # the writer runs: the queue drains and health returns
        await writer.flush()
    assert writer.queue_depth == 0 and check() == (True, "ok")
    engine.dispose()
