"""A status page that looks like a real week, for the browser test and the screenshots in
docs/: routes grouped by tag, a flapping relay to the same model as a direct route, slow
and rate-limited results, a route added minutes ago, two locations, costs, incidents open
and resolved. Written through the real writer's insert and rolled up with the real rollups;
older days as whole-day rollup rows."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.plan import HOUR, floor_hour
from checker.store.rollup import rollup_hours
from tests.fixtures_db import store_results
from tests.web.test_server import insert_day_rollup, insert_incident

__all__ = ["CONFIG", "NOW", "build_scenario"]

NOW = datetime(2026, 6, 3, 14, 20, 5, tzinfo=UTC)
_URL = "http://127.0.0.1:9/v1"
CONFIG = f"""
location: fra-1
targets:
  - {{name: deepseek-direct, kind: openai, base_url: "{_URL}", model: deepseek-chat, interval: 10m,
     tags: [production], reference: true, slo: {{latency: {{ttft_ms: 750}}}}}}
  - {{name: anthropic-direct, kind: anthropic, base_url: "{_URL}", model: claude-sonnet-4-5,
     interval: 10m, tags: [production]}}
  - {{name: deepseek-relay, kind: openai, base_url: "{_URL}", model: deepseek-chat, interval: 10m,
     tags: [relays], pricing: {{input_per_mtok: 0.28, output_per_mtok: 0.42}}}}
  - {{name: openrouter-gpt-4o, kind: openai, base_url: "{_URL}", model: openai/gpt-4o,
     interval: 10m, tags: [relays], slo: {{availability: 99.9%}}}}
  - {{name: vllm-staging, kind: openai, base_url: "{_URL}", model: qwen3-8b, interval: 10m,
     tags: [lab]}}
  - {{name: docs-site, kind: http, base_url: "http://127.0.0.1:9/", interval: 10m}}
server: {{listen: "127.0.0.1:0", title: "Example AI platform"}}
"""
# name -> (failure rate, median latency ms, a few bad days: days ago -> failure rate)
PROFILES: dict[str, tuple[float, float, dict[int, float]]] = {
    "deepseek-direct": (0.0005, 1400.0, {41: 0.06}),
    "anthropic-direct": (0.001, 1800.0, {3: 0.02, 70: 0.12}),
    "deepseek-relay": (0.002, 1300.0, {9: 0.05}),
    "openrouter-gpt-4o": (0.0004, 900.0, {12: 0.015, 13: 0.004, 57: 0.03}),
    "vllm-staging": (0.0, 300.0, {}),
    "docs-site": (0.0, 120.0, {}),
}
# Routes that started later: days before them are blank, not down.
ADDED_DAYS_AGO = {"openrouter-gpt-4o": 75, "deepseek-relay": 20}
# Costs per stream, USD (the direct route's at its list price; vllm is free).
COST = {"deepseek-direct": 6e-6, "deepseek-relay": 1.4e-5, "openrouter-gpt-4o": 1.2e-4}


# (target, severity, rule group, opened minutes ago, resolved minutes ago or None, detail)
INCIDENTS: list[tuple[str, str, str, int, int | None, str]] = [
    ("anthropic-direct", "page", "down", 22, None, "HTTP 529 overloaded_error"),
    ("openrouter-gpt-4o", "ticket", "latency", 190, None,
     "p95 TTFT 2.9 s above 2 s over the last 20 probes"),
    ("deepseek-relay", "page", "burn_page", 160, None, "burn rate 16.1 over 1h (page at 14.4)"),
    ("deepseek-relay", "page", "down", 312, 298, "3 failures in a row: server_error"),
    ("openrouter-gpt-4o", "ticket", "rate_limited_hold", 235, 125,
     "HTTP 429 with Retry-After 20s"),
]  # fmt: skip


def _result(
    target: str, probe: str, at: datetime, rng: random.Random, median: float
) -> ProbeResult:
    r = ProbeResult(target=target, probe=probe, started_at=at, ok=True, status=200)
    # A daily rhythm: slower in the (UTC) afternoon, when the providers are busiest.
    busy = 1.0 + 0.25 * max(0.0, 1 - abs(at.hour - 15) / 6)
    r.latency_ms = median * busy * rng.lognormvariate(0, 0.18) * (0.3 if probe == "models" else 1)
    if probe == "stream":
        r.ttft_ms = r.latency_ms * rng.uniform(0.35, 0.5)
        r.tokens_per_s = rng.uniform(40, 90)
        r.prompt_tokens, r.completion_tokens = 24, 16
        r.cost_usd = COST.get(target)
    return r


def _twist(r: ProbeResult, rng: random.Random) -> None:
    """The day's events: a relay flapping all afternoon, a throttled route, an outage."""
    age = NOW - r.started_at
    flapping = timedelta(minutes=3) < age < timedelta(hours=6)  # its newest probe succeeded
    if r.target == "deepseek-relay" and flapping and rng.random() < 0.22:
        r.fail(rng.choice([ErrorKind.server_error, ErrorKind.timeout]), "upstream 502")
    throttled = timedelta(hours=2) < age < timedelta(hours=4)
    if r.target == "openrouter-gpt-4o" and throttled and rng.random() < 0.4:
        r.status, r.retry_after_s = 429, 20.0
        r.fail(ErrorKind.rate_limited, "HTTP 429 rate limited")
    # anthropic-direct has been failing for the last 25 minutes; its detail is hostile HTML.
    if r.target == "anthropic-direct" and age < timedelta(minutes=25):
        r.ok, r.latency_ms, r.ttft_ms, r.tokens_per_s, r.error = False, None, None, None, None
        r.status = 529
        r.fail(ErrorKind.server_error, "HTTP 529 overloaded_error: <b>Overloaded</b>")


