"""The digest read from rollups says what it says from raw rows (SQLite and PostgreSQL).

Since migration 0005 the hourly rollups carry what the digest once read from raw rows only:
token-honesty usages and the newest error detail per kind. The same generated data is
digested four ways (raw rows only; after rollups; after a downgrade and upgrade across
0005, which leaves every rolled-up hour with NULL in the new columns; with half of those
hours rolled up again) and each time checked against a brute-force computation from the
generated results themselves.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.config.load import parse
from checker.config.schema import Config
from checker.cost.counting import estimate_tokens_from_chars
from checker.cost.prices import PriceBook
from checker.digest import build as digest
from checker.digest.honesty import usage_out_of_band
from checker.digest.inputs import Usage
from checker.digest.models import DigestContext, TargetDigest
from checker.digest.period import Period, last_hours
from checker.probes.base import ErrorKind, ProbeResult
from checker.store import migrate
from checker.store.plan import HOUR, floor_hour, hours_between
from checker.store.rollup import rollup_hours
from checker.store.sketch import Sketch
from checker.store.tables import ROLLED_DAYS, ROLLUPS
from tests.fixtures_db import generate_results, store_results

TARGETS = ("alpha-route", "beta-route", "gamma-route")
# A half-hour zone and a moment off the hour: partial hours at both ends of the period.
PERIOD = last_hours(datetime(2026, 5, 12, 9, 20, 41, tzinfo=UTC), "Asia/Kolkata")
Items = list[tuple[ProbeResult, bool]]


def make_config(db_url: str) -> Config:
    targets = "".join(
        f"""
  - name: {name}
    kind: openai
    base_url: https://{name}.example.com/v1
    model: gpt-4o-mini
"""
        for name in TARGETS
    )
    return parse(
        f"""
targets:{targets}
    slo: {{availability: 99%, count_rate_limited: false}}
