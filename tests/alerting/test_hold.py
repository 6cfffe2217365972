"""A route held by a long Retry-After is not probed: when the hold is longer than `down`
would take to page, a `rate_limited_hold` ticket says so, and resolves with the hold."""

from __future__ import annotations

from pathlib import Path

from checker.alerting.signals import Policy, Signals
from checker.alerting.threshold_rules import hold_status
from checker.config.load import parse
from checker.config.schema import Alerts, Slo
from checker.service.clock import OffsetClock
from checker.service.wiring import Service
from checker.sim.server import SimServer
from tests.fixtures_notify import Webhook
from tests.waiting import eventually


def test_hold_rule_table() -> None:
    pol = Policy(Alerts.model_validate({"down": {"failures": 3}}), Slo(), interval_s=60)
    assert hold_status(Signals(rate_limit_hold_s=0.0), pol).firing is False
    assert hold_status(Signals(rate_limit_hold_s=180.0), pol).firing is False  # = 3 x 60 s
    assert hold_status(Signals(rate_limit_hold_s=181.0), pol).firing is True
    assert hold_status(Signals(), pol).firing is None  # not measured: keep the state


async def test_a_long_hold_opens_one_ticket_and_resolves_with_it(
    sim: SimServer, webhook: Webhook, tmp_path: Path
) -> None:
    sim.set("limited", status=429, retry_after="300")
    cfg = parse(
        f"""
targets:
  - {{name: limited, kind: openai, base_url: "{sim.url("limited")}", probes: [models],
     interval: 200ms}}
defaults:
  alerts: {{burn: false, budget_below: null, down: {{failures: 3}}}}
notify:
  - {{url: "{webhook.url("tickets")}", tags: [ticket]}}
storage: {{url: "sqlite:///{tmp_path / "c.db"}", flush_every: 100ms}}
scheduler: {{evaluate_every: 300ms, shutdown_grace: 2s}}
"""
    )
    clock = OffsetClock()
    service = Service(None, cfg, clock=clock)
    await service.start()
    try:
        await eventually(lambda: len(webhook.titles()) == 1, within=15)
        assert "limited: rate_limited_hold" in webhook.titles()[0]
        assert "rate limit hold 300" in webhook.received()[0].payload["message"]
        sim.set("limited")  # the rate limit is over...
        clock.advance(301)  # ...and so is the hold
        await eventually(lambda: len(webhook.titles()) == 2, within=15)
        assert webhook.titles()[1].startswith("[RESOLVED] limited: rate_limited_hold")
    finally:
        await service.stop()
