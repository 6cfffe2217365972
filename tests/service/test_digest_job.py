"""The service's digest jobs load the digest only when a channel could receive it, and
send nothing for a period with nothing to report (before the first stored result, or
without any result), saying why in one log line."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from sqlalchemy.engine import Engine

from checker.config import load as config_mod
from checker.cost.prices import PriceBook
from checker.digest import send as digest_send
from checker.service.wiring import Service
from checker.sim.server import SimServer
from checker.store.db import make_engine
from checker.store.plan import HOUR
from checker.store.prune import prune
from checker.store.rollup import rollup_hours
from checker.store.tables import DIGEST_LOG, RAW_TABLE
from tests.fixtures_db import generate_results, store_results
from tests.fixtures_notify import SmtpInbox
from tests.service.test_service import config_yaml, sqlite_url, target_yaml
from tests.tools import ROOT
from tests.waiting import abecomes_true

# Runs in a fresh interpreter: whether checker.digest got imported is then a fact about
# this service alone, not about other tests in the same process.
SCRIPT = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    from datetime import UTC, datetime
    from apscheduler.events import EVENT_JOB_EXECUTED
    from checker.config import load as config_mod
    from checker.service.wiring import Service

    warnings = []

    class Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logging.getLogger().addHandler(Keep())

    async def main():
        service = Service(None, config_mod.parse(open(sys.argv[1]).read()))
        await service.start()
        ran = {}

        def on_executed(event):
            ran[event.job_id] = asyncio.get_running_loop().time()

        service.scheduler.add_listener(on_executed, EVENT_JOB_EXECUTED)
        out = {}
        try:
            for job in ("leader:digest-catch-up", "leader:digest"):
                service.scheduler.modify_job(job, next_run_time=datetime.now(UTC))
                for _ in range(200):
                    if job in ran:
                        break
                    await asyncio.sleep(0.02)
                out[job] = {"ran": job in ran, "warnings": list(warnings)}
                warnings.clear()
        finally:
            await service.stop()
        out["digest_imported"] = "checker.digest" in sys.modules
        out["css_inline_imported"] = "css_inline" in sys.modules
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_without_a_digest_channel_the_digest_is_never_loaded(
    sim: SimServer, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    url = sqlite_url(tmp_path / "checker.db")
    config.write_text(config_yaml(url, [target_yaml("one", sim.url("one"), probes=("models",))]))
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["leader:digest-catch-up"]["ran"] and out["leader:digest"]["ran"]
    # Both say why nothing goes out, as digest.run_scheduled does.
    for job in ("leader:digest-catch-up", "leader:digest"):
        assert "digest: no notify channel is tagged digest" in out[job]["warnings"]
    assert out["digest_imported"] is False and out["css_inline_imported"] is False


# --- nothing to report, nothing sent ---------------------------------------------------------

SKIPPED = "checker.digest"


def digest_config(storage_url: str, targets: list[str], mail: str, zone: str = "UTC") -> str:
    """A digest due at local midnight every day, to a real SMTP server."""
    return (
        config_yaml(storage_url, targets)
        + f'notify:\n  - {{url: "{mail}", tags: [digest]}}\n'
        + f'digest: {{at: "00:00", timezone: {zone}, tags: [digest]}}\n'
    )


def zone_far_from_midnight(now: datetime) -> str:
    """A time zone whose local time is now hours away from midnight, so a run at the wall
    clock's time never straddles the send time."""
    for zone in ("UTC", "Etc/GMT-12"):  # UTC+12
        if 2 <= now.astimezone(ZoneInfo(zone)).hour <= 21:
            return zone
    raise AssertionError("unreachable: UTC and UTC+12 are 12 hours apart")


def skip_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    # The digest's own lines only: APScheduler logs "skipped" too, for a job that is late.
    return [
        r.getMessage() for r in caplog.records if r.name == SKIPPED and "skipped" in r.getMessage()
    ]


def count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


async def test_first_start_after_the_send_time_mails_no_empty_digest(
    sim: SimServer, smtp: SmtpInbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The bug: a first start at 09:00 mailed "6 without data" from the catch-up run 20 s
    later, for a period (the 24 hours to local midnight here) that ended before any result."""
    url = sqlite_url(tmp_path / "checker.db")
    targets = [target_yaml("one", sim.url("one"), probes=("models",))]
    zone = zone_far_from_midnight(datetime.now(UTC))
    service = Service(None, config_mod.parse(digest_config(url, targets, smtp.url(), zone)))
    caplog.set_level(logging.INFO, logger=SKIPPED)
    await service.start()
    engine = make_engine(url)
    ran: list[JobExecutionEvent] = []
    service.scheduler.add_listener(ran.append, EVENT_JOB_EXECUTED)
    try:
        assert await abecomes_true(lambda: count(engine, RAW_TABLE) > 0, 15)
        service.scheduler.modify_job("leader:digest-catch-up", next_run_time=datetime.now(UTC))
        assert await abecomes_true(
            lambda: any(e.job_id == "leader:digest-catch-up" for e in ran), 15
        )
        [line] = skip_lines(caplog)
        assert "skipped: the period ends before the first stored result" in line
        assert smtp.messages() == []
        assert count(engine, DIGEST_LOG) == 0  # nothing claimed: the day stays open
    finally:
        await service.stop()
        engine.dispose()


NOW = datetime(2026, 3, 10, 0, 5, tzinfo=UTC)  # five minutes after the send time
PERIOD_START = NOW.replace(minute=0) - timedelta(days=1)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    yield e
    e.dispose()


async def test_a_period_without_results_is_skipped_and_one_with_results_sent(
    db_url: str, engine: Engine, smtp: SmtpInbox, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = config_mod.parse(
        digest_config(db_url, [target_yaml("one", "http://127.0.0.1:9/v1")], smtp.url())
    )
    prices = PriceBook(cfg)
    caplog.set_level(logging.INFO, logger=SKIPPED)

    async def run() -> bool:
        return await digest_send.run_scheduled(engine, cfg, NOW, prices=prices)

    assert await run() is False
    # Results two days back, none in the period: still nothing to report.
    old = generate_results(["one"], PERIOD_START - timedelta(days=1), PERIOD_START, step_s=900)
    await asyncio.to_thread(store_results, engine, old)
    assert await run() is False
    # Another target's results in the period are not this config's.
    other = generate_results(["gone"], PERIOD_START, PERIOD_START + HOUR, step_s=900)
    await asyncio.to_thread(store_results, engine, other)
    assert await run() is False
    assert skip_lines(caplog) == [
        f"digest for 2026-03-10 (24 hours to 2026-03-10 00:00 UTC) skipped: {why}"
        for why in ("no result stored yet", "the period holds no results",
                    "the period holds no results")
    ]  # fmt: skip
    assert smtp.messages() == []

    # Results in the period, rolled up with their raw rows pruned: reported and sent.
    mine = generate_results(["one"], PERIOD_START + HOUR, PERIOD_START + 3 * HOUR, step_s=900)
    await asyncio.to_thread(store_results, engine, mine)
    await asyncio.to_thread(rollup_hours, engine, PERIOD_START - timedelta(days=1), NOW)
    await asyncio.to_thread(prune, engine, 3600.0, 400 * 86400.0, NOW)
    assert count(engine, RAW_TABLE) == 0
    assert await run() is True
    assert len(smtp.messages()) == 1
