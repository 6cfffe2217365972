"""Series read at scrape time: the writer's drop count is a counter that follows the writer,
the per-target series follow the running config, and a removed target leaves no ghosts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from checker.config.load import parse
from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.db import make_engine
from checker.store.writer import ResultWriter
from checker.web.metrics import Metrics
from checker.web.server import WebServer

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def families(text: str) -> dict[str, tuple[str, dict[tuple[str, str], float]]]:
    """Family -> (type, {(sample name, target label): value})."""
    return {
        f.name: (f.type, {(s.name, s.labels.get("target", "")): s.value for s in f.samples})
        for f in text_string_to_metric_families(text)
    }


async def test_dropped_results_are_a_counter_that_follows_the_writer(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    writer = ResultWriter(engine, queue_max=4)  # never started: every result stays queued
    metrics = Metrics()
    metrics.bind_queue(lambda: writer.queue_depth, lambda: writer.dropped)
    cfg = parse("targets: [{name: a, kind: http, base_url: 'http://127.0.0.1:9/'}]\n")
    server = WebServer(lambda: cfg, engine, metrics, lambda: (True, "ok"))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for _ in range(7):
                writer.submit(ProbeResult("a", "http", T0))
            first = families((await client.get("/metrics")).text)
            for _ in range(2):
                writer.submit(ProbeResult("a", "http", T0))
            second = families((await client.get("/metrics")).text)
    finally:
        await server.stop()
        engine.dispose()
    assert first["checker_writer_dropped"] == ("counter", {("checker_writer_dropped_total", ""): 3})
    assert second["checker_writer_dropped"][1] == {("checker_writer_dropped_total", ""): 5}
    assert first["checker_writer_queue_depth"][1] == {("checker_writer_queue_depth", ""): 4}


def config(*targets: tuple[str, float]) -> Config:
    lines = "".join(
        f"  - {{name: {name}, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m,"
        f" slo: {{availability: {objective}}}}}\n"
        for name, objective in targets
    )
    return parse(f"targets:\n{lines}")


def test_per_target_series_follow_the_running_config_and_forget_removed_targets() -> None:
    metrics = Metrics("east")
    running = [config(("alpha", 0.99), ("beta", 0.999))]
    metrics.bind_targets(lambda: running[0], lambda: {"alpha": T0, "gone": T0})
    failed = ProbeResult("beta", "stream", T0, error=ErrorKind.connect, status=None)
    metrics.observe(failed, duration_s=0.012)
    before = families(metrics.render().decode())
    assert before["checker_slo_objective"][1] == {
        ("checker_slo_objective", "alpha"): 0.99,
        ("checker_slo_objective", "beta"): 0.999,
    }
    # Only configured targets: a stale reading of a removed one is not exported.
    assert before["checker_cert_expiry_timestamp_seconds"][1] == {
        ("checker_cert_expiry_timestamp_seconds", "alpha"): T0.timestamp()
    }
    assert before["checker_probe_duration_seconds"][1][
        ("checker_probe_duration_seconds_sum", "beta")
    ] == (0.012)
    assert before["checker_probe_http_status_code"][1] == {
        ("checker_probe_http_status_code", "beta"): 0
    }

    running[0] = config(("alpha", 0.95))  # a reload: beta removed, alpha's objective lowered
    metrics.forget_target("beta", ["stream"])
    after = families(metrics.render().decode())
    assert after["checker_slo_objective"][1] == {("checker_slo_objective", "alpha"): 0.95}
    assert after["checker_target_info"][1] == {("checker_target_info", "alpha"): 1}
    for name in (
        "checker_probe_duration_seconds",
        "checker_probe_http_status_code",
        "checker_probe_last_timestamp_seconds",
        "checker_probe_up",
    ):
        assert after[name][1] == {}, name


def test_a_target_removed_then_added_back_gets_its_series_again() -> None:
    # observe keeps each series' child; a removed series must not keep receiving values
    # where no scrape looks.
    metrics = Metrics("east")
    ok = ProbeResult("beta", "stream", T0, ok=True, status=200, latency_ms=700.0, ttft_ms=300.0)
    metrics.observe(ok)
    metrics.forget_target("beta", ["stream"])
    metrics.observe(ok)
    after = families(metrics.render().decode())
    assert after["checker_probe_ttft_seconds"][1][("checker_probe_ttft_seconds_count", "beta")] == 1
    assert after["checker_probe_duration_seconds"][1][
        ("checker_probe_duration_seconds_sum", "beta")
    ] == (0.7)
    assert after["checker_probe_up"][1] == {("checker_probe_up", "beta"): 1}
    assert after["checker_probe_results"][1][("checker_probe_results_total", "beta")] == 2
