"""Fixtures that give a migrated database: SQLite always, PostgreSQL when configured.

`db_url` is parametrized over "sqlite" (a fresh file per test) and "postgresql" (one
uniquely named database per test module and backend, created from CHECKER_TEST_PG_URL,
emptied before each test and dropped afterwards). Without CHECKER_TEST_PG_URL the
PostgreSQL half is skipped, except under CI=true where it fails: CI must never go green
without having run the storage suite against PostgreSQL.

Also here: `TcpProxy`, a loopback TCP forwarder that can be stopped and restarted to cut a
database off mid-run, and helpers that generate and store probe results.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlmodel import SQLModel

from checker.probes.base import ErrorKind, ProbeResult
from checker.store import migrate
from checker.store.db import make_engine
from checker.store.models import result_to_row
from checker.store.writer import insert_results, new_uid
from tests.loop_thread import LoopThread

PG_ENV = "CHECKER_TEST_PG_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)]


def pg_admin_url() -> str:
    """The configured PostgreSQL URL, or skip (fail under CI=true)."""
    url = os.environ.get(PG_ENV)
    if url:
        return url
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {PG_ENV} is not set: storage tests must run on PostgreSQL")
    pytest.skip(f"set {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")


def _admin_engine() -> Engine:
    url = make_engine(pg_admin_url()).url
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "checker_test") -> Iterator[str]:
    """A new, empty PostgreSQL database; dropped (connections and all) afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class _Server:
    backend: str
    url: str  # PostgreSQL: the module database; SQLite: a migrated template file


@pytest.fixture(scope="module", params=BACKENDS)
def db_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if request.param == "sqlite":
        template = tmp_path_factory.mktemp("sqlite-template") / "template.db"
        url = f"sqlite:///{template}"
        migrate.upgrade(url)
        yield _Server("sqlite", url)
        return
    with fresh_pg_database() as url:
        migrate.upgrade(url)
        yield _Server("postgresql", url)


def _empty_tables(url: str) -> None:
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()


@pytest.fixture
def db_url(db_server: _Server, tmp_path: Path) -> str:
    """A migrated, empty database for this test."""
    if db_server.backend == "sqlite":
        path = tmp_path / "checker.db"
        shutil.copyfile(make_url(db_server.url).database or "", path)
        return f"sqlite:///{path}"
    _empty_tables(db_server.url)
    return db_server.url


@pytest.fixture(scope="module")
def module_db_url(db_server: _Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database of its own, shared by one module's tests (load data once)."""
    if db_server.backend == "sqlite":
        path = tmp_path_factory.mktemp("module-db") / "checker.db"
        shutil.copyfile(make_url(db_server.url).database or "", path)
        yield f"sqlite:///{path}"
        return
    with fresh_pg_database() as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_pg_database() as url:
        yield url


# --- a stoppable TCP proxy -------------------------------------------------------------------


class TcpProxy(LoopThread):
    """Forwards 127.0.0.1:<port> to an upstream; stop() refuses and cuts every connection,
    start() listens again on the same port. Runs its own event loop in a thread, so it
    works under synchronous code and under the test's event loop alike."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        super().__init__()
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def _start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )
            self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of its own (for tests that abuse it)."""
    with fresh_pg_database() as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite file of its own."""
    url = f"sqlite:///{tmp_path / 'own.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def pg_proxy(pg_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """A TcpProxy in front of a fresh PostgreSQL database: (proxy, url through the proxy)."""
    parsed = make_url(pg_url)
    proxy = TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    proxy.start()
    try:
        via = parsed.set(host="127.0.0.1", port=proxy.port)
        yield proxy, via.render_as_string(hide_password=False)
    finally:
        proxy.close()


# --- generated results -----------------------------------------------------------------------

ERROR_MIX = (
    ErrorKind.timeout,
    ErrorKind.server_error,
    ErrorKind.rate_limited,
    ErrorKind.rate_limited,
    ErrorKind.stall,
    ErrorKind.connect,
)


def generate_results(
    targets: list[str],
    start: datetime,
    end: datetime,
    *,
    step_s: float = 300.0,
    probes: tuple[str, ...] = ("stream", "models"),
    locations: tuple[str | None, ...] = ("local", None),
    seed: int = 7,
) -> list[tuple[ProbeResult, bool]]:
    """Realistic-looking results, with failures, rate limits and maintenance periods.

    Returns (result, maintenance) pairs with started_at in [start, end).
    """
    rng = random.Random(seed)
    out: list[tuple[ProbeResult, bool]] = []
    for t_index, target in enumerate(targets):
        fail_rate = 0.03 + 0.05 * t_index
        for probe in probes:
            at = start + timedelta(seconds=rng.uniform(0, step_s))
            while at < end:
                maintenance = at.hour == 3 and at.minute < 20  # a nightly window
                ok = rng.random() > fail_rate
                r = ProbeResult(target=target, probe=probe, started_at=at, ok=ok)
                r.location = rng.choice(locations)
                r.status = 200
                r.latency_ms = rng.lognormvariate(6.5 + 0.2 * t_index, 0.5)
                r.connect_ms = rng.uniform(5, 50)
                r.ttfb_ms = r.latency_ms * rng.uniform(0.2, 0.5)
                if probe == "stream":
                    r.ttft_ms = r.latency_ms * rng.uniform(0.3, 0.7)
                    r.tokens_per_s = rng.uniform(20, 120)
                    r.prompt_tokens = rng.randint(10, 30)
                    r.completion_tokens = rng.randint(5, 20)
                    r.cached_tokens = rng.choice([0, 0, 8])
                    r.reasoning_tokens = 0
                    r.cost_usd = rng.uniform(1e-6, 1e-4)
                    r.model = "sim-model"
                    # Derived, not drawn: the random sequence (and every seeded test) stays.
                    r.ttfo_ms = r.ttft_ms * 1.25
                    r.itl_p50_ms = 1000.0 / r.tokens_per_s
                    r.itl_p99_ms = 2 * r.itl_p50_ms
                if not ok:
                    kind = rng.choice(ERROR_MIX)
                    r.fail(kind, f"{kind.value} (generated)")
                    r.status = 429 if kind is ErrorKind.rate_limited else 503
                out.append((r, maintenance))
                at += timedelta(seconds=step_s + rng.uniform(-step_s / 10, step_s / 10))
    out.sort(key=lambda pair: pair[0].started_at)
    return out


def store_results(engine: Engine, items: list[tuple[ProbeResult, bool]]) -> None:
    rows = [result_to_row(r, uid=new_uid(), maintenance=m) for r, m in items]
    with engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            insert_results(conn, rows[i : i + 5000])
