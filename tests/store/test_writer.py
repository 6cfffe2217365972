"""The batched result writer: exactly-once storage, outages, the bounded queue."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from checker.config.schema import Storage
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.db import make_engine
from checker.store.models import ProbeResultRow
from checker.store.writer import ResultWriter
from tests.fixtures_db import TcpProxy
from tests.waiting import eventually

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LOGGER = "checker.store.writer"


def make_result(i: int, target: str = "t1") -> ProbeResult:
    r = ProbeResult(target=target, probe="stream", started_at=T0 + timedelta(seconds=i))
    r.ok = i % 7 != 0
    r.latency_ms = 100.0 + i
    if not r.ok:
        r.fail(ErrorKind.server_error, f"#{i}")
    r.detail = f"#{i}"
    return r


def stored_details(engine: Engine) -> list[str]:
    """The `detail` of every stored row, in insertion (id) order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ProbeResultRow.detail).order_by(ProbeResultRow.id))
        return [d for (d,) in rows]


def distinct_uids(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count(sa.distinct(ProbeResultRow.result_uid)))
        ).scalar_one()


async def test_every_result_stored_exactly_once_in_order(db_engine: Engine) -> None:
    flushed: list[ProbeResult] = []

    async def on_flush(rows: list[ProbeResult]) -> None:
        flushed.extend(rows)

    writer = ResultWriter(db_engine, flush_every=0.05, flush_batch=64, on_flush=on_flush)
    await writer.start()
    for i in range(1000):
        writer.submit(make_result(i), maintenance=i % 50 == 0)
        if i % 100 == 0:
            await asyncio.sleep(0)  # probes finish at different times
    await asyncio.wait_for(writer.flush(), 10)

    assert stored_details(db_engine) == [f"#{i}" for i in range(1000)]
    assert distinct_uids(db_engine) == 1000
    assert writer.written == 1000 and writer.queue_depth == 0 and writer.dropped == 0
    assert writer.last_error is None
    assert [r.detail for r in flushed] == [f"#{i}" for i in range(1000)]
    with db_engine.connect() as conn:
        maint = conn.execute(
            sa.select(sa.func.count()).where(ProbeResultRow.maintenance == sa.true())
        ).scalar_one()
    assert maint == 20
    assert await writer.close() == 0


async def test_flushes_on_its_own_every_interval(db_engine: Engine) -> None:
    storage = Storage(flush_every="50ms", flush_batch=1000)
    async with ResultWriter(db_engine, storage) as writer:
        writer.submit(make_result(1))
        await eventually(lambda: writer.written == 1, within=3)
    assert stored_details(db_engine) == ["#1"]


