"""The evaluator against a real database (SQLite and PostgreSQL): stored results in, rule
state, incidents and outbox rows out, in one transaction, idempotent under repetition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.alerting.channels import load_channels
from checker.alerting.evaluator import Context, EvaluatorTask, evaluate_targets, window_signals
from checker.alerting.maintenance import MaintenanceCalendar
from checker.config.load import parse
from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.redact import Redactor
from checker.store.db import make_engine
from checker.store.models import AlertStateRow, IncidentRow, OutboxRow, result_to_row
from checker.store.writer import insert_results, new_uid

OUTBOX = OutboxRow.__table__
INCIDENTS = IncidentRow.__table__
STATES = AlertStateRow.__table__
API_KEY = "sk-live-EVALUATOR-7b3d9f0c1a"
HOOK_TOKEN = "tok-PAGE-HOOK-55aa11"
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def make_config(db_url: str, extra: str = "") -> Config:
    return parse(
        f"""
targets:
  - name: main-route
    kind: openai
    base_url: https://api.example.com/v1
    api_key: {API_KEY}
    model: m
    probes: [models]
    interval: 10s
defaults:
  alerts: {{down: {{failures: 3, recoveries: 2}}, budget_below: null, burn: false}}
notify:
  - {{url: "json://127.0.0.1:9/page/{HOOK_TOKEN}", tags: [page]}}
  - {{url: "mailto://127.0.0.1:9?from=checker@example.com&to=ops@example.com", tags: [page]}}
  - {{url: "json://127.0.0.1:9/tickets", tags: [ticket]}}
