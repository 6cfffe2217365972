"""Alerting end to end: the real service probes the simulator, judges, queues and delivers
through Apprise to a real webhook (`json://`) and a real SMTP server, all over loopback.

Every phase waits long enough after its notice arrived (several flushes, evaluation rounds
and delivery polls) to prove that nothing comes twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.alerting import outbox
from checker.alerting.channels import load_channels
from checker.alerting.evaluator import window_signals
from checker.config.load import load, parse
from checker.config.schema import Config
from checker.service.wiring import Service
from checker.sim.server import SimServer
from checker.store.models import AlertStateRow, IncidentRow, OutboxRow, ProbeResultRow
from tests.fixtures_notify import SMTP_PASSWORD, SmtpInbox, Webhook
from tests.fixtures_sim import SIM_API_KEY
from tests.waiting import eventually, wait_until

HOOK_TOKEN = "hook-TOKEN-e2e-4f1d7a90"
ROUTE = "main"
# Long enough for several flushes (200 ms) and evaluation rounds (300 ms), each of which
# wakes the deliverer.
QUIET_S = 1.0
FIRING = "[FIRING PAGE] main-route: down"
RESOLVED_PREFIX = "[RESOLVED] main-route: down after "


def config_text(
    sim: SimServer, db_url: str, channels: list[str], extra: str = "", key: bool = False
) -> str:
    notify_yaml = "".join(f'  - {{url: "{url}", tags: [page]}}\n' for url in channels)
    api_key = f"    api_key: {SIM_API_KEY}\n" if key else ""
    return f"""
targets:
  - name: main-route
    kind: openai
    base_url: {sim.url(ROUTE)}
{api_key}    probes: [models]
    interval: 200ms
    timeout: 2s
defaults:
  # Only `down` here: burn-rate pages resolve with their 5-minute window, budget tickets
  # would need a ticket channel. The pure rules are tested exhaustively in test_rules.py.
  alerts: {{down: {{failures: 3, recoveries: 2}}, burn: false, budget_below: null}}