digest: {{timezone: {PERIOD.timezone}}}
storage: {{url: "{db_url}"}}
"""
    )


def make_items(start: datetime, end: datetime) -> Items:
    """Results whose error details and token usages differ, so "the newest" and "how many
    of each" are really tested: a mix of honest and padded usage, with and without counted
    tokens and reasoning, and failures with their own text (some with none at all)."""
    items = generate_results(list(TARGETS), start, end, step_s=240.0)
    for i, (r, _) in enumerate(items):
        if r.error is not None:
            r.detail = None if i % 11 == 0 else f"{r.error.value} number {i}"
        if r.probe == "stream" and r.completion_tokens is not None:
            r.output_chars = 20 + i % 3
            r.counted_tokens = None if i % 4 == 0 else 19 + i % 3
            r.completion_tokens = 60 if i % 9 == 0 else 19 + i % 3
            r.reasoning_tokens = 5 if i % 13 == 0 else (None if i % 2 else 0)
    return items


# --- brute force, from the generated results --------------------------------------------------


def in_period(items: Items, target: str, period: Period) -> Items:
    return [
        (r, m)
        for r, m in items
        if r.target == target and period.since <= r.started_at < period.until
    ]


def brute_tokens(items: Items, band: tuple[float, float]) -> tuple[int, int, float | None]:
    checked = mismatched = 0
    ratios = []
    for r, _ in items:
        if not r.ok or r.completion_tokens is None or r.output_chars is None:
            continue
        reasoning = r.reasoning_tokens or 0
        usage = Usage(r.completion_tokens, reasoning, r.output_chars, r.counted_tokens)
        verdict = usage_out_of_band(usage, band)
        if verdict is None:
            continue
        checked += 1
        mismatched += verdict
        estimate = usage.counted_tokens or estimate_tokens_from_chars(usage.output_chars)
        ratios.append(usage.completion_tokens / estimate)
    return checked, mismatched, statistics.median(ratios) if ratios else None


def brute_details(items: Items) -> dict[str, str]:
    newest: dict[str, str | None] = {}
    for r, _ in sorted(items, key=lambda pair: pair[0].started_at):
        if r.error is not None:
            newest[r.error.value] = r.detail
    return {kind: text for kind, text in newest.items() if text}


def brute_bars(items: Items, period: Period, count_rl: bool) -> list[tuple]:
    """(hour, valid, good) over every probe, and (hour, count, TTFT p50, p95) of the
    stream probe alone, from the generated results."""
    bars, band = [], []
    for hour in hours_between(period.since, period.until):
        valid = good = streamed = 0
        ttfts = []
        for r, maintenance in items:
            if floor_hour(r.started_at) != hour or maintenance:
                continue
            if r.probe == "stream" and r.ok:
                streamed += 1
                if r.ttft_ms is not None:
                    ttfts.append(r.ttft_ms)
            if r.error is ErrorKind.rate_limited and not count_rl:
                continue
            valid += 1
            good += r.ok
        bars.append((hour, valid, good))
        sketch = Sketch(ttfts)
        band.append((hour, streamed, sketch.quantile(0.5), sketch.quantile(0.95)))
    return [bars, band]


def chart_figures(t: TargetDigest) -> list[list[tuple]]:
    return [
        [(b.start, b.valid, b.good) for b in t.uptime_chart.bars],
        [(h.start, h.count, h.p50, h.p95) for h in t.ttft_chart.hours],
    ]


def figures(ctx: DigestContext) -> list[tuple]:
    return [
        (
            t.name,
            t.results,
            t.uptime,
            t.latency_p50,
            t.ttft_p95,
            t.errors,
            t.error_details,
            t.tokens,
            [(b.start, b.valid, b.good, b.px, b.state) for b in t.uptime_chart.bars],
            t.ttft_chart,
            round(t.spend_usd or 0.0, 12),
            round(t.month_to_date_usd or 0.0, 12),
        )
        for t in ctx.targets
    ]


def check_against_brute_force(ctx: DigestContext, cfg: Config, items: Items) -> None:
    band = tuple(cfg.digest.usage_ratio_band)
    for t, target in zip(ctx.targets, cfg.targets, strict=True):
        mine = in_period(items, t.name, PERIOD)
        checked, mismatched, median = brute_tokens(mine, band)  # type: ignore[arg-type]
        assert (t.tokens.checked, t.tokens.mismatched) == (checked, mismatched)
        assert t.tokens.median_ratio_to_chars4 == median
        assert t.error_details == brute_details(mine)
        count_rl = cfg.slo(target).count_rate_limited
        assert chart_figures(t) == brute_bars(mine, PERIOD, count_rl)
        assert t.ttft_chart.probe == "stream" and t.ttft_chart.probes > 50
        # All the data is in the period's month: daily, hourly and raw sums together.
        spent = sum(
            r.cost_usd or 0.0
            for r, _ in items
            if r.target == t.name and r.started_at < PERIOD.until
        )
        assert t.month_to_date_usd == pytest.approx(spent, rel=1e-9)
        assert t.spend_usd == pytest.approx(sum(r.cost_usd or 0.0 for r, _ in mine), rel=1e-9)
        # The data really exercises what is compared.
        assert checked > 50 and 0 < mismatched < checked
        assert len(t.error_details) >= 3


def rollup_columns_null(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).where(
                sa.or_(ROLLUPS.c.usage_counts.is_(None), ROLLUPS.c.error_details.is_(None))
            )
        ).scalar_one()


# --- the test ---------------------------------------------------------------------------------


def test_digest_from_rollups_equals_raw_rows_and_brute_force(
    db_url: str, db_engine: Engine
) -> None:
    engine = db_engine
    cfg = make_config(db_url)
    prices = PriceBook(cfg)
    items = make_items(PERIOD.since - timedelta(days=2), PERIOD.until + HOUR)
    store_results(engine, items)

    def build() -> DigestContext:
        return digest.build_period(engine, cfg, PERIOD, prices=prices, now=PERIOD.until)

    raw_only = build()
    check_against_brute_force(raw_only, cfg, items)

    # Every whole hour rolled up: the period's middle comes from rollups alone.
    rollup_hours(engine, PERIOD.since - timedelta(days=2), PERIOD.until)
    assert rollup_columns_null(engine) == 0
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(ROLLED_DAYS)).scalar_one() > 0
    rolled = build()
    assert figures(rolled) == figures(raw_only)
    check_against_brute_force(rolled, cfg, items)

    # A database whose hours were rolled up before migration 0005: the new columns are
    # NULL and those hours must be read from raw rows, never taken as zero.
    engine.dispose()
    migrate.downgrade(db_url, "0004")
    migrate.upgrade(db_url)
    assert rollup_columns_null(engine) > 0
    assert figures(build()) == figures(raw_only)

    # Some of those hours rolled up again: NULL and filled hours side by side.
    rollup_hours(engine, PERIOD.since, PERIOD.since + 10 * HOUR)
    assert rollup_columns_null(engine) > 0
    mixed = build()
    assert figures(mixed) == figures(raw_only)
    check_against_brute_force(mixed, cfg, items)
