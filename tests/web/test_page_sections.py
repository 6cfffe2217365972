"""The status page's sections over real HTTP, from results stored in a real database
(SQLite and PostgreSQL): health wording, and the rest of the page's sections."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from checker.config.load import parse
from checker.cost.prices import project_month_end
from checker.probes.base import ErrorKind, ProbeResult
from checker.render import fmt_usd
from checker.web.page_sections import billing_flags
from checker.web.status_data import build_page
from tests.fixtures_db import store_results
from tests.web.test_server import NOW, insert_incident, serving  # NOW: the server's clock

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


SECTIONS = """
targets:
  - name: direct
    kind: openai
    base_url: http://127.0.0.1:9/v1
    model: sim-model
    probes: [stream]
    interval: 10m
    tags: [prod]
    reference: true
    pricing: {input_per_mtok: 1.0, output_per_mtok: 2.0}
  - name: relay
    kind: openai
    base_url: http://127.0.0.1:9/v1
    model: sim-model
    probes: [stream]
    interval: 10m
    tags: [lab, prod]
    pricing: {input_per_mtok: 1.0, output_per_mtok: 2.0}
    spend_cap_usd_per_day: 0.01
  - {name: docs, kind: http, base_url: "http://127.0.0.1:9/", interval: 10m}
  - {name: canary, kind: http, base_url: "http://127.0.0.1:9/", interval: 10m, tags: [prod]}
server: {listen: "127.0.0.1:0", title: "LLM routes <b>&</b> co"}
"""


def stream_result(target: str, at: datetime, ttft: float, cost: float) -> ProbeResult:
    r = ProbeResult(target=target, probe="stream", started_at=at, ok=True, latency_ms=2 * ttft)
    r.ttft_ms, r.cost_usd, r.prompt_tokens, r.completion_tokens = ttft, cost, 20, 10
    return r


async def test_title_groups_history_spend_and_comparison(db_engine: Engine) -> None:
    cfg = parse(SECTIONS)
    # 12 streams each over the last 2 h, the same TTFTs in another order (no difference to
    # tell); and one of the relay's from yesterday (this month, not today).
    at = [NOW - timedelta(minutes=10 * i) for i in range(12, 0, -1)]
    items = [(stream_result("direct", t, 300.0 + i, 0.001), False) for i, t in enumerate(at)]
    items += [
        (stream_result("relay", t, 300.0 + (5 * i) % 12, 0.002), False) for i, t in enumerate(at)
    ]
    items += [(stream_result("relay", NOW - timedelta(hours=26), 300.0, 0.5), False)]
    store_results(db_engine, items)
    resolved = NOW - timedelta(hours=5)
    insert_incident(
        db_engine,
        "relay",
        severity="ticket",
        opened_at=resolved - timedelta(hours=1),
        resolved_at=resolved,
        group="latency",
        detail="p95 TTFT <i>high</i>",
    )
    insert_incident(db_engine, "relay", severity="ticket", opened_at=NOW - timedelta(minutes=30),
                    group="billing")  # fmt: skip
    async with serving(db_engine, cfg) as client:
        html = (await client.get("/")).text
    # The title, as text.
    assert "<h1>LLM routes &lt;b&gt;&amp;&lt;/b&gt; co</h1>" in html
    assert "· LLM routes &lt;b&gt;&amp;&lt;/b&gt; co</title>" in html
    # Groups by first tag, in config order, untagged last.
    heads = [html.index(f'id="group-{g}"') for g in ("prod", "lab", "untagged")]
    assert heads == sorted(heads)
    cards = {n: html.index(f'id="target-{n}"') for n in ("direct", "relay", "docs", "canary")}
    assert heads[0] < cards["direct"] < cards["canary"] < heads[1] < cards["relay"] < heads[2]
    assert heads[2] < cards["docs"]
    # The incident history: start, end, duration; the open one lasts "so far".
    history = html[html.index('id="incidents"') :]
    assert (
        'started">2026-06-03 03:23 UTC</td>\n      <td data-label="ended">2026-06-03 04:23 UTC'
        '</td>\n      <td data-label="lasted">1h00m</td>' in history
    )
    print(history[:3000])
    assert '<strong>open</strong></td>\n      <td data-label="lasted">30m so far</td>' in history
    assert "p95 TTFT &lt;i&gt;high&lt;/i&gt;" in history
    # Spend: today's sums and the month-end projection; the relay's cap and ticket flagged.
    spend = html[html.index('id="spend"') : html.index('id="incidents"')]
    assert (
        '">direct</td>\n      <td data-label="today">$0.0120<span class="ci"> · 12 priced</span>'
        in spend
    )
    relay = spend[spend.index('">relay</td>') :]
    month_end = fmt_usd(project_month_end(12 * 0.002 + 0.5, NOW, "UTC"))
    assert f'to date">$0.524</td>\n      <td data-label="projected">{month_end}</td>' in relay
    assert "spend cap reached ($0.01/day): free probes only" in spend
    assert "billing ticket open" in spend
    assert ">docs</td>" not in spend  # an http check costs nothing
    # The comparison: its intervals and what cannot be told apart yet.
    compare = html[html.index('id="compare"') : html.index('id="spend"')]
    assert "sim-model" in compare and "[95% CI]" in compare
    assert "relay: not enough probes: n=12" in compare
    assert "TTFT cannot be told apart from the reference yet (n=12 vs 12)" in compare


def test_without_tags_one_group_and_no_heading(db_engine: Engine) -> None:
    cfg = parse(CONFIG)
    page = build_page(db_engine, cfg, NOW)
    assert [(g.tag, [t.name for t in g.members]) for g in page.groups] == [
        (None, ["burning", "steady"])
    ]
    assert page.title == "checker" and page.history == [] and page.compare is not None
    assert page.spend is not None and page.spend.lines == []  # http checks cost nothing


def test_billing_flags_in_words() -> None:
    @dataclass(frozen=True)
    class Incident:
        target: str
        rule_group: str
        severity: str = "ticket"

    opened = [Incident("a", "probe_cost"), Incident("b", "billing"), Incident("a", "down")]
    flags = billing_flags("a", ["over_reports_usage", "slower"], opened, 0.5, 0.5)
    assert flags == [
        "bills more tokens than it streams",
        "spend cap reached ($0.5/day): free probes only",
        "probe cost ticket open",
    ]
    assert billing_flags("a", [], [], None, 0.5) == []


async def test_a_line_per_location_when_results_come_from_several(db_engine: Engine) -> None:
    cfg = parse(CONFIG)
    at = [NOW - timedelta(minutes=10 * i) for i in range(5, 0, -1)]
    items = []
    for i, t in enumerate(at):
        east = http_result("burning", t, ok=True)
        west = http_result("burning", t + timedelta(seconds=5), ok=i < 3)
        east.location, west.location = "east", "west"
        items += [(east, False), (west, False)]
        steady = http_result("steady", t, ok=True)
        steady.location = "east"  # one location: no lines
        items.append((steady, False))
    store_results(db_engine, items)
    async with serving(db_engine, cfg) as client:
        html = (await client.get("/")).text
    burning = html[html.index('id="target-burning"') : html.index('id="target-steady"')]
    assert '<li class="loc-ok">east: 100.0% of 5</li>' in burning
    assert '<li class="loc-failing">west: 60.0% of 5, failing now (server_error)</li>' in burning
    assert 'class="locations"' not in html[html.index('id="target-steady"') :]
    # The heartbeat row holds both locations' results, each tooltip naming its location.
    assert 'title="2026-06-03 09:13:46 UTC from west · failed: server_error"' in burning
