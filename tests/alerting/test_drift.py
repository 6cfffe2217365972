"""The drift rule: a route's fingerprint, returned model or identity signature against its
baseline and its reference route; one ticket per change, flapping reported once, and
`checker baseline --accept` closing it. The pure rule, then the real service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from checker.alerting.drift_rule import Identity, drift_status
from checker.cli.baseline import baseline_command
from checker.config.load import parse
from checker.service.wiring import Service
from checker.sim.behaviour import Behavior
from checker.sim.server import SimServer
from tests.fixtures_notify import Webhook
from tests.waiting import eventually

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def seen(*values: str) -> list[tuple[datetime, str]]:
    return [(T0 + timedelta(minutes=i), v) for i, v in enumerate(values)]


def test_same_as_the_baseline_is_quiet() -> None:
    ident = Identity(
        {"system_fingerprint": seen("fp_a", "fp_a")}, {"system_fingerprint": "fp_a"}, {}
    )
    assert drift_status(ident).firing is False
    assert drift_status(None).firing is None  # not read this round: keep the state


def test_a_change_fires_with_old_new_and_when() -> None:
    history = seen("fp_a", "fp_a", "fp_b", "fp_b")
    status = drift_status(
        Identity({"system_fingerprint": history}, {"system_fingerprint": "fp_a"}, {})
    )
    assert status.firing is True
    assert status.detail == "system_fingerprint changed from fp_a to fp_b at 2026-12-01 12:02 UTC"
    [m] = status.measurements
    assert (m.name, m.value, m.scope) == ("system_fingerprint", "fp_b", "baseline fp_a")


def test_one_odd_result_is_not_a_change() -> None:
    history = seen("fp_a", "fp_a", "fp_b")
    ident = Identity({"system_fingerprint": history}, {"system_fingerprint": "fp_a"}, {})
    assert drift_status(ident).firing is None  # not yet a change: the state stays as it was


def test_a_flapping_value_is_reported_as_flapping() -> None:
    history = seen("fp_a", "fp_b", "fp_a", "fp_b", "fp_a")
    status = drift_status(
        Identity({"system_fingerprint": history}, {"system_fingerprint": "fp_a"}, {})
    )
    assert status.firing is True  # even though the latest equals the baseline
    assert status.detail is not None and "keeps changing (4 changes in the last 5" in status.detail
    assert "fp_a, fp_b" in status.detail


def test_a_route_serving_another_model_than_its_reference() -> None:
    ident = Identity(
        {"model": seen("llama-3-70b-q4", "llama-3-70b-q4")},
        {"model": "llama-3-70b-q4"},
        {"model": "llama-3-70b", "system_fingerprint": "fp_other"},
        "direct",
    )
    status = drift_status(ident)
    assert status.firing is True
    assert status.detail == "model is llama-3-70b-q4, the reference route direct serves llama-3-70b"
    assert drift_status(ident, enabled=False).firing is False


def config_text(sim: SimServer, webhook: Webhook, db: Path) -> str:
    return f"""
targets:
  - {{name: relay, kind: openai, base_url: "{sim.url("relay")}", model: sim-small,
     probes: [stream], interval: 200ms}}
defaults:
  alerts: {{burn: false, budget_below: null}}
notify:
  - {{url: "{webhook.url("tickets")}", tags: [ticket]}}
storage: {{url: "sqlite:///{db}", flush_every: 100ms}}
scheduler: {{evaluate_every: 300ms, shutdown_grace: 2s}}
"""


def drift_titles(webhook: Webhook) -> list[str]:
    return [t for t in webhook.titles() if "drift" in t]


async def test_a_fingerprint_change_opens_one_ticket_and_accepting_it_resolves(
    sim: SimServer, webhook: Webhook, tmp_path: Path
) -> None:
    sim.set("relay", system_fingerprint="fp_a")
    db = tmp_path / "c.db"
    (tmp_path / "c.yaml").write_text(config_text(sim, webhook, db))
    service = Service(None, parse(config_text(sim, webhook, db)))
    await service.start()
    try:

        def baseline() -> dict[str, str]:
            with service.engine.connect() as conn:
                rows = conn.execute(sa.text("SELECT field, value FROM baselines")).all()
            return dict(rows)

        await eventually(lambda: baseline().get("system_fingerprint") == "fp_a", within=10)
        assert baseline()["model"] == "sim-small"
        sim.set("relay", system_fingerprint="fp_b")  # a silent backend swap
        await eventually(lambda: len(drift_titles(webhook)) == 1, within=10)
        message = next(p for p in webhook.received() if "drift" in p.payload["title"])
        assert "system_fingerprint changed from fp_a to fp_b" in message.payload["message"]
        # The operator looked: fp_b is fine. Accepting it resolves the ticket, once.
        assert baseline_command(tmp_path / "c.yaml", "relay", True, False) == 0
        await eventually(lambda: len(drift_titles(webhook)) == 2, within=10)
        assert drift_titles(webhook)[1].startswith("[RESOLVED]")
        # A load balancer over two backends: A, B, A, B... is one incident, not one per flip.
        before = chats(sim)
        sim.script("relay", [Behavior(system_fingerprint=f"fp_{'ab'[i % 2]}") for i in range(16)])
        await eventually(lambda: len(drift_titles(webhook)) == 3, within=10)
        await eventually(lambda: chats(sim) >= before + 16, within=20)  # the whole script
        assert len(drift_titles(webhook)) == 3
        flapping = [p for p in webhook.received() if "drift" in p.payload["title"]][-1]
        assert "keeps changing" in flapping.payload["message"]
    finally:
        await service.stop()


def chats(sim: SimServer) -> int:
    return int(sim.stats("relay")["requests"].get("chat", 0))
