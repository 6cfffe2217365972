"""The service's rollup job catches up on every hour it missed, not only the last two."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_EXECUTED

from checker.config import load as config_mod
from checker.service.wiring import Service
from checker.store import migrate
from checker.store.db import make_engine
from checker.store.leader import Leadership
from checker.store.plan import as_utc, floor_hour
from checker.store.tables import ROLLED
from tests.fixtures_db import generate_results, store_results


async def _run_rollup_job(url: str) -> set[datetime]:
    """Start a service on `url`, run its rollup job once, stop; the rolled hours after."""
    cfg = config_mod.parse(
        "targets:\n"
        "  - {name: gone, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m,"
        " probes: [models], interval: 1h}\n"
        f"storage: {{url: '{url}'}}\n"
    )
    service = Service(None, cfg)
    await service.start()
    done = asyncio.Event()

    def on_executed(event: object) -> None:
        if getattr(event, "job_id", None) == "housekeeping:rollup":
            done.set()

    service.scheduler.add_listener(on_executed, EVENT_JOB_EXECUTED)
    try:
        service.scheduler.modify_job("housekeeping:rollup", next_run_time=datetime.now(UTC))
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await service.stop()
    engine = make_engine(url)
    with engine.connect() as conn:
        rolled = {as_utc(h) for (h,) in conn.execute(sa.select(ROLLED.c.hour))}
    engine.dispose()
    return rolled


def _store_six_hours(url: str, now: datetime) -> None:
    # Results of the last 6 hours, never rolled up (the service was down meanwhile).
    engine = make_engine(url)
    store_results(engine, generate_results(["gone"], now - timedelta(hours=6), now, step_s=120))
    engine.dispose()


async def test_rollup_job_rolls_up_hours_missed_while_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate.upgrade(url)
    now = datetime.now(UTC)
    _store_six_hours(url, now)
    rolled = await _run_rollup_job(url)
    # Every whole hour that ended at least the settle time (5 min) ago.
    settled = floor_hour(now - timedelta(minutes=5))
    first = floor_hour(now - timedelta(hours=6))
    hours = int((settled - first) / timedelta(hours=1))
    expected = {first + timedelta(hours=i) for i in range(hours)}
    assert expected <= rolled
    assert len(expected) >= 5


async def test_only_the_leader_rolls_up(pg_url: str) -> None:
    """Several nodes share PostgreSQL: the one that does not hold leadership skips the job."""
    _store_six_hours(pg_url, datetime.now(UTC))
    other_node = Leadership(make_engine(pg_url))
    assert other_node.check()
    try:
        assert await _run_rollup_job(pg_url) == set()
    finally:
        other_node.release()
    assert len(await _run_rollup_job(pg_url)) >= 5
