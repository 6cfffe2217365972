"""The profile-shift rule (pure), and the digest section from a real SQLite database."""

from __future__ import annotations

import itertools
import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from checker.digest import build as digest
from checker.digest import render as digest_render
from checker.digest.period import local_day
from checker.digest.shift import (
    MIN_PROBES_FOR_SHIFT,
    ProfileShift,
    Quartiles,
    profile_shift,
    quartiles,
)
from checker.probes.base import ErrorKind, ProbeResult
from checker.render import fmt_ms
from checker.store.rollup import rollup_hours
from checker.store.sketch import Sketch
from tests.digest.test_digest import TARGETS, make_config
from tests.fixtures_db import store_results

N = MIN_PROBES_FOR_SHIFT
DAY_BEFORE = Quartiles(p25=400.0, p50=500.0, p75=600.0, count=N)


# --- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize("p50", [400.0, 450.0, 500.0, 600.0])
def test_a_median_inside_the_previous_iqr_is_no_shift(p50: float) -> None:
    current = Quartiles(p50 - 50, p50, p50 + 50, N)
    assert profile_shift("r", "stream", "ttft", DAY_BEFORE, current) is None


@pytest.mark.parametrize(("p50", "direction"), [(399.0, "down"), (601.0, "up"), (1500.0, "up")])
def test_a_median_outside_the_previous_iqr_is_a_shift(p50: float, direction: str) -> None:
    current = Quartiles(p50 - 50, p50, p50 + 50, N + 5)
    found = profile_shift("r", "stream", "ttft", DAY_BEFORE, current)
    assert found == ProfileShift("r", "stream", "ttft", DAY_BEFORE, p50, N + 5, direction)  # type: ignore[arg-type]
    assert found is not None and found.label == "TTFT"


@pytest.mark.parametrize(("before", "now"), [(N - 1, N), (N, N - 1), (0, 0), (N - 1, 10 * N)])
def test_too_few_probes_on_either_day_is_no_shift(before: int, now: int) -> None:
    previous = Quartiles(400.0, 500.0, 600.0, before)
    current = Quartiles(1400.0, 1500.0, 1600.0, now)
    assert profile_shift("r", "stream", "tokens_per_s", previous, current) is None


def test_a_missing_day_is_no_shift() -> None:
    current = Quartiles(1400.0, 1500.0, 1600.0, N)
    assert profile_shift("r", "stream", "ttft", None, current) is None
    assert profile_shift("r", "stream", "ttft", DAY_BEFORE, None) is None


def test_quartiles_of_a_sketch_carry_its_count() -> None:
    assert quartiles(Sketch()) is None
    q = quartiles(Sketch(float(v) for v in range(1, 101)))
    assert q is not None and q.count == 100
    assert q.p25 == pytest.approx(25, rel=0.02)
    assert q.p50 == pytest.approx(50, rel=0.02)
    assert q.p75 == pytest.approx(75, rel=0.02)


# --- from stored results to the rendered digest ----------------------------------------------

SECTION = "Possible change of model or hardware"
ROUTE = TARGETS[0]  # its primary probe is `stream`
TTFT_BEFORE = [400.0 + 10 * i for i in range(21)]  # 400..600 ms
TTFT_AFTER = [1400.0 + 10 * i for i in range(21)]  # another model, or a busier GPU
DECODE = [40.0 + i for i in range(21)]  # tokens/s: the same both days


def day_of_results(since: datetime, ttft: list[float]) -> list[tuple[ProbeResult, bool]]:
    """A day of `stream` results every 15 minutes (every 12th fails), and `models` results
    every 5 minutes whose TTFT is the day before's: mixing the two probes would pull the
    period's median back inside the day before's range."""
    items = []
    for i, (value, speed) in enumerate(zip(itertools.cycle(ttft), itertools.cycle(DECODE))):
        at = since + timedelta(minutes=15 * i)
        if at >= since + timedelta(days=1):
            break
        r = ProbeResult(target=ROUTE, probe="stream", started_at=at, ok=True)
        r.status, r.latency_ms, r.ttft_ms, r.tokens_per_s = 200, value * 2, value, speed
        if i % 12 == 5:
            r.fail(ErrorKind.server_error, "503 (generated)")
            r.status = 503
        items.append((r, False))
    for i in range(24 * 12):
        m = ProbeResult(
            target=ROUTE, probe="models", started_at=since + timedelta(minutes=5 * i), ok=True
        )
        m.status, m.latency_ms, m.ttft_ms = 200, 300.0, TTFT_BEFORE[i % len(TTFT_BEFORE)]
        items.append((m, False))
    return items


def good_stream(items: list[tuple[ProbeResult, bool]]) -> list[ProbeResult]:
    return [r for r, _ in items if r.probe == "stream" and r.ok]


def test_a_ttft_jump_is_reported_in_every_rendering(db_url: str, db_engine: Engine) -> None:
    cfg = make_config(db_url)
    period = local_day(date(2025, 6, 11), "Europe/Berlin")
    before = period.shifted(-1)
    items_before = day_of_results(before.since, TTFT_BEFORE)
    items_after = day_of_results(period.since, TTFT_AFTER)
    store_results(db_engine, items_before + items_after)
    # The day before from hourly and daily rollups, the period from raw rows.
    rollup_hours(db_engine, before.since, before.until)

    ctx = digest.build_period(db_engine, cfg, period, now=period.until)

    # By hand: quartiles of the good stream results only, each day on its own.
    then = quartiles(Sketch(r.ttft_ms for r in good_stream(items_before) if r.ttft_ms))
    now = quartiles(Sketch(r.ttft_ms for r in good_stream(items_after) if r.ttft_ms))
    assert then is not None and now is not None
    assert then.count == now.count == 88  # 96 a day, 8 failed
    assert ctx.shifts == [ProfileShift(ROUTE, "stream", "ttft", then, now.p50, 88, "up")]
    assert then.p75 < now.p50  # and decode speed, the same both days, did not shift

    html = digest_render.render_html(ctx)
    text = digest_render.render_text(ctx)
    chat = digest_render.render_chat(ctx)
    quartile_text = f"{fmt_ms(then.p25)} / {fmt_ms(then.p50)} / {fmt_ms(then.p75)}"
    for doc in (html, text, chat):
        assert SECTION in doc
        assert quartile_text in doc
        assert fmt_ms(now.p50) in doc
    assert f"median {fmt_ms(now.p50)} over 88 probes" in text
    assert f"{quartile_text} over 88 probes" in text
    # The HTML table row, read as text (the CSS is inlined into every cell).
    section = html[html.index(SECTION) : html.index("</table>", html.index(SECTION))]
    row = " ".join(re.sub(r"<[^>]+>", " ", section[section.rindex("<tr") :]).split())
    assert row == f"{ROUTE} TTFT (stream) {quartile_text} 88 {fmt_ms(now.p50)} \u25b2 88"
    assert f"- {ROUTE} TTFT (stream): median {fmt_ms(now.p50)} (88 probes)" in chat
    assert "<script" not in html.lower()


def test_no_section_without_a_shift(db_url: str, db_engine: Engine) -> None:
    cfg = make_config(db_url)
    period = local_day(date(2025, 6, 11), "Europe/Berlin")
    store_results(
        db_engine,
        day_of_results(period.shifted(-1).since, TTFT_BEFORE)
        + day_of_results(period.since, TTFT_BEFORE),
    )
    ctx = digest.build_period(db_engine, cfg, period, now=period.until)
    assert ctx.shifts == []
    for render in (digest_render.render_html, digest_render.render_text, digest_render.render_chat):
        assert SECTION not in render(ctx)