def _raw(cfg: Config, rng: random.Random, since: datetime) -> list[tuple[ProbeResult, bool]]:
    items: list[tuple[ProbeResult, bool]] = []
    for target in cfg.targets:
        rate, median, _ = PROFILES[target.name]
        # vllm-staging was added 40 minutes ago: four results so far.
        start = NOW - timedelta(minutes=40) if target.name == "vllm-staging" else since
        at = NOW - timedelta(seconds=rng.uniform(30, 120))
        while at >= start:
            for probe in target.probe_names:
                r = _result(
                    target.name, probe, at - timedelta(seconds=rng.uniform(0, 20)), rng, median
                )
                if rng.random() < rate * 3:
                    r.fail(ErrorKind.timeout, "no first token within 15s")
                _twist(r, rng)
                # deepseek-direct is probed from two places: fra-1 and iad-1.
                if target.name == "deepseek-direct":
                    r.location = rng.choice(["fra-1", "iad-1"])
                items.append((r, False))
            at -= timedelta(minutes=10)
    return items


def build_scenario(engine: Engine, cfg: Config) -> None:
    rng = random.Random(20260603)
    raw_since = NOW - timedelta(hours=26)
    store_results(engine, _raw(cfg, rng, raw_since))
    rollup_hours(engine, raw_since, floor_hour(NOW) - HOUR, now=NOW)
    first_raw_day = raw_since.date()
    for target in cfg.targets:
        rate, _, bad_days = PROFILES[target.name]
        if target.name == "vllm-staging":
            continue
        for ago in range(1, 90):
            day = NOW.date() - timedelta(days=ago)
            if day >= first_raw_day or ago > ADDED_DAYS_AGO.get(target.name, 90):
                continue  # raw rows cover it, or the route did not exist yet
            total = 144 * len(target.probe_names)
            bad = round(total * bad_days.get(ago, rate * rng.uniform(0, 1.5)))
            insert_day_rollup(engine, target.name, day, total=total, ok=total - bad)
    for target, severity, group, opened_min, resolved_min, detail in INCIDENTS:
        insert_incident(
            engine,
            target,
            severity=severity,
            group=group,
            opened_at=NOW - timedelta(minutes=opened_min),
            resolved_at=NOW - timedelta(minutes=resolved_min) if resolved_min else None,
            detail=detail,
        )
