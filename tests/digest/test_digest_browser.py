"""The HTML digest in headless Chromium: its charts are drawn, not just present in the markup.

The digest is built from stored results (SQLite) and rendered as mailed (CSS inlined), then
opened from a file: every route shows one uptime bar per hour with a visible height, a TTFT
band with its p50 mark, and the ranking per model a price bar; empty hours take no bar,
each chart states its probe count, and the page loads with no console or network problem.
The harness is the status page's (tests/web/test_status_page_browser.py).
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from checker.config.load import parse
from checker.digest import build as digest
from checker.digest.render import render_html
from checker.store.db import make_engine
from tests.fixtures_db import generate_results, store_results
from tests.web.test_status_page_browser import chromium, full_page_png, set_viewport

NOW = datetime(2026, 5, 12, 8, 0, 30, tzinfo=UTC)
ROUTES = ("direct", "relay")
CONFIG = """
targets:
  - {name: direct, kind: openai, base_url: "https://api.openai.com/v1", model: gpt-4o-mini,
     probes: [models, stream], reference: true}
  - {name: relay, kind: openai, base_url: "https://relay.example.com/v1", model: gpt-4o-mini,
     probes: [models, stream], pricing: {markup: 25%}}
digest: {timezone: UTC}
storage: {url: "URL"}
"""

# Per visible chart: cells, cells with a drawn bar, the drawn bars' heights, the caption.
MEASURE = """
[...document.querySelectorAll('table.chart')].map(t => {
  const cells = [...t.rows[0].cells];
  const drawn = cells.filter(c => c.querySelector('div'));
  return {
    cells: cells.length,
    drawn: drawn.length,
    heights: drawn.map(c => Math.max(...[...c.querySelectorAll('div')]
      .filter(d => getComputedStyle(d).backgroundColor !== 'rgba(0, 0, 0, 0)')
      .map(d => d.getBoundingClientRect().height))),
    caption: t.nextElementSibling.textContent,
  };
})
"""
PRICE_BARS = """
[...document.querySelectorAll('table.ranking div')].map(d => d.getBoundingClientRect().width)
"""


async def test_the_digest_charts_render_in_chromium(sqlite_url: str, tmp_path: Path) -> None:
    cfg = parse(CONFIG.replace("URL", sqlite_url))
    engine = make_engine(sqlite_url)
    try:
        # Results up to 6 hours before the end: those last hours stay blank.
        items = generate_results(
            list(ROUTES), NOW - timedelta(hours=26), NOW - timedelta(hours=6), step_s=600
        )
        await asyncio.to_thread(store_results, engine, items)
        ctx = await asyncio.to_thread(
            digest.build, engine, cfg, NOW - timedelta(hours=24), NOW, now=NOW
        )
    finally:
        engine.dispose()
    page = tmp_path / "digest.html"
    page.write_text(render_html(ctx), "utf-8")

    async with chromium(tmp_path) as tools:
        await set_viewport(tools, 700, 1200, mobile=False)
        await tools.load(page.as_uri())
        charts = await tools.evaluate(MEASURE)
        prices = await tools.evaluate(PRICE_BARS)
        png = await full_page_png(tools, 700)
        # A phone: nothing wider than the screen (25 hour columns, the price bars).
        await set_viewport(tools, 390, 844, mobile=True)
        await tools.load(page.as_uri())
        overflow = await tools.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        problems = tools.problems()
    target = Path(os.environ.get("CHECKER_SCREENSHOT") or tmp_path / "digest.png")
    await asyncio.to_thread(target.write_bytes, png)

    assert len(charts) == 2 * len(ROUTES)  # uptime bars, then the TTFT band, per route
    for t, uptime, band in zip(ctx.targets, charts[::2], charts[1::2], strict=True):
        hours = len(t.uptime_chart.bars)
        assert uptime["cells"] == band["cells"] == hours == 25
        # A bar for every hour with results; the last six hours (no result) are blank.
        assert uptime["drawn"] == sum(b.valid > 0 for b in t.uptime_chart.bars) >= 18
        assert band["drawn"] == sum(not h.blank for h in t.ttft_chart.hours) >= 18
        assert [b.label for b in t.uptime_chart.bars[-6:] if b.valid or b.px] == []
        assert all(h >= 3 for h in uptime["heights"]), uptime
        assert all(h >= 2 for h in band["heights"]), band  # at least the p50 mark
        assert f"{t.uptime_chart.probes} probes" in uptime["caption"]
        assert f"{t.ttft_chart.probes} probes" in band["caption"] and t.ttft_chart.probes > 90
    [ranking] = ctx.rankings
    assert [b.target for b in ranking.bars] and len(prices) == len(ROUTES)
    drawn = [round(w / max(prices) * 100) for w in prices]  # as wide as the chart says
    assert all(
        abs(pct - d) <= 1 for pct, d in zip([b.pct for b in ranking.bars], drawn, strict=True)
    )
    assert min(prices) > 0 and 100 in [b.pct for b in ranking.bars]
    assert overflow == 0
    assert problems == []
