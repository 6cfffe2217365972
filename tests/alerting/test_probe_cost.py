"""Probe cost governance: a probe run that costs more than its limit (probe_cost_max_usd,
default 10x its expected cost) opens a `probe_cost` ticket. The simulator plays a reasoning
model that ignores max_tokens: one "hi" that thinks for 950 tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from checker.alerting.signals import ProbeOutcome, Signals
from checker.alerting.threshold_rules import probe_cost_status
from checker.config.load import parse
from checker.cost.prices import PriceBook
from checker.cost.probe_usage import expected_usage
from checker.service.wiring import Service
from checker.sim.server import SimServer
from tests.fixtures_notify import Webhook
from tests.waiting import eventually

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_the_rule_fires_on_the_latest_priced_run_only() -> None:
    cheap, dear = ProbeOutcome(T0, False, cost_usd=0.0001), ProbeOutcome(T0, False, cost_usd=0.01)
    limits = {"stream": 0.002}
    assert (
        probe_cost_status(Signals(recent={"stream": [cheap]}, probe_cost_limits=limits)).firing
        is False
    )
    status = probe_cost_status(Signals(recent={"stream": [cheap, dear]}, probe_cost_limits=limits))
    assert status.firing is True
    assert status.detail == "one stream run cost $0.010000, over its limit $0.002000"
    assert probe_cost_status(Signals(recent={"stream": [dear]})).firing is None


def test_expected_usage_per_probe() -> None:
    cfg = parse(
        "targets: [{name: t, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m,"
        " max_tokens: 16, prefill_tokens: 10000}]\n"
    )
    t = cfg.targets[0]
    assert expected_usage(t, "models") is None  # free
    assert expected_usage(t, "stream") == (40, 16)
    assert expected_usage(t, "prefill") == (10000, 1)
    assert expected_usage(t, "cache") == (2200, 2)


def config_text(sim: SimServer, webhook: Webhook, db: Path) -> str:
    return f"""
targets:
  - name: thinker
    kind: openai
    base_url: "{sim.url("thinker")}"
    model: sim-small
    probes: [stream]
    interval: 300ms
    pricing: {{input_per_mtok: 1.0, output_per_mtok: 10.0}}
defaults:
  alerts: {{burn: false, budget_below: null}}
notify:
  - {{url: "{webhook.url("tickets")}", tags: [ticket]}}
storage: {{url: "sqlite:///{db}", flush_every: 100ms}}
scheduler: {{evaluate_every: 300ms, shutdown_grace: 2s}}
"""


async def test_a_model_that_ignores_max_tokens_opens_a_probe_cost_ticket(
    sim: SimServer, webhook: Webhook, tmp_path: Path
) -> None:
    cfg = parse(config_text(sim, webhook, tmp_path / "c.db"))
    expected = PriceBook(cfg).expected_cost(cfg.targets[0], "stream", T0)
    assert expected == pytest.approx((40 * 1.0 + 16 * 10.0) / 1e6)
    sim.set("thinker", reasoning_tokens=950, inter_token_ms=0.1)
    service = Service(None, cfg)
    await service.start()
    try:
        await eventually(lambda: any("probe_cost" in t for t in webhook.titles()), within=15)
        message = next(p for p in webhook.received() if "probe_cost" in p.payload["title"])
        assert "one stream run cost $0.0096" in message.payload["message"]
        assert "over its limit $0.002000" in message.payload["message"]
    finally:
        await service.stop()


def test_cost_limits_keep_only_todays_entries() -> None:
    # A service runs for months: the limits cache must not grow by a day's worth daily.
    from checker.service.accounting import CostLimits
    from checker.service.clock import OffsetClock

    cfg = parse(
        "targets:\n  - {name: a, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m,"
        " pricing: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n",
        "c.yaml",
        "none",
    )
    clock = OffsetClock()
    limits = CostLimits(clock)
    book = PriceBook(cfg)
    first = limits.limit(cfg.targets[0], "stream", book)
    assert first is not None and first > 0
    for _ in range(30):
        clock.advance(86400)
        assert limits.limit(cfg.targets[0], "stream", book) == first
    assert len(limits._known) == 1