storage: {{url: "{db_url}"}}
{extra}
"""
    )


def context(cfg: Config, cert_days: float | None = None) -> Context:
    return Context(
        cfg=cfg,
        calendar=MaintenanceCalendar(cfg.maintenance),
        channels=load_channels(cfg),
        redactor=Redactor(cfg.secrets()),
        spend_today=lambda _name: 0.0,
        cert_days_left=lambda _name: cert_days,
    )


def store(engine: Engine, outcomes: str, end: datetime, *, maintenance: bool = False) -> None:
    """One `models` result per 10 s ending at `end`: `x` failed, `.` succeeded."""
    rows = []
    for i, outcome in enumerate(reversed(outcomes)):
        r = ProbeResult(
            target="main-route", probe="models", started_at=end - timedelta(seconds=10 * i)
        )
        r.status, r.ok, r.latency_ms = 200, True, 50.0
        if outcome == "x":
            r.status = 503
            r.fail(ErrorKind.server_error, "HTTP 503 upstream unavailable")
        rows.append(result_to_row(r, uid=new_uid(), maintenance=maintenance))
    with engine.begin() as conn:
        insert_results(conn, rows)


def outbox(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)).mappings()]


def incidents(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        query = sa.select(INCIDENTS).order_by(INCIDENTS.c.id)
        return [dict(r) for r in conn.execute(query).mappings()]


def evaluate(engine: Engine, ctx: Context, now: datetime, windows: bool = False) -> None:
    evaluate_targets(engine, ctx, ctx.cfg.targets, now, windows=windows)


def test_down_opens_at_the_threshold_with_one_row_per_page_channel(
    db_url: str, db_engine: Engine
) -> None:
    ctx = context(make_config(db_url))
    store(db_engine, "....xx", NOW)
    evaluate(db_engine, ctx, NOW)
    assert outbox(db_engine) == [] and incidents(db_engine) == []
    store(db_engine, "x", NOW + timedelta(seconds=10))
    evaluate(db_engine, ctx, NOW + timedelta(seconds=10))
    rows = outbox(db_engine)
    page_channels = {c.id for c in ctx.channels if "page" in c.tags}
    assert {r["channel"] for r in rows} == page_channels and len(rows) == 2
    assert {r["title"] for r in rows} == {"[FIRING PAGE] main-route: down"}
    assert all(r["notify_type"] == "failure" and r["kind"] == "alert" for r in rows)
    assert all(r["dedup_key"].startswith("main-route:page:1:opened:0@") for r in rows)
    [incident] = incidents(db_engine)
    assert (incident["key"], incident["state"], incident["severity"]) == (
        "main-route:page:1",
        "open",
        "page",
    )
    assert incident["rules"] == ["down"]
    assert incident["details"]["detail"] == "HTTP 503 upstream unavailable"
    with db_engine.connect() as conn:
        state = conn.execute(sa.select(STATES.c.state)).scalar_one()
    assert state["down"]["models"]["down"] is True


def test_evaluating_again_inserts_nothing_new(db_url: str, db_engine: Engine) -> None:
    ctx = context(make_config(db_url))
    store(db_engine, "xxx", NOW)
    evaluate(db_engine, ctx, NOW)
    first = outbox(db_engine)
    assert len(first) == 2
    for later in (0, 1, 5):
        evaluate(db_engine, ctx, NOW + timedelta(seconds=later), windows=later == 5)
    assert outbox(db_engine) == first
    assert len(incidents(db_engine)) == 1


def test_an_unchanged_state_is_not_rewritten(db_url: str, db_engine: Engine) -> None:
    """The state row is written when the state changes, not on every round."""
    ctx = context(make_config(db_url))

    def stored() -> tuple[dict, datetime]:
        with db_engine.connect() as conn:
            row = conn.execute(sa.select(STATES.c.state, STATES.c.updated_at)).one()
        return row.state, row.updated_at.replace(tzinfo=UTC)

    store(db_engine, "...", NOW)
    evaluate(db_engine, ctx, NOW)
    first = stored()
    assert first[1] == NOW
    for later in (10, 20):
        evaluate(db_engine, ctx, NOW + timedelta(seconds=later))
    assert stored() == first
    store(db_engine, "xxx", NOW + timedelta(seconds=30))
    evaluate(db_engine, ctx, NOW + timedelta(seconds=30))
    state, updated = stored()
    assert updated == NOW + timedelta(seconds=30) and state["down"]["models"]["down"] is True


def test_two_nodes_evaluating_the_same_state_queue_each_notice_once(
    db_url: str, db_engine: Engine
) -> None:
    """Both nodes load the same stored state (a race, or a retry after a crash before the
    state was written): the second run's notices have the same keys, so nothing doubles."""
    ctx = context(make_config(db_url))
    store(db_engine, "xxx", NOW)
    with db_engine.begin() as conn:
        before = conn.execute(sa.select(STATES)).mappings().all()
    evaluate(db_engine, ctx, NOW)
    first = outbox(db_engine)
    with db_engine.begin() as conn:
        conn.execute(STATES.delete())
        for row in before:
            conn.execute(STATES.insert().values(**row))
    evaluate(db_engine, ctx, NOW + timedelta(seconds=1))
    assert outbox(db_engine) == first
    assert [i["key"] for i in incidents(db_engine)] == ["main-route:page:1"]


def test_recovery_queues_one_resolved_notice_with_the_duration(
    db_url: str, db_engine: Engine
) -> None:
    ctx = context(make_config(db_url))
    store(db_engine, "xxx", NOW)
    evaluate(db_engine, ctx, NOW)
    store(db_engine, ".", NOW + timedelta(seconds=10))
    evaluate(db_engine, ctx, NOW + timedelta(seconds=10))
    assert len(outbox(db_engine)) == 2  # one success is not a recovery
    store(db_engine, ".", NOW + timedelta(seconds=20))
    for _ in range(2):
        evaluate(db_engine, ctx, NOW + timedelta(seconds=20))
    resolved = [r for r in outbox(db_engine) if ":resolved:" in r["dedup_key"]]
    assert len(resolved) == 2
    assert {r["title"] for r in resolved} == {"[RESOLVED] main-route: down after 20s"}
    assert {r["notify_type"] for r in resolved} == {"success"}
    [incident] = incidents(db_engine)
    assert incident["state"] == "resolved"
    assert incident["resolved_at"] == NOW + timedelta(seconds=20)


