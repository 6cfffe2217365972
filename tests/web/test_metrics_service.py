"""/metrics of a running service, scraped over HTTP: the blackbox-style series hold what the
probes measured (a probe against the simulator, one that times out, an https target whose
certificate the service read), each with its Prometheus type, and no `_created` series."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from checker.config.load import parse
from checker.probes.base import ErrorKind, ProbeResult
from checker.service.wiring import Service
from checker.sim.server import SimServer
from tests.alerting.test_certs import TlsServer, make_cert
from tests.waiting import eventually

Key = tuple[str, str]  # (target, probe)


def config_text(sim: SimServer, tls_url: str, db: Path) -> str:
    return f"""
targets:
  - name: fast
    kind: openai
    base_url: "{sim.url("fast")}"
    model: sim-small
    probes: [stream, models]
    interval: 200ms
    slo: {{availability: 0.99}}
  - name: slow
    kind: openai
    base_url: "{sim.url("slow")}"
    model: sim-small
    probes: [stream]
    interval: 200ms
    timeout: 250ms
  - name: tls
    kind: http
    base_url: {tls_url}
    verify_tls: false
    interval: 200ms
defaults:
  alerts: {{burn: false, budget_below: null}}
storage: {{url: "sqlite:///{db}", flush_every: 100ms}}
scheduler: {{evaluate_every: 300ms, shutdown_grace: 1s}}
server: {{listen: "127.0.0.1:0"}}
"""


Labels = tuple[tuple[str, str], ...]


def scrape(text: str) -> tuple[dict[str, str], dict[tuple[str, Labels], float]]:
    """({family: type}, {(sample name, sorted labels): value}) of an exposition."""
    types, samples = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return types, samples


def probe_labels(target: str, probe: str) -> Labels:
    return tuple(sorted({"target": target, "probe": probe, "location": "local"}.items()))


async def test_the_blackbox_series_hold_what_the_probes_measured(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.set("slow", headers_delay_ms=2000)  # no response within the 250 ms timeout
    cert = make_cert(tmp_path, 30)
    seen: dict[Key, list[ProbeResult]] = defaultdict(list)
    with TlsServer(cert) as tls:
        cfg = parse(config_text(sim, tls.url, tmp_path / "m.db"))
        service = Service(None, cfg, on_result=lambda r: seen[(r.target, r.probe)].append(r))
        await service.start()
        try:
            jobs = [("fast", "stream"), ("fast", "models"), ("slow", "stream"), ("tls", "http")]
            await eventually(
                lambda: all(len(seen[j]) >= 2 for j in jobs) and "tls" in service.certs.expiry,
                within=15,
            )
            # Quiet, so the scrape and the results seen describe the same runs.
            service.scheduler.pause()
            await eventually(lambda: not service.inflight, within=5)
            await asyncio.sleep(0)
            async with httpx.AsyncClient(base_url=service.web.url, timeout=10) as client:
                text = (await client.get("/metrics")).text
        finally:
            await service.stop()

    types, samples = scrape(text)
    assert samples and not [name for name, _ in samples if name.endswith("_created")]
    for name, kind in {
        "checker_probe_duration_seconds": "histogram",
        "checker_probe_connect_seconds": "histogram",
        "checker_probe_ttfb_seconds": "histogram",
        "checker_probe_last_timestamp_seconds": "gauge",
        "checker_probe_http_status_code": "gauge",
        "checker_cert_expiry_timestamp_seconds": "gauge",
        "checker_slo_objective": "gauge",
        "checker_target_info": "gauge",  # an info metric, as text format 0.0.4 spells it
        "checker_writer_dropped": "counter",
    }.items():
        assert types[name] == kind, name

    for (target, probe), results in seen.items():
        labels = probe_labels(target, probe)
        # Every run is observed, failed ones included.
        assert samples[("checker_probe_duration_seconds_count", labels)] == len(results)
        last = results[-1]
        assert samples[("checker_probe_last_timestamp_seconds", labels)] == (
            last.started_at.timestamp()
        )
        assert samples[("checker_probe_http_status_code", labels)] == (last.status or 0)

    fast = probe_labels("fast", "stream")
    ok = seen[("fast", "stream")]
    assert all(r.ok and r.status == 200 for r in ok)
    assert samples[("checker_probe_http_status_code", fast)] == 200
    assert samples[("checker_probe_ttfb_seconds_sum", fast)] == pytest.approx(
        sum(r.ttfb_ms or 0 for r in ok) / 1e3
    )
    # A run's wall time holds its whole exchange.
    latency = sum(r.latency_ms or 0 for r in ok) / 1e3
    assert samples[("checker_probe_duration_seconds_sum", fast)] >= latency > 0
    connects = [r.connect_ms for r in ok if r.connect_ms is not None]
    assert connects, "the first run opens a connection"
    assert samples[("checker_probe_connect_seconds_count", fast)] == len(connects)

    # The timeouts: no response (status 0), yet each run's duration is there, the full wait.
    slow = probe_labels("slow", "stream")
    timeouts = seen[("slow", "stream")]
    assert {r.error for r in timeouts} == {ErrorKind.timeout}
    assert all(r.latency_ms is None and r.status is None for r in timeouts)
    assert samples[("checker_probe_http_status_code", slow)] == 0
    assert samples[("checker_probe_duration_seconds_sum", slow)] >= 0.25 * len(timeouts)
    assert ("checker_probe_ttfb_seconds_count", slow) not in samples  # successful runs only

    def per_target(name: str) -> dict[str, float]:
        return {dict(labels)["target"]: v for (n, labels), v in samples.items() if n == name}

    expiry = per_target("checker_cert_expiry_timestamp_seconds")
    assert expiry == {"tls": cert.stdlib_not_after().timestamp()}
    assert per_target("checker_slo_objective") == {"fast": 0.99, "slow": 0.995, "tls": 0.995}
    groups = {
        dict(labels)["target"]: dict(labels)["group"]
        for (n, labels) in samples
        if n == "checker_target_info"
    }
    assert groups == {"fast": "sim-small", "slow": "sim-small"}  # an http target has no model
    assert samples[("checker_writer_dropped_total", ())] == 0
