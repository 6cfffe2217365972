"""A fleet of real `checker run` processes on one PostgreSQL, each at its own location.

Each node reaches the simulator on a route of its own, so a route can fail "from one
location" as a relay does for one region. Pages go to one webhook path, tickets to another.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from checker.sim.server import SimServer
from checker.store.db import make_engine
from tests.fixtures_notify import Webhook
from tests.service.test_service import ServiceProcess
from tests.waiting import becomes_true


def node_config(sim: SimServer, pg_url: str, webhook: Webhook, location: str) -> str:
    return f"""
targets:
  - name: route
    kind: openai
    base_url: {sim.url(location)}
    probes: [models]
    interval: 300ms
    timeout: 2s
defaults:
  alerts: {{down: {{failures: 3, recoveries: 2}}, burn: false, budget_below: null}}
notify:
  - {{url: "{webhook.url("page")}", tags: [page]}}
  - {{url: "{webhook.url("ticket")}", tags: [ticket]}}
storage: {{url: "{pg_url}", flush_every: 100ms}}
scheduler: {{evaluate_every: 300ms, shutdown_grace: 2s}}
"""


def titles(webhook: Webhook, path: str) -> list[str]:
    return [p.payload.get("title", "") for p in webhook.received() if p.path == f"/{path}"]


def nodes(config: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [sys.executable, "-m", "checker.cli", "nodes", "-c", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


@pytest.fixture
def fleet(
    sim: SimServer, pg_url: str, webhook: Webhook, tmp_path: Path
) -> Iterator[dict[str, ServiceProcess]]:
    with ExitStack() as stack:
        running: dict[str, ServiceProcess] = {}
        for location in ("east", "west", "north"):
            config = tmp_path / f"{location}.yaml"
            config.write_text(node_config(sim, pg_url, webhook, location))
            node = ServiceProcess(
                config, tmp_path / f"{location}.log", args=("--location", location)
            )
            stack.callback(node.close)
            running[location] = node
        for node in running.values():
            node.wait_for_log("service started")
        # Every node has seen the others (a tick is 5 s): the leader reads deep enough.
        assert becomes_true(lambda: len(nodes(tmp_path / "east.yaml")) == 3, 20)
        yield running


def test_one_location_down_is_shown_two_down_page_once(
    fleet: dict[str, ServiceProcess], sim: SimServer, webhook: Webhook, pg_url: str
) -> None:
    sim.set("east", status=503)
    assert becomes_true(lambda: len(titles(webhook, "ticket")) >= 1, 20)
    [ticket] = titles(webhook, "ticket")
    assert "location_down" in ticket
    message = next(p for p in webhook.received() if p.path == "/ticket").payload["message"]
    assert "failing from east only" in message
    time.sleep(1.5)  # five more rounds of east failing alone
    assert titles(webhook, "page") == []  # one location's trouble pages nobody

    sim.set("west", status=503)
    assert becomes_true(lambda: len(titles(webhook, "page")) >= 1, 20)
    time.sleep(1)
    [page] = titles(webhook, "page")  # exactly one, though three nodes judged
    assert "route" in page and "RESOLVED" not in page

    sim.set("east")
    sim.set("west")
    assert becomes_true(lambda: len(titles(webhook, "page")) >= 2, 20)
    time.sleep(1)
    assert len(titles(webhook, "page")) == 2 and titles(webhook, "page")[1].startswith("[RESOLVED]")
    for node in fleet.values():
        assert node.running()


def test_killing_the_leader_mid_incident_loses_no_resolve_and_no_result(
    fleet: dict[str, ServiceProcess], sim: SimServer, webhook: Webhook, pg_url: str, tmp_path: Path
) -> None:
    for location in ("east", "west", "north"):
        sim.set(location, status=503)
    assert becomes_true(lambda: len(titles(webhook, "page")) >= 1, 20)
    [leader] = [n for n in nodes(tmp_path / "east.yaml") if n["leader"]]
    victim = fleet[str(leader["location"])]
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    for location in ("east", "west", "north"):
        sim.set(location)
    killed_at = time.monotonic()
    # A survivor takes the lead (its next tick) and resolves the incident, once.
    assert becomes_true(lambda: len(titles(webhook, "page")) >= 2, 30)
    assert time.monotonic() - killed_at < 30
    time.sleep(1)
    pages = titles(webhook, "page")
    assert len(pages) == 2 and pages[1].startswith("[RESOLVED]"), pages

    # One leader, a survivor (the killed one looks live for up to three heartbeats; the
    # leader is the live node that claimed the lead last).
    # The new leader says so at its next heartbeat (within a tick, 5 s).
    def leading() -> list[object]:
        return [n["location"] for n in nodes(tmp_path / "east.yaml") if n["leader"]]

    assert becomes_true(lambda: len(leading()) == 1 and leading() != [leader["location"]], 10)
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            by_location = dict(
                conn.execute(
                    sa.text("SELECT location, count(*) FROM probe_results GROUP BY location")
                ).all()
            )
            total, distinct = conn.execute(
                sa.text("SELECT count(*), count(DISTINCT result_uid) FROM probe_results")
            ).one()
    finally:
        engine.dispose()
    assert set(by_location) == {"east", "west", "north"}
    assert total == distinct  # nothing stored twice