notify:
{notify_yaml}storage: {{url: "{db_url}", flush_every: 200ms}}
scheduler: {{evaluate_every: 300ms, shutdown_grace: 2s}}
{extra}"""


def rows(engine: Engine, table: sa.Table) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(table)).mappings()]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'checker.db'}"
    engine = sa.create_engine(url)
    yield url, engine
    engine.dispose()


def count(engine: Engine, table: sa.Table) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    except sa.exc.OperationalError:  # the service has not created the schema yet
        return 0


PROBES = ProbeResultRow.__table__
OUTBOX = OutboxRow.__table__
INCIDENTS = IncidentRow.__table__
STATES = AlertStateRow.__table__


# --- one outage, one page, one resolved notice, no secret anywhere (the real `checker run`) ---


def test_one_page_and_one_resolved_notice_per_channel_and_no_secret_anywhere(
    sim_with_key: SimServer,
    webhook: Webhook,
    smtp: SmtpInbox,
    db: tuple[str, Engine],
    tmp_path: Path,
) -> None:
    sim = sim_with_key
    url, engine = db
    config = tmp_path / "checker.yaml"
    hook_url = webhook.url(f"hook/{HOOK_TOKEN}")
    config.write_text(config_text(sim, url, [hook_url, smtp.url(login=True)], key=True))
    log_path = tmp_path / "service.log"

    with log_path.open("w") as log:
        service = subprocess.Popen(
            [sys.executable, "-m", "checker.cli", "run", "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_until(lambda: count(engine, PROBES) >= 3, within=30)
            # The relay fails and echoes the caller's key in its error, as careless ones do.
            sim.set(ROUTE, status=503, error_message=f"upstream rejected key {SIM_API_KEY}")
            wait_until(lambda: webhook.titles() == [FIRING] and smtp.subjects() == [FIRING])

            incidents_cli = ["checker.cli", "incidents", "--open", "--json", "-c", str(config)]
            listed = subprocess.run(
                [sys.executable, "-m", *incidents_cli],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert listed.returncode == 0, listed.stderr
            [incident] = json.loads(listed.stdout)
            assert (incident["target"], incident["severity"], incident["state"]) == (
                "main-route",
                "page",
                "open",
            )
            assert incident["rules"] == ["down"]
            assert "upstream rejected key ***" in incident["detail"]

            failing = count(engine, PROBES)
            wait_until(lambda: count(engine, PROBES) >= failing + 5)  # still probing
            assert webhook.titles() == [FIRING] and smtp.subjects() == [FIRING]

            sim.set(ROUTE)
            wait_until(lambda: len(webhook.titles()) == 2 and len(smtp.subjects()) == 2)
            recovered = count(engine, PROBES)
            wait_until(lambda: count(engine, PROBES) >= recovered + 5)
        finally:
            service.send_signal(signal.SIGTERM)
            code = service.wait(timeout=30)
    assert code == 0
    assert [i["state"] for i in rows(engine, INCIDENTS)] == ["resolved"]

    for titles in (webhook.titles(), smtp.subjects()):
        assert len(titles) == 2, titles
        assert titles[0] == FIRING
        assert titles[1].startswith(RESOLVED_PREFIX)
    page, resolved = (p.payload for p in webhook.received())
    assert page["type"] == "failure" and resolved["type"] == "success"
    assert "HTTP 503" in page["message"] and "upstream rejected key ***" in page["message"]
    mail = smtp.messages()[0].get_body(("html",))
    assert mail is not None and "upstream rejected key ***" in mail.get_content()

    # The secrets were used: the key reached the simulator (503s, not 401s), the token
    # reached the webhook, the password logged in to the SMTP server.
    assert {r["error"] for r in rows(engine, PROBES)} == {None, "server_error"}
    assert {p.path for p in webhook.received()} == {f"/hook/{HOOK_TOKEN}"}
    assert len(smtp.logins) == 2
    # ...and appear nowhere else: not in messages, tables or logs.
    everything = "\n".join(
        [
            *(p.raw.decode() for p in webhook.received()),
            *(raw.decode(errors="replace") for raw in smtp.raw),
            *(repr(rows(engine, t)) for t in (OUTBOX, INCIDENTS, STATES, PROBES)),
            listed.stdout,
            log_path.read_text(),
        ]
    )
    assert "notification delivered" in everything  # the log is there
    for secret in (SIM_API_KEY, HOOK_TOKEN, SMTP_PASSWORD, hook_url):
        assert secret not in everything


# --- in-process service for the failure cases --------------------------------------------------


async def started(cfg: Config) -> Service:
    service = Service(None, cfg)
    await service.start()
    return service


async def test_the_smtp_server_is_down_when_the_alert_fires(
    sim: SimServer,
    webhook: Webhook,
    smtp_down: SmtpInbox,
    db: tuple[str, Engine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outbox, "BACKOFF_FIRST_S", 0.2)
    url, engine = db
    cfg = parse(config_text(sim, url, [webhook.url("hook"), smtp_down.url()]))
    mail_channel = next(c for c in load_channels(cfg) if c.is_email)

    def mail_rows() -> list[dict]:
        return [r for r in rows(engine, OUTBOX) if r["channel"] == mail_channel.id]

    service = await started(cfg)
    try:
        await eventually(lambda: count(engine, PROBES) >= 3)
        sim.set(ROUTE, status=503)
        await eventually(lambda: webhook.titles() == [FIRING])
        # The mail is queued and retried while its server is down...
        await eventually(lambda: len(mail_rows()) == 1 and mail_rows()[0]["attempts"] >= 3)
        [row] = mail_rows()
        assert row["delivered_at"] is None and row["failed_at"] is None
        assert row["last_error"] and row["title"] == FIRING
        # ...and the service keeps probing and judging meanwhile.
        probed = count(engine, PROBES)
        await eventually(lambda: count(engine, PROBES) >= probed + 5)
        assert service.judging.evaluator.last_error is None and service.judging.evaluator.rounds > 0
        assert max(service.scheduler_lag_s[-20:]) < 1.0  # an SMTP wait would be seconds

        smtp_down.start()
        await eventually(lambda: smtp_down.subjects() == [FIRING])
        await asyncio.sleep(QUIET_S)
        assert smtp_down.subjects() == [FIRING] and webhook.titles() == [FIRING]
        [row] = mail_rows()
        assert row["delivered_at"] is not None and row["attempts"] >= 4

        sim.set(ROUTE)
        await eventually(lambda: len(smtp_down.subjects()) == 2 and len(webhook.titles()) == 2)
        assert smtp_down.subjects()[1].startswith(RESOLVED_PREFIX)
    finally:
        await service.stop()
    assert outbox.pending_count(engine) == 0


async def test_a_restart_mid_incident_neither_pages_again_nor_forgets(
    sim: SimServer, webhook: Webhook, smtp: SmtpInbox, db: tuple[str, Engine]
) -> None:
    url, engine = db
    cfg = parse(config_text(sim, url, [webhook.url("hook"), smtp.url()]))
    first = await started(cfg)
    try:
        await eventually(lambda: count(engine, PROBES) >= 3)
        sim.set(ROUTE, status=503)
        await eventually(lambda: webhook.titles() == [FIRING] and smtp.subjects() == [FIRING])
    finally:
        await first.stop()

    second = await started(cfg)  # same database: the rule state and the incident are there
    try:
        before = count(engine, PROBES)
        await eventually(lambda: count(engine, PROBES) >= before + 5)
        await asyncio.sleep(QUIET_S)  # also past the first periodic round (all windows)
        assert second.judging.evaluator.rounds > 0
        assert webhook.titles() == [FIRING] and smtp.subjects() == [FIRING]

        sim.set(ROUTE)
        await eventually(lambda: len(webhook.titles()) == 2 and len(smtp.subjects()) == 2)
        await asyncio.sleep(QUIET_S)
    finally:
        await second.stop()
    for titles in (webhook.titles(), smtp.subjects()):
        assert titles[0] == FIRING and titles[1].startswith(RESOLVED_PREFIX) and len(titles) == 2
    [incident] = rows(engine, INCIDENTS)
    assert incident["state"] == "resolved" and incident["key"] == "main-route:page:1"


async def test_a_maintenance_window_mutes_and_is_left_out_of_the_slo(
    sim: SimServer, webhook: Webhook, db: tuple[str, Engine]
) -> None:
    url, engine = db
    # A window starts every minute and lasts an hour: it covers the whole test.
    extra = 'maintenance:\n  - {cron: "* * * * *", duration: 1h, targets: [main-route]}\n'
    cfg = parse(config_text(sim, url, [webhook.url("hook")], extra))
    sim.set(ROUTE, status=503)
    service = await started(cfg)
    try:
        await eventually(lambda: count(engine, PROBES) >= 8)
        rounds = service.judging.evaluator.rounds
        await eventually(lambda: service.judging.evaluator.rounds >= rounds + 3)  # incl. windows
        await asyncio.sleep(QUIET_S)
    finally:
        await service.stop()
    assert webhook.received() == []
    assert rows(engine, OUTBOX) == []
    results = rows(engine, PROBES)
    assert results and all(r["maintenance"] and r["error"] == "server_error" for r in results)
    # Tracked, not announced: the incident exists, opened during maintenance.
    [incident] = rows(engine, INCIDENTS)
    assert incident["state"] == "open" and incident["details"]["opened_in_maintenance"]
    assert incident["details"]["notified"] is False
    # The SLO windows hold no valid probe at all: maintenance is excluded.
    counts = window_signals(engine, cfg, cfg.targets, datetime.now(UTC) + timedelta(seconds=1))
    assert counts["main-route"] and {c.valid for c in counts["main-route"].values()} == {0}


async def test_channels_from_an_apprise_config_file_and_a_reload_that_cannot_read_it(
    sim: SimServer, webhook: Webhook, db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, _engine = db
    config = tmp_path / "checker.yaml"
    config.write_text(config_text(sim, url, [webhook.url("direct")]))
    service = Service(config, load(config))
    await service.start()
    try:
        running = service.channels
        missing = f"apprise_config: {tmp_path / 'missing.yml'}\n"
        config.write_text(config_text(sim, url, [webhook.url("direct")], missing))
        assert await service.reload() is False
        assert service.channels == running and service.cfg.apprise_config is None

        apprise_file = tmp_path / "apprise.yml"
        apprise_file.write_text(f"urls:\n  - {webhook.url('from-file')}:\n      - tag: page\n")
        config.write_text(
            config_text(sim, url, [webhook.url("direct")], f"apprise_config: {apprise_file}\n")
        )
        assert await service.reload() is True
        assert len(service.channels) == 2
        sim.set(ROUTE, status=503)
        await eventually(lambda: len(webhook.received()) == 2)
        await asyncio.sleep(QUIET_S)
    finally:
        await service.stop()
    assert sorted(p.path for p in webhook.received()) == ["/direct", "/from-file"]
    assert webhook.titles() == [FIRING, FIRING]
