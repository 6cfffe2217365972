"""`checker compare` end to end over real sockets: the simulator serves a direct route, a
relay that adds 80 ms to the first token and a relay that reports 3x the output tokens it
streams; real probes, token counting and the store feed the comparison, the CLI and the
web endpoints."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy.engine import Engine

from checker.compare.build import compare_routes
from checker.config.load import parse
from checker.config.schema import Config
from checker.cost.tokens import count_output_tokens
from checker.digest import render as digest_render
from checker.digest.build import build_period
from checker.digest.period import last_hours
from checker.probes.base import ProbeResult
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from checker.store import migrate
from checker.store.db import make_engine
from checker.store.queries.status import status
from checker.web.metrics import Metrics
from checker.web.server import WebServer
from tests.fixtures_db import store_results
from tests.tools import run_cli

ROUNDS = 30
ANSWER = "one two three four five six seven eight nine ten eleven twelve"
ROUTES = {  # route -> (target name, simulator behaviour)
    "direct": ("direct", {"ttft_ms": 40}),
    "slow": ("relay-slow", {"ttft_ms": 120}),
    "greedy": ("relay-greedy", {"ttft_ms": 40, "reported_completion_tokens": 36}),
}


def write_config(tmp_path: Path, sim: SimServer, db_url: str) -> Path:
    targets = [
        {
            "name": name,
            "kind": "openai",
            "base_url": sim.url(route),
            "model": "gpt-4o-mini",
            "probes": ["stream", "models"],
            **({"reference": True} if route == "direct" else {}),
        }
        for route, (name, _) in ROUTES.items()
    ]
    path = tmp_path / "compare.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "targets": targets,
                "storage": {"url": db_url},
                "server": {"listen": "127.0.0.1:0"},
            }
        )
    )
    return path


async def probe_rounds(cfg: Config) -> list[tuple[ProbeResult, bool]]:
    """ROUNDS rounds; in each, every route's stream and models probes run side by side, so
    the machine's load falls on all routes alike."""
    items: list[tuple[ProbeResult, bool]] = []
    async with ClientPool(cfg) as pool:
        for _ in range(ROUNDS):
            calls = [
                run_probe(cfg, t, probe, pool, Redactor())
                for t in cfg.targets
                for probe in ("stream", "models")
            ]
            for result, target in zip(
                await asyncio.gather(*calls),
                [t for t in cfg.targets for _ in range(2)],
                strict=True,
            ):
                count_output_tokens(result, target)  # what the service does before storing
                items.append((result, False))
    return items


@pytest.fixture(scope="module")
def measured(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Config, Path, Engine, int]]:
    tmp_path = tmp_path_factory.mktemp("compare")
    sim = SimServer()
    sim.start_in_thread()
    try:
        for route, (_, behaviour) in ROUTES.items():
            sim.set(
                route,
                answer=ANSWER,
                completion_tokens=12,
                inter_token_ms=2,
                models=["gpt-4o-mini"],
                **behaviour,
            )
        db_url = f"sqlite:///{tmp_path / 'compare.db'}"
        migrate.upgrade(db_url)
        path = write_config(tmp_path, sim, db_url)
        cfg = parse(path.read_text())
        items = asyncio.run(probe_rounds(cfg))
        assert all(r.ok for r, _ in items), [r.detail for r, _ in items if not r.ok][:3]
        engine = make_engine(db_url)
        store_results(engine, items)
        yield cfg, path, engine, len(items)
        engine.dispose()
    finally:
        sim.stop_thread()


