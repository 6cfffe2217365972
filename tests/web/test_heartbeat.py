"""Heartbeat bars: the newest results per probe, read from a real database (SQLite and
PostgreSQL) and coloured by the pure view model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from checker.config.load import parse
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.queries.page import RecentResult, recent_results
from checker.web.heartbeat import BEATS, SlowRule, heartbeat_rows, heartbeats, slow_rule
from tests.fixtures_db import store_results

NOW = datetime(2026, 6, 3, 9, 0, tzinfo=UTC)
CONFIG = """
targets:
  - name: alpha
    kind: openai
    base_url: http://127.0.0.1:9/v1
    model: m
    probes: [models, stream]
    slo: {latency: {ttft_ms: 500}}
  - {name: beta, kind: http, base_url: "http://127.0.0.1:9/"}
"""


def result(probe: str, at: datetime, *, ttft: float | None = 100.0) -> ProbeResult:
    r = ProbeResult(target="alpha", probe=probe, started_at=at, ok=True, latency_ms=300.0)
    r.ttft_ms = ttft if probe == "stream" else None
    return r


def test_recent_results_keeps_the_newest_per_probe_oldest_first(db_engine: Engine) -> None:
    at = [NOW - timedelta(minutes=i) for i in range(70, 0, -1)]  # oldest first
    items = [(result("stream", t), False) for t in at] + [(result("models", at[-1]), False)]
    failed = result("stream", at[-2]).fail(ErrorKind.server_error, "HTTP 503")
    items[-3] = (failed, False)
    store_results(db_engine, items)
    found = recent_results(db_engine, {NOW - timedelta(hours=3): ["alpha", "beta"]}, BEATS)
    stream = found[("alpha", "stream")]
    assert [r.started_at for r in stream] == at[-BEATS:]
    assert [r.ok for r in stream[-3:]] == [True, False, True]
    assert stream[-2].error == "server_error"
    assert [r.started_at for r in found[("alpha", "models")]] == [at[-1]]
    assert ("beta", "http") not in found
    # Older than the horizon: not searched.
    assert recent_results(db_engine, {NOW: ["alpha"]}, BEATS) == {}


def recent(at: datetime, *, ok: bool = True, error: str | None = None, ttft: float = 100.0):
    return RecentResult(at, ok, error, 900.0, ttft, maintenance=False)


def test_outcomes_colours_and_tooltips() -> None:
    slow = SlowRule("ttft_ms", 500.0)
    t0 = datetime(2026, 6, 3, 8, 0, 5, tzinfo=UTC)
    rows = [
        recent(t0),
        recent(t0 + timedelta(minutes=1), ttft=2900.0),
        recent(t0 + timedelta(minutes=2), ok=False, error="timeout"),
        recent(t0 + timedelta(minutes=3), ok=False, error="rate_limited"),
        RecentResult(t0 + timedelta(minutes=4), False, "server_error", None, None, True),
    ]
    row = heartbeats("stream", rows, slow)
    assert [b.outcome for b in row.beats] == ["ok", "slow", "failed", "limited", "failed"]
    assert [b.label for b in row.beats] == [
        "2026-06-03 08:00:05 UTC · ok, latency 900 ms, TTFT 100 ms",
        "2026-06-03 08:01:05 UTC · slow: TTFT 2,900 ms (over 500 ms)",
        "2026-06-03 08:02:05 UTC · failed: timeout",
        "2026-06-03 08:03:05 UTC · rate limited",
        "2026-06-03 08:04:05 UTC · failed: server_error · maintenance (not counted)",
    ]
    assert row.blank == BEATS - 5
    assert row.summary == "last 5: 1 ok, 1 slow, 2 failed, 1 rate limited"
    assert heartbeats("stream", [], slow).summary == "no results yet"
    # No latency objective: nothing is slow.
    assert heartbeats("stream", rows[1:2], None).beats[0].outcome == "ok"
    # More results than slots: the newest are kept.
    many = [recent(t0 + timedelta(minutes=i)) for i in range(BEATS + 5)]
    assert heartbeats("stream", many, slow).beats[0].label.startswith("2026-06-03 08:05:05")


def test_rows_per_probe_primary_first() -> None:
    cfg = parse(CONFIG)
    alpha, beta = cfg.targets
    assert slow_rule(cfg, alpha) == SlowRule("ttft_ms", 500.0)
    assert slow_rule(cfg, beta) is None
    rows = heartbeat_rows(cfg, alpha, {("alpha", "models"): [recent(NOW)]})
    assert [r.probe for r in rows] == ["stream", "models"]
    assert [len(r.beats) for r in rows] == [0, 1]