def test_maintenance_mutes_and_is_left_out_of_the_windows(db_url: str, db_engine: Engine) -> None:
    cfg = make_config(db_url, 'maintenance:\n  - {cron: "0 12 * * *", duration: 1h}\n')
    ctx = context(cfg)
    store(db_engine, "xxxxxx", NOW + timedelta(minutes=5), maintenance=True)
    evaluate(db_engine, ctx, NOW + timedelta(minutes=5), windows=True)
    assert outbox(db_engine) == []
    # The incident is tracked through maintenance, just not announced.
    [incident] = incidents(db_engine)
    assert incident["state"] == "open" and incident["details"]["opened_in_maintenance"]
    counts = window_signals(db_engine, cfg, cfg.targets, NOW + timedelta(minutes=6))
    assert {c.valid for c in counts["main-route"].values()} == {0}
    # Still failing when the window ends: the page goes out then, once.
    store(db_engine, "x", NOW + timedelta(hours=1, seconds=10))
    for _ in range(2):
        evaluate(db_engine, ctx, NOW + timedelta(hours=1, seconds=10))
    rows = outbox(db_engine)
    assert len(rows) == 2 and all(":opened:" in r["dedup_key"] for r in rows)
    assert "opened during maintenance" in rows[0]["body"]


def test_cert_expiry_opens_a_ticket_on_ticket_channels_only(db_url: str, db_engine: Engine) -> None:
    ctx = context(make_config(db_url), cert_days=5.0)
    store(db_engine, "...", NOW)
    evaluate(db_engine, ctx, NOW)  # the fast path after a flush has no cert data
    assert incidents(db_engine) == []
    evaluate(db_engine, ctx, NOW, windows=True)
    [incident] = incidents(db_engine)
    assert (incident["rule_group"], incident["severity"], incident["state"]) == (
        "cert",
        "ticket",
        "open",
    )
    [row] = outbox(db_engine)
    ticket = next(c for c in ctx.channels if "ticket" in c.tags)
    assert row["channel"] == ticket.id and row["notify_type"] == "warning"
    assert "cert days left 5 days (threshold <= 14 days)" in row["body"]
    # A renewed certificate resolves it.
    renewed = context(ctx.cfg, cert_days=80.0)
    evaluate(db_engine, renewed, NOW + timedelta(minutes=1), windows=True)
    assert incidents(db_engine)[0]["state"] == "resolved"
    assert len(outbox(db_engine)) == 2


def test_no_secret_reaches_the_outbox_or_the_incidents(db_url: str, db_engine: Engine) -> None:
    """A probe detail that leaked a key (a relay echoing it) is masked before it is queued."""
    ctx = context(make_config(db_url))
    rows = []
    for i in range(3):
        r = ProbeResult(target="main-route", probe="models", started_at=NOW - timedelta(seconds=i))
        r.fail(ErrorKind.auth, f"HTTP 401: invalid key {API_KEY} via {HOOK_TOKEN}")
        rows.append(result_to_row(r, uid=new_uid()))
    with db_engine.begin() as conn:
        insert_results(conn, rows)
    evaluate(db_engine, ctx, NOW)
    queued = outbox(db_engine)
    assert len(queued) == 2 and all("HTTP 401: invalid key ***" in r["body"] for r in queued)
    with db_engine.connect() as conn:
        states = conn.execute(sa.select(STATES)).mappings().all()
    text = repr((queued, incidents(db_engine), states))
    assert API_KEY not in text and HOOK_TOKEN not in text
    # The incidents list shows the detail through the same redaction.
    from checker.web.status_data import incidents as incident_views

    [view] = incident_views(db_engine, ctx.redactor, open_only=True)
    assert view.detail is not None and API_KEY not in repr(view.to_json())


async def test_a_database_error_skips_the_round(tmp_path: Path) -> None:
    cfg = make_config(f"sqlite:///{tmp_path / 'none.db'}")
    engine = make_engine(f"sqlite:///{tmp_path / 'none.db'}")  # no tables: every query fails
    try:
        task = EvaluatorTask(engine, lambda: context(cfg))
        assert await task.run() == []
        assert task.last_error == "OperationalError" and task.rounds == 0
    finally:
        engine.dispose()
