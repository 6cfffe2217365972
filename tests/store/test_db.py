"""Engines and pragmas, the result row round trip, and syncing targets from the config."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from checker.config.load import parse
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.db import describe, make_engine, normalize_url
from checker.store.models import (
    ProbeResultRow,
    TargetRow,
    public_base_url,
    result_to_row,
    row_to_result,
    sync_targets,
)
from checker.store.writer import insert_results, new_uid


def test_sqlite_engine_creates_directory_and_sets_pragmas(tmp_path) -> None:
    path = tmp_path / "state" / "sub" / "checker.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout_ms=1234)
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
            }
        assert path.exists()
        assert pragma == {
            "journal_mode": "wal",
            "busy_timeout": 1234,
            "foreign_keys": 1,
            "synchronous": 1,
        }
    finally:
        engine.dispose()


def test_url_normalization() -> None:
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")
    engine = make_engine("postgresql://user:s3cret-pw@127.0.0.1:1/db")
    try:
        assert "s3cret-pw" not in describe(engine)
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_probe_result_round_trip(db_engine: Engine) -> None:
    berlin = timezone(timedelta(hours=2))
    started = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=berlin)
    original = ProbeResult(
        target="t1",
        probe="stream",
        started_at=started,
        status=429,
        latency_ms=812.5,
        connect_ms=12.0,
        ttfb_ms=300.25,
        ttft_ms=410.0,
        tokens_per_s=55.5,
        prompt_tokens=12,
        completion_tokens=9,
        cached_tokens=0,
        reasoning_tokens=3,
        cost_usd=0.000123,
        model="m-1",
        retry_after_s=30.0,
        chunks=11,
        max_gap_ms=90.0,
        output_chars=42,
        location="eu-1",
    ).fail(ErrorKind.rate_limited, "429 slow down\x00")
    with db_engine.begin() as conn:
        insert_results(conn, [result_to_row(original, uid=new_uid(), maintenance=True)])
    with Session(db_engine) as session:
        row = session.exec(select(ProbeResultRow)).one()
    assert row.maintenance is True
    back = row_to_result(row)
    assert back.started_at == started and back.started_at.tzinfo is not None
    assert back.started_at.utcoffset() == timedelta(0)
    assert back.error is ErrorKind.rate_limited
    assert back.detail == "429 slow down"  # NUL stripped: PostgreSQL would refuse it
    expected = original.as_dict() | {"started_at": back.started_at, "detail": "429 slow down"}
    assert back.as_dict() == expected
    assert back.to_json()["started_at"] == "2026-03-01T12:30:15.123456Z"


def test_result_uid_conflicts_are_ignored(db_engine: Engine) -> None:
    row = result_to_row(ProbeResult(target="t", probe="models", ok=True), uid=new_uid())
    with db_engine.begin() as conn:
        insert_results(conn, [row])
    with db_engine.begin() as conn:
        insert_results(conn, [row, row | {"result_uid": new_uid()}])
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ProbeResultRow)).scalar() == 2


CONFIG = """
targets:
  - name: alpha
    kind: openai
    base_url: https://user:pw-in-url-123@api.example.com/v1?key=query-secret-456
    api_key: sk-test-abcdef
    model: m1
    tags: [prod]
  - name: beta
    kind: http
    base_url: https://status.example.com:8443/health
"""


def test_sync_targets_upserts_retires_and_returns(db_engine: Engine) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    cfg = parse(CONFIG)
    with Session(db_engine) as session:
        sync_targets(session, cfg, now=t0)
    with Session(db_engine) as session:
        rows = {r.name: r for r in session.exec(select(TargetRow))}
    assert set(rows) == {"alpha", "beta"}
    assert rows["alpha"].base_url == "https://api.example.com/v1"
    assert rows["beta"].base_url == "https://status.example.com:8443/health"
    assert rows["alpha"].tags == ["prod"] and rows["alpha"].retired_at is None

    # beta leaves the config, alpha changes model
    t1 = t0 + timedelta(hours=1)
    cfg2 = parse(CONFIG.split("  - name: beta")[0].replace("model: m1", "model: m2"))
    with Session(db_engine) as session:
        sync_targets(session, cfg2, now=t1)
    with Session(db_engine) as session:
        rows = {r.name: r for r in session.exec(select(TargetRow))}
    assert rows["beta"].retired_at == t1
    assert rows["alpha"].model == "m2" and rows["alpha"].updated_at == t1
    assert rows["alpha"].created_at == t0

    # beta returns: un-retired, same row (an Engine works as well as a Session)
    beta_id = rows["beta"].id
    sync_targets(db_engine, cfg, now=t1 + timedelta(hours=1))
    with Session(db_engine) as session:
        beta = session.exec(select(TargetRow).where(TargetRow.name == "beta")).one()
    assert beta.retired_at is None and beta.id == beta_id

    with db_engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(sa.select(TargetRow)) for v in row)
    for secret in ("pw-in-url-123", "query-secret-456", "sk-test-abcdef"):
        assert secret not in dump


def test_nodes_starting_together_each_sync_the_targets(db_url: str) -> None:
    # A fleet's nodes start at once against one database: the second insert of a target's
    # name must not stop a node from starting (it crashed one of three in the fleet test).
    cfg = parse(
        "targets:\n"
        + "".join(
            f"  - {{name: t{i}, kind: http, base_url: 'http://127.0.0.1:9/'}}\n" for i in range(40)
        )
    )
    engines = [make_engine(db_url) for _ in range(4)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def node(engine: Engine) -> None:
        start.wait()
        try:
            sync_targets(engine, cfg)
        except Exception as exc:  # collected: the assertion below says which
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with engines[0].connect() as conn:
            names = conn.execute(sa.text("SELECT name FROM targets")).scalars().all()
        assert sorted(names) == sorted(f"t{i}" for i in range(40))
    finally:
        for engine in engines:
            engine.dispose()


def test_public_base_url_strips_credentials() -> None:
    assert public_base_url("https://a:b@h.example/p?x=1#f") == "https://h.example/p"
