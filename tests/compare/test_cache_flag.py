"""`no_cache_hits`: a route that runs the cache probe and never reports a cached token in
its last runs is flagged in the comparison (and so in the digest's "Same model" section),
against a route whose cache works. Real probes against the simulator's prompt cache."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from checker.compare.build import compare_routes
from checker.compare.view import CACHE_RUNS
from checker.config.load import parse
from checker.probes.base import ProbeResult
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from checker.store import migrate
from checker.store.db import make_engine
from tests.fixtures_db import store_results


async def test_a_route_whose_cache_never_hits_is_flagged(sim: SimServer, tmp_path: Path) -> None:
    sim.set("cached", cache="prefix")
    sim.set("uncached", cache="never")
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate.upgrade(url)
    cfg = parse(
        yaml.safe_dump(
            {
                "targets": [
                    {"name": name, "kind": "openai", "base_url": sim.url(name),
                     "model": "gpt-4o-mini", "probes": ["stream", "cache"],
                     **({"reference": True} if name == "cached" else {})}
                    for name in ("cached", "uncached")
                ],
                "storage": {"url": url},
            }
        )
    )  # fmt: skip
    items: list[tuple[ProbeResult, bool]] = []
    async with ClientPool(cfg) as pool:
        for _ in range(CACHE_RUNS):
            for t in cfg.targets:
                for probe in ("stream", "cache"):
                    items.append((await run_probe(cfg, t, probe, pool, Redactor()), False))
    assert all(r.ok for r, _ in items), [r.detail for r, _ in items if not r.ok]
    engine = make_engine(url)
    try:
        store_results(engine, items)
        view = compare_routes(engine, cfg, datetime.now(UTC))
    finally:
        engine.dispose()
    [group] = view.groups
    routes = {r.target: r for r in group.routes}
    assert "no_cache_hits" in routes["uncached"].flags
    assert f"no cached tokens in its last {CACHE_RUNS} cache probes" in routes["uncached"].notes
    assert "no_cache_hits" not in routes["cached"].flags
    assert "no_cache_hits" in view.to_json()["groups"][0]["routes"][1]["flags"]
