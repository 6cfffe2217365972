"""The billing honesty rule: a route that reports more output tokens than it streams opens
one ticket, and it resolves once when the route is honest again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from checker.alerting.signals import Policy, Signals
from checker.alerting.threshold_rules import billing_status
from checker.config.load import parse
from checker.config.schema import Alerts, BillingRule, Slo
from checker.service.wiring import Service
from checker.sim.server import SimServer
from tests.fixtures_notify import Webhook
from tests.waiting import eventually

POLICY = Policy(Alerts(billing=BillingRule(last=10)), Slo(), usage_band=(0.8, 1.25))
HONEST = (40, 0, 40)
TRIPLE = (120, 0, 40)


@pytest.mark.parametrize(
    ("usage", "firing", "ratio"),
    [
        ([HONEST] * 10, False, 1.0),
        ([TRIPLE] * 10, True, 3.0),
        ([HONEST] * 4 + [TRIPLE] * 6, True, 3.0),  # the median of the last 10
        ([TRIPLE] * 4 + [HONEST] * 6, False, 1.0),
        ([(10, 0, 40)] * 10, True, 0.25),  # under-reporting is outside the band too
        ([(60, 40, 20)] * 10, False, 1.0),  # hidden reasoning never streams as text
        ([TRIPLE] * 12 + [HONEST] * 10, False, 1.0),  # only the last 10 count
    ],
)
def test_billing_rule_table(usage: list[tuple[int, int, int]], firing: bool, ratio: float) -> None:
    status = billing_status(Signals(usage=usage, output_usd_per_mtok=0.6), POLICY)
    assert status.firing is firing
    by_name = {m.name: m for m in status.measurements}
    assert by_name["usage_ratio"].value == pytest.approx(ratio)


def test_billing_rule_message_figures_and_no_verdict_without_data() -> None:
    status = billing_status(Signals(usage=[TRIPLE] * 10, output_usd_per_mtok=0.6), POLICY)
    m = {x.name: x.value for x in status.measurements}
    assert m["reported_output_tokens"] == 1200 and m["counted_output_tokens"] == 400
    # 2M output tokens a month, 2 of every 3 billed ones never streamed, at $0.60/M.
    assert m["extra_cost_per_month"] == pytest.approx(2_000_000 * 2 * 0.6 / 1e6)
    unpriced = billing_status(Signals(usage=[TRIPLE] * 10), POLICY)
    assert {x.name: x.value for x in unpriced.measurements}["extra_cost_per_month"] == (
        "price unknown"
    )
    assert billing_status(Signals(usage=[TRIPLE] * 9), POLICY).firing is None  # too few
    assert billing_status(Signals(usage=None), POLICY).firing is None
    assert billing_status(Signals(usage=[(3, 0, 2)] * 10), POLICY).firing is None  # too short
    off = Policy(Alerts(billing=BillingRule(enabled=False)), Slo())
    assert billing_status(Signals(usage=[TRIPLE] * 10), off).firing is False


async def test_an_over_billing_relay_opens_one_ticket_and_resolves_once(
    sim: SimServer, webhook: Webhook, tmp_path: Path
) -> None:
    sim.set("relay", completion_tokens=12, reported_completion_tokens=36, ttft_ms=5)
    cfg = parse(
        f"""
targets:
  - name: relay
    kind: openai
    base_url: {sim.url("relay")}
    model: gpt-4o-mini
    probes: [stream]
    interval: 200ms
    timeout: 2s
defaults:
  alerts: {{burn: false, budget_below: null, billing: {{last: 5}}}}
notify:
  - {{url: "{webhook.url("tickets")}", tags: [ticket]}}
storage: {{url: "sqlite:///{tmp_path / "c.db"}", flush_every: 200ms}}
scheduler: {{evaluate_every: 300ms, shutdown_grace: 2s}}
"""
    )
    service = Service(None, cfg)
    await service.start()
    try:
        await eventually(lambda: len(webhook.titles()) == 1, within=20)
        (opened,) = webhook.received()
        assert "relay" in opened.payload["title"] and "billing" in opened.payload["title"]
        body = opened.payload["message"]
        assert "usage ratio 3" in body and "reported output tokens 180" in body
        assert "counted output tokens 60" in body and "extra cost per month" in body
        sim.set("relay", completion_tokens=12, ttft_ms=5)  # honest again
        await eventually(lambda: len(webhook.titles()) == 2, within=20)
        assert webhook.titles()[1].startswith("[RESOLVED] relay: billing")
        await asyncio.sleep(1.5)  # several more rounds: nothing more is sent
        assert len(webhook.titles()) == 2
    finally:
        await service.stop()
