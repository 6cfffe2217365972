"""A fleet of nodes on one database: heartbeats and `checker nodes`, one leader, Retry-After
holds that every node (and a restarted one) respects, and SQLite refusing a second node.

Real `checker run` processes where the process boundary is the point (a second node, a
kill), the Service in this process where its counters are the evidence.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from checker.config import load as config_mod
from checker.service.wiring import Service
from checker.sim.server import SimServer
from checker.store.db import make_engine
from checker.store.fleet import active_holds, list_nodes
from checker.store.queries.status import status as query_status
from tests.service.test_service import config_yaml, running_service, sqlite_url, target_yaml
from tests.waiting import abecomes_true, becomes_true


def requests(sim: SimServer, route: str) -> int:
    return sim.stats(route)["requests"].get("models", 0)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "checker.cli", *args], capture_output=True, text=True, timeout=60
    )


def limited_config(sim: SimServer, url: str) -> str:
    return config_yaml(url, [target_yaml("limited", sim.url("limited"), probes=("models",))])


def test_a_second_node_on_one_sqlite_file_refuses_and_the_first_runs_on(
    sim: SimServer, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "checker.db")
    config = tmp_path / "checker.yaml"
    config.write_text(config_yaml(url, [target_yaml("ok-route", sim.url("ok"))]))
    with running_service(config, tmp_path / "first.log") as first:
        second = cli("run", "-c", str(config), "--location", "west")
        assert second.returncode == 2, second.stdout + second.stderr
        [line] = second.stderr.strip().splitlines()
        assert "in use by another checker node" in line and "location local" in line
        assert "PostgreSQL" in line and "Traceback" not in second.stderr
        before = sim.stats("ok")["requests"].get("models", 0)
        assert becomes_true(lambda: requests(sim, "ok") > before + 2, 10)
        assert first.running()
    # The lock went with the first process: a node started now runs.
    with running_service(config, tmp_path / "third.log") as third:
        assert third.running()


async def test_a_retry_after_hold_outlives_a_restart_and_shows_in_status(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.set("limited", status=429, retry_after="300")
    url = sqlite_url(tmp_path / "checker.db")
    cfg = config_mod.parse(limited_config(sim, url))
    first = Service(None, cfg)
    await first.start()
    try:
        # Shared at the node's next tick (every 5 s; the first at start).
        assert await abecomes_true(lambda: "limited" in active_holds(first.engine, _now()), 12)
    finally:
        await first.stop()
    seen = requests(sim, "limited")
    assert seen >= 1
    second = Service(None, cfg)  # a restart: nothing in memory any more
    await second.start()
    try:
        assert await abecomes_true(lambda: second.skipped["retry_after"] >= 5, 10)
        assert requests(sim, "limited") == seen  # the route was left alone
        [row] = query_status(second.engine, ["limited"], _now())
        doc = row.to_json()
        assert doc["held_until"] is not None
    finally:
        await second.stop()
    shown = cli("status", "-c", str(_write(tmp_path, cfg_text=limited_config(sim, url))))
    assert shown.returncode == 0, shown.stderr
    assert "held until" in shown.stdout and "(429)" in shown.stdout


def _now() -> datetime:
    return datetime.now(UTC)


def _write(tmp_path: Path, cfg_text: str) -> Path:
    path = tmp_path / "status.yaml"
    path.write_text(cfg_text)
    return path


async def test_nodes_lists_every_node_with_one_leader(
    sim: SimServer, pg_url: str, tmp_path: Path
) -> None:
    text = config_yaml(pg_url, [target_yaml("ok-route", sim.url("ok"), probes=("models",))])
    east = Service(None, config_mod.parse(text), location="east")
    west = Service(None, config_mod.parse(text), location="west")
    await east.start()
    await west.start()
    try:
        assert await abecomes_true(lambda: len(list_nodes(east.engine)) == 2, 12)
        config = _write(tmp_path, text)
        listed = cli("nodes", "-c", str(config), "--json")
        assert listed.returncode == 0, listed.stderr
        nodes = json.loads(listed.stdout)
        assert sorted(n["location"] for n in nodes) == ["east", "west"]
        assert [n["leader"] for n in nodes].count(True) == 1
        assert set(nodes[0]) >= {"node", "location", "version", "started_at", "last_seen"}
        leader, other = (east, west) if east.leadership.leading else (west, east)
        gauge = leader.metrics.registry.get_sample_value("checker_node_leader")
        assert gauge == 1 and other.metrics.registry.get_sample_value("checker_node_leader") == 0
        # Each node's results carry its location.
        assert await abecomes_true(lambda: east.writer.written > 0 and west.writer.written > 0, 10)
        with east.engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT DISTINCT location FROM probe_results")).all()
        assert sorted(r.location for r in stored) == ["east", "west"]
        # The leader stops: the other takes over within a tick or two (5 s each).
        await leader.stop()
        assert await abecomes_true(lambda: other.leadership.leading, 15)
        table = cli("nodes", "-c", str(config))
        assert "stopped" in table.stdout and "up" in table.stdout
    finally:
        for node in (east, west):
            await node.stop()


async def test_a_hold_one_node_saw_holds_the_route_for_another(sim: SimServer, pg_url: str) -> None:
    sim.set("limited", status=429, retry_after="300")
    text = limited_config(sim, pg_url)
    east = Service(None, config_mod.parse(text), location="east")
    await east.start()
    try:
        assert await abecomes_true(lambda: "limited" in active_holds(east.engine, _now()), 12)
        [hold] = active_holds(east.engine, _now()).values()
        assert hold.set_by == "east" and hold.hold_s == 300
        seen = requests(sim, "limited")
        west = Service(None, config_mod.parse(text), location="west")
        await west.start()
        try:
            assert await abecomes_true(lambda: west.skipped["retry_after"] >= 5, 10)
            await asyncio.sleep(0.5)
            assert requests(sim, "limited") == seen  # neither node probed it again
        finally:
            await west.stop()
    finally:
        await east.stop()
    engine = make_engine(pg_url)
    try:
        assert {n.location for n in list_nodes(engine)} == {"east", "west"}
    finally:
        engine.dispose()


async def test_status_by_location_and_metrics_keep_locations_apart(
    sim: SimServer, pg_url: str, tmp_path: Path
) -> None:
    sim.set("west", status=503)  # the route fails from west only

    def text(location: str) -> str:
        return config_yaml(pg_url, [target_yaml("route", sim.url(location), probes=("models",))])

    served = text("east") + "server: {listen: '127.0.0.1:0'}\n"
    east = Service(None, config_mod.parse(served), location="east")
    west = Service(None, config_mod.parse(text("west")), location="west")
    await east.start()
    await west.start()
    try:
        assert await abecomes_true(
            lambda: east.writer.written >= 5 and west.writer.written >= 5, 15
        )
        async with httpx.AsyncClient(base_url=east.web.url, timeout=10) as client:
            page = (await client.get("/")).text
        # The status page has a line per location: where the route fails, and how.
        assert re.search(r"east: 100\.0% of \d+</li>", page), page
        assert re.search(r"west: 0\.0% of \d+, failing now \(server_error\)</li>", page)
        labels = {"target": "route", "probe": "models", "location": "east"}
        assert east.metrics.registry.get_sample_value("checker_probe_up", labels) == 1
        west_labels = {**labels, "location": "west"}
        assert west.metrics.registry.get_sample_value("checker_probe_up", west_labels) == 0
    finally:
        await east.stop()
        await west.stop()
    config = _write(tmp_path, text("east"))
    shown = cli("status", "-c", str(config), "--by-location", "--json")
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [r["location"] for r in rows] == [None, "east", "west"]
    whole, at_east, at_west = rows
    assert at_east["uptime"]["1h"] == 1.0 and at_west["uptime"]["1h"] == 0.0
    assert whole["results"] == at_east["results"] + at_west["results"]
    assert 0.0 < whole["uptime"]["1h"] < 1.0
    assert at_west["errors"] == {"server_error": at_west["results"]}
    table = cli("status", "-c", str(config), "--by-location")
    assert "@east" in table.stdout and "@west" in table.stdout


async def test_a_target_limited_to_other_locations_is_not_probed_here(
    sim: SimServer, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "checker.db")
    text = config_yaml(
        url,
        [
            target_yaml("everywhere", sim.url("everywhere"), probes=("models",)),
            target_yaml("west-only", sim.url("west-only"), probes=("models",),
                        extra="locations: [west]"),
        ],
    )  # fmt: skip
    east = Service(None, config_mod.parse(text), location="east")
    await east.start()
    try:
        assert await abecomes_true(lambda: requests(sim, "everywhere") >= 5, 10)
        assert requests(sim, "west-only") == 0
        assert [j.id for j in east.scheduler.get_jobs() if "west-only" in j.id] == []
    finally:
        await east.stop()
