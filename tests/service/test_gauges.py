"""The SLO gauges: per-probe uptime series next to the target's SLO uptime, from the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from checker.config.load import parse
from checker.service.gauges import update_slo_gauges
from checker.store import migrate
from checker.store.db import make_engine
from checker.web.metrics import Metrics
from tests.fixtures_db import generate_results, store_results


def samples(metrics: Metrics, name: str) -> dict[tuple[str, ...], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_uptime_per_probe_and_per_target(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    # One location: a round is each result (several would count fleet rounds, as the SLO).
    items = generate_results(
        ["alpha"], now - timedelta(hours=2), now, step_s=60, locations=("local",)
    )
    store_results(engine, items)
    cfg = parse(
        "targets:\n  - {name: alpha, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
        f"storage: {{url: '{url}'}}\n"
    )
    metrics = Metrics()
    await update_slo_gauges(engine, metrics, cfg, {}, now)
    engine.dispose()

    def brute(probe: str | None) -> float:
        rows = [
            r
            for r, m in items
            if not m
            and (probe is None or r.probe == probe)
            and r.started_at >= now - timedelta(hours=1)
        ]
        return sum(r.ok for r in rows) / len(rows)

    per_probe = samples(metrics, "checker_probe_uptime_ratio")
    for probe in ("stream", "models"):
        key = (("probe", probe), ("target", "alpha"), ("window", "1h"))
        assert per_probe[key] == brute(probe)
    target = samples(metrics, "checker_uptime_ratio")
    assert target[(("target", "alpha"), ("window", "1h"))] == brute(None)
    assert brute("stream") != brute("models")  # the split shows something
