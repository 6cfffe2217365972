"""An evaluation round over many targets: inputs read in a handful of statements, only the
targets whose state changes are written, and every target still judged on its own results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.alerting.evaluator import Context, evaluate_targets
from checker.alerting.maintenance import MaintenanceCalendar
from checker.config.load import parse
from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.redact import Redactor
from checker.store.models import AlertStateRow, IncidentRow, result_to_row
from checker.store.writer import insert_results, new_uid

STATES = AlertStateRow.__table__
INCIDENTS = IncidentRow.__table__
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
# More than one IN list's worth of targets (the evaluator reads states 500 at a time).
TARGETS = 520
FAILING = {"t7", "t499", "t500", "t519"}


def make_config(db_url: str) -> Config:
    targets = "\n".join(
        f"  - {{name: t{i}, kind: http, base_url: 'http://127.0.0.1:9/{i}', interval: 10s}}"
        for i in range(TARGETS)
    )
    return parse(
        f"targets:\n{targets}\n"
        "defaults:\n"
        "  alerts: {down: {failures: 3, recoveries: 2}, budget_below: null, burn: false}\n"
        f'storage: {{url: "{db_url}"}}\n'
    )


def context(cfg: Config) -> Context:
    return Context(
        cfg=cfg,
        calendar=MaintenanceCalendar(cfg.maintenance),
        channels=[],
        redactor=Redactor(cfg.secrets()),
        spend_today=lambda _name: 0.0,
        cert_days_left=lambda _name: None,
    )


def store(engine: Engine, end: datetime, failing: set[str]) -> None:
    """Three results per target ending at `end`; the `failing` targets' all failed."""
    rows = []
    for i in range(TARGETS):
        name = f"t{i}"
        for k in range(3):
            r = ProbeResult(target=name, probe="http", started_at=end - timedelta(seconds=10 * k))
            r.status, r.ok, r.latency_ms = 200, True, 20.0
            if name in failing:
                r.status = 503
                r.fail(ErrorKind.server_error, "HTTP 503")
            rows.append(result_to_row(r, uid=new_uid(), maintenance=False))
    with engine.begin() as conn:
        insert_results(conn, rows)


class StatementLog:
    """Every SQL statement the engine runs, as (verb, table-ish text)."""

    def __init__(self, engine: Engine) -> None:
        self.statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)
        self._engine = engine

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(statement.lstrip().split(None, 1)[0].upper())

    def close(self) -> None:
        sa.event.remove(self._engine, "before_cursor_execute", self._record)

    def writes(self) -> int:
        return sum(s in {"INSERT", "UPDATE", "DELETE"} for s in self.statements)


def test_a_round_reads_in_bulk_and_writes_only_what_changed(db_url: str, db_engine: Engine) -> None:
    ctx = context(make_config(db_url))
    targets = ctx.cfg.targets
    store(db_engine, NOW, set())
    evaluate_targets(db_engine, ctx, targets, NOW, windows=False)  # every target gets a state
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(STATES)).scalar_one() == TARGETS

    # Nothing changed: one read per target's probe plus the state lists, and no write.
    log = StatementLog(db_engine)
    evaluate_targets(db_engine, ctx, targets, NOW + timedelta(seconds=1), windows=False)
    log.close()
    assert log.writes() == 0
    assert len(log.statements) <= TARGETS + 4, len(log.statements)

    # Four targets fail three times: exactly they open an incident and get a new state.
    store(db_engine, NOW + timedelta(seconds=30), FAILING)
    log = StatementLog(db_engine)
    evaluate_targets(db_engine, ctx, targets, NOW + timedelta(seconds=31), windows=False)
    log.close()
    with db_engine.connect() as conn:
        opened = {r.target for r in conn.execute(sa.select(INCIDENTS.c.target))}
        states = dict(conn.execute(sa.select(STATES.c.target, STATES.c.state)).all())
    assert opened == FAILING
    assert all(states[name]["down"]["http"]["down"] for name in FAILING)
    assert not any(states[f"t{i}"]["down"]["http"]["down"] for i in (0, 8, 498, 501, 518))
    # One state upsert and one incident upsert per failing target (no channels: no outbox).
    assert log.writes() == 2 * len(FAILING)
