"""The status page's sections over real HTTP, from results stored in a real database
(SQLite and PostgreSQL): health wording, and the rest of the page's sections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from checker.config.load import parse
from checker.probes.base import ErrorKind, ProbeResult
from tests.fixtures_db import store_results
from tests.web.test_server import insert_incident, serving

NOW = datetime(2026, 6, 3, 9, 30, tzinfo=UTC)
CONFIG = """
targets:
  - {name: burning, kind: http, base_url: "http://127.0.0.1:9/", interval: 10m}
  - {name: steady, kind: http, base_url: "http://127.0.0.1:9/", interval: 10m}
server: {listen: "127.0.0.1:0"}
"""


def http_result(target: str, at: datetime, ok: bool) -> ProbeResult:
    r = ProbeResult(target=target, probe="http", started_at=at, ok=True, latency_ms=40.0)
    return r if ok else r.fail(ErrorKind.server_error, "HTTP 503")


async def test_burning_budget_with_a_good_last_probe_reads_degraded(db_engine: Engine) -> None:
    cfg = parse(CONFIG)
    # 50 results over the last 8 h: burning fails 25 of them (the last one succeeded).
    at = [NOW - timedelta(minutes=10 * i) for i in range(50, 0, -1)]
    items = [(http_result("burning", t, ok=i % 2 == 1), False) for i, t in enumerate(at)]
    items += [(http_result("steady", t, ok=True), False) for t in at]
    store_results(db_engine, items)
    insert_incident(db_engine, "burning", severity="page", opened_at=NOW - 2 * timedelta(hours=1),
                    group="burn_page")  # fmt: skip
    async with serving(db_engine, cfg) as client:
        html = (await client.get("/")).text
    burning = html[html.index('id="target-burning"') : html.index('id="target-steady"')]
    assert '<span class="pill pill-degraded">Degraded</span>' in burning
    # 25 bad of 50 at 99.5 %: 0.25 budgets allowed, 25 spent = 100x the budget.
    assert "budget 100x overspent · 50 probes" in burning
    assert "overspent by" not in burning and "Down" not in burning
    assert "1 of 2 targets degraded" in html