async def test_full_queue_drops_oldest_and_warns_once(
    db_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    writer = ResultWriter(db_engine, queue_max=100, flush_every=0.05, flush_batch=10)
    # Not started yet: nothing drains the queue, as while the database is away.
    for i in range(250):
        writer.submit(make_result(i))
    assert writer.queue_depth == 100
    assert writer.dropped == 150
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "queue full" in warnings[0].getMessage()

    await writer.start()
    await asyncio.wait_for(writer.flush(), 10)
    assert stored_details(db_engine) == [f"#{i}" for i in range(150, 250)]
    assert writer.written == 100
    await writer.close()
    assert any("dropped 150 results" in r.getMessage() for r in caplog.records)


async def test_sqlite_locked_database_keeps_results_queued(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db_url = sqlite_url
    caplog.set_level(logging.INFO, logger=LOGGER)
    engine = make_engine(db_url, busy_timeout_ms=20)
    locker = sqlite3.connect(make_url(db_url).database or "", isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        writer = ResultWriter(
            engine, flush_every=0.02, flush_batch=20, retry_initial=0.02, retry_max=0.1
        )
        await writer.start()
        start = time.perf_counter()
        for i in range(500):
            writer.submit(make_result(i))
        assert time.perf_counter() - start < 0.5  # submit never waits on the database
        await eventually(lambda: writer.last_error is not None)
        assert "locked" in (writer.last_error or "")
        await asyncio.sleep(0.2)  # several failed retries
        assert writer.written == 0 and writer.queue_depth == 500

        locker.execute("ROLLBACK")
        await asyncio.wait_for(writer.flush(), 10)
        assert stored_details(engine) == [f"#{i}" for i in range(500)]
        assert writer.last_error is None and writer.dropped == 0
        await writer.close()
    finally:
        locker.close()
        engine.dispose()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database unavailable" in m for m in messages) == 1
    assert sum("reachable again" in m for m in messages) == 1


async def test_close_reports_what_could_not_be_stored(db_url: str, tmp_path: Path) -> None:
    # SQLite: a database without tables; PostgreSQL: nothing listening on the port.
    engine = make_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")
    if not db_url.startswith("sqlite"):
        engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    try:
        writer = ResultWriter(engine, flush_every=0.02, retry_initial=0.02, retry_max=0.05)
        await writer.start()
        for i in range(5):
            writer.submit(make_result(i))
        assert await writer.close(grace=0.3) == 5
        assert writer.last_error is not None
    finally:
        engine.dispose()


async def test_a_bad_row_is_set_aside_and_the_rest_stored(db_engine: Engine) -> None:
    writer = ResultWriter(db_engine, flush_every=0.02, flush_batch=10)
    await writer.start()
    for i in range(10):
        r = make_result(i)
        if i == 4:
            r.status = 10**20  # no integer column anywhere takes this
        writer.submit(r)
    await asyncio.wait_for(writer.flush(), 10)
    assert stored_details(db_engine) == [f"#{i}" for i in range(10) if i != 4]
    assert writer.rejected == 1 and writer.written == 9
    await writer.close()


async def test_postgres_outage_through_proxy(
    pg_proxy: tuple[TcpProxy, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    proxy, url = pg_proxy
    engine = make_engine(url)
    try:
        writer = ResultWriter(
            engine, flush_every=0.02, flush_batch=25, retry_initial=0.02, retry_max=0.1
        )
        await writer.start()
        for i in range(40):
            writer.submit(make_result(i))
        await asyncio.wait_for(writer.flush(), 10)
        assert writer.written == 40

        proxy.stop()  # the database goes away, pooled connections included
        for i in range(40, 140):
            writer.submit(make_result(i))
            if i % 10 == 0:
                await asyncio.sleep(0.005)
        await eventually(lambda: writer.last_error is not None)
        await asyncio.sleep(0.15)
        assert writer.written == 40 and writer.queue_depth == 100

        proxy.start()
        await asyncio.wait_for(writer.flush(), 10)
        assert stored_details(engine) == [f"#{i}" for i in range(140)]
        assert distinct_uids(engine) == 140
        await writer.close()
    finally:
        engine.dispose()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database unavailable" in m for m in messages) == 1


async def test_postgres_backends_terminated_mid_run(pg_url: str) -> None:
    db_url = pg_url
    engine = make_engine(db_url)
    killer = make_engine(db_url)
    database = make_url(db_url).database
    try:
        writer = ResultWriter(
            engine, flush_every=0.01, flush_batch=7, retry_initial=0.01, retry_max=0.05
        )
        await writer.start()
        kills = 0
        for i in range(300):
            writer.submit(make_result(i))
            if i % 30 == 15:
                with killer.connect() as conn:
                    kills += conn.execute(
                        sa.text(
                            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                            "WHERE datname = :db AND pid <> pg_backend_pid()"
                        ),
                        {"db": database},
                    ).scalar_one()
            await asyncio.sleep(0.002)
        await asyncio.wait_for(writer.flush(), 15)
        assert kills > 0
        assert stored_details(engine) == [f"#{i}" for i in range(300)]
        assert distinct_uids(engine) == 300
        await writer.close()
    finally:
        engine.dispose()
        killer.dispose()


async def test_flush_requires_a_running_writer(db_engine: Engine) -> None:
    writer = ResultWriter(db_engine)
    writer.submit(make_result(0))
    with pytest.raises(RuntimeError):
        await writer.flush()
    assert await writer.close() == 1


async def test_a_failing_callback_does_not_stop_storage(
    db_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[int] = []

    def on_flush(rows: list[ProbeResult]) -> None:  # a plain function works too
        calls.append(len(rows))
        raise RuntimeError("consumer bug")

    writer = ResultWriter(db_engine, flush_every=0.02, flush_batch=5, on_flush=on_flush)
    await writer.start()
    for i in range(12):
        writer.submit(make_result(i))
    await asyncio.wait_for(writer.flush(), 10)
    assert sum(calls) == 12 and writer.written == 12
    assert len(stored_details(db_engine)) == 12
    assert any("on_flush callback failed" in r.getMessage() for r in caplog.records)
    await writer.close()