def test_compare_measures_added_ttft_usage_ratio_flags_and_rank(
    measured: tuple[Config, Path, Engine, int],
) -> None:
    cfg, _, engine, _ = measured
    view = compare_routes(engine, cfg, datetime.now(UTC), "1h", "stream")
    (group,) = view.groups
    assert group.model == "gpt-4o-mini" and group.reference == "direct"
    routes = {r.target: r for r in group.routes}
    direct, slow, greedy = routes["direct"], routes["relay-slow"], routes["relay-greedy"]
    assert [r.n for r in group.routes] == [ROUNDS] * 3

    # The relay that adds 80 ms: its interval holds 80 ms, lies above 0, and says so.
    assert slow.added_ttft_ms is not None and slow.added_ttft_ms["ci"] is not None
    lo, hi = slow.added_ttft_ms["ci"]
    assert 0 < lo <= slow.added_ttft_ms["p50"] <= hi
    assert 65 <= slow.added_ttft_ms["p50"] <= 100, slow.added_ttft_ms
    assert lo <= 80 + 15 and hi >= 80 - 15
    assert "slower" in slow.flags and "over_reports_usage" not in slow.flags
    assert direct.added_ttft_ms is None  # the reference itself

    # The relay that bills 3x: the ratio, the real price, the flag; its speed is not 3x.
    assert direct.usage_ratio == pytest.approx(1.0, abs=0.01)
    assert greedy.usage_ratio == pytest.approx(3.0, abs=0.01)
    assert greedy.flags[0] == "over_reports_usage"
    assert direct.usd_per_mtok_output is not None and greedy.usd_per_mtok_output is not None
    assert greedy.usd_per_mtok_output == pytest.approx(3 * direct.usd_per_mtok_output)
    assert direct.workload_usd_per_month is not None
    assert greedy.workload_usd_per_month is not None
    assert greedy.workload_usd_per_month > direct.workload_usd_per_month
    assert greedy.added_ttft_ms is not None and abs(greedy.added_ttft_ms["p50"]) < 15
    assert direct.tokens_per_s_p50 and greedy.tokens_per_s_p50
    assert 0.5 < greedy.tokens_per_s_p50 / direct.tokens_per_s_p50 < 2

    # All three are up throughout: their uptime intervals overlap, so availability ties;
    # then an unflagged route ranks above flagged ones, then TTFT decides.
    assert direct.uptime == 1.0 and direct.uptime_ci is not None and direct.uptime_ci[1] == 1.0
    assert [r.target for r in group.routes] == ["direct", "relay-greedy", "relay-slow"]
    assert [r.rank for r in group.routes] == [1, 2, 3]
    assert direct.flags == [] and "not enough probes: n=30" not in direct.notes


def test_status_splits_the_probes_of_a_route(measured: tuple[Config, Path, Engine, int]) -> None:
    cfg, _, engine, _ = measured
    names = [t.name for t in cfg.targets]
    rows = status(engine, names, datetime.now(UTC), main_window="1h", layout=cfg.probe_layout())
    for row in rows:
        stream, models = row.probes["stream"], row.probes["models"]
        assert stream.results == models.results == ROUNDS
        # The 1 ms models answers never pull the stream latency down: no mixed percentile.
        assert stream.latency_ms["p50"] is not None and models.latency_ms["p50"] is not None
        assert stream.latency_ms["p50"] > 30 > models.latency_ms["p50"]
        assert row.primary_probe == "stream" and row.latency_ms == stream.latency_ms


def test_cli_and_web_show_the_same_comparison(measured: tuple[Config, Path, Engine, int]) -> None:
    cfg, path, engine, _ = measured
    res = run_cli("compare", "-c", str(path), "--window", "1h", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["window"] == "1h" and doc["probe"] == "stream"
    (group,) = doc["groups"]
    route_keys = {
        "target", "rank", "n", "uptime", "uptime_ci", "ttft_ms", "latency_ms",
        "tokens_per_s_p50", "added_ttft_ms", "usage_ratio", "usd_per_mtok_output",
        "workload_usd_per_month", "errors", "flags",
    }  # fmt: skip
    assert all(route_keys <= set(r) for r in group["routes"])
    assert [r["target"] for r in group["routes"]] == ["direct", "relay-greedy", "relay-slow"]

    table = run_cli("compare", "-c", str(path), "--window", "1h")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, table.stdout
    assert "relay-greedy: flagged over_reports_usage" in table.stdout

    bad = run_cli("compare", "-c", str(path), "--window", "forever")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--window" in bad.stderr

    async def fetch() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        server = WebServer(lambda: cfg, engine, Metrics(), lambda: (True, "ok"))
        await server.start()
        try:
            async with httpx.AsyncClient(base_url=server.url) as client:
                return (
                    await client.get("/api/compare", params={"window": "1h"}),
                    await client.get("/compare", params={"window": "1h"}),
                    await client.get("/api/compare", params={"window": "<b>"}),
                )
        finally:
            await server.stop()

    api, page, rejected = asyncio.run(fetch())
    assert api.status_code == 200
    assert [r["target"] for r in api.json()["groups"][0]["routes"]] == [
        "direct",
        "relay-greedy",
        "relay-slow",
    ]
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "relay-greedy" in page.text and "over reports usage" in page.text
    assert rejected.status_code == 400 and "<b>" not in rejected.text


def test_digest_ranks_routes_as_compare_does_and_marks_over_billing(
    measured: tuple[Config, Path, Engine, int],
) -> None:
    cfg, _, engine, _ = measured
    now = datetime.now(UTC)
    period = last_hours(now, "UTC")
    ctx = build_period(engine, cfg, period, now=now)
    assert ctx.comparison is not None
    view = compare_routes(engine, cfg, period.until, period.window_key)
    assert ctx.comparison.to_json() == view.to_json()
    states = {t.name: t.state for t in ctx.targets}
    assert states == {"direct": "ok", "relay-slow": "ok", "relay-greedy": "over_billing"}
    text = digest_render.render_text(ctx)
    assert "== relay-greedy [OVER-BILLING] ==" in text
    assert "1. direct" in text and "3. relay-slow" in text
