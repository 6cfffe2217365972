"""The digest's pure core: periods across DST, breach rules, changes, token honesty, ranking."""

from __future__ import annotations

import random
import statistics
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from checker.alerting.slo import WindowCounts
from checker.digest import render as digest_render
from checker.digest.changes import compare
from checker.digest.context import hour_chart, make_context
from checker.digest.honesty import token_honesty, usage_out_of_band, weighted_median
from checker.digest.inputs import Figures, Hour, IncidentSpan, Spend, TargetInputs, Usage
from checker.digest.models import TokenHonesty
from checker.digest.period import last_hours, local_day, parse_day, scheduled_period, send_time

BERLIN = "Europe/Berlin"
BAND = (0.8, 1.25)


# --- periods ---------------------------------------------------------------------------------


def test_local_day_is_23_or_25_hours_on_dst_change_days() -> None:
    spring = local_day(date(2025, 3, 30), BERLIN)
    autumn = local_day(date(2025, 10, 26), BERLIN)
    ordinary = local_day(date(2025, 6, 1), BERLIN)
    assert spring.hours == 23
    assert autumn.hours == 25
    assert ordinary.hours == 24
    assert spring.since == datetime(2025, 3, 29, 23, 0, tzinfo=UTC)
    assert spring.until == datetime(2025, 3, 30, 22, 0, tzinfo=UTC)
    assert autumn.window_key == f"{25 * 3600}s"
    # A zone with a half-hour offset: local midnight is not on a UTC hour.
    kolkata = local_day(date(2025, 3, 30), "Asia/Kolkata")
    assert kolkata.since == datetime(2025, 3, 29, 18, 30, tzinfo=UTC)


def test_shifting_a_day_keeps_the_wall_clock_across_dst() -> None:
    monday = local_day(date(2025, 3, 31), BERLIN)
    sunday = monday.shifted(-1)
    assert sunday.since == local_day(date(2025, 3, 30), BERLIN).since
    assert sunday.hours == 23
    week = monday.shifted(-7)
    assert week.since.astimezone(ZoneInfo(BERLIN)).hour == 0
    assert week.since.astimezone(ZoneInfo(BERLIN)).date() == date(2025, 3, 24)


def test_scheduled_period_is_the_24_hours_before_the_send_time() -> None:
    # 08:00 in Berlin on the day after the spring change is 06:00 UTC.
    now = datetime(2025, 3, 31, 6, 0, 5, tzinfo=UTC)
    day, period = scheduled_period(now, "08:00", BERLIN)  # type: ignore[misc]
    assert day == date(2025, 3, 31)
    assert period.until == datetime(2025, 3, 31, 6, 0, tzinfo=UTC)
    assert period.hours == 24
    # A late run (catching up after a restart) reports the same period.
    late = scheduled_period(now + timedelta(hours=3), "08:00", BERLIN)
    assert late is not None and late[1] == period
    # Before the send time nothing is due; a timer a few seconds early is forgiven.
    assert scheduled_period(now - timedelta(hours=1), "08:00", BERLIN) is None
    early = scheduled_period(now - timedelta(seconds=20), "08:00", BERLIN)
    assert early is not None and early[0] == date(2025, 3, 31)


def test_send_times_that_dst_skips_or_repeats() -> None:
    # 02:30 does not exist on 2025-03-30 in Berlin: due no later than the end of the gap.
    skipped = send_time(date(2025, 3, 30), "02:30", BERLIN)
    assert skipped <= datetime(2025, 3, 30, 1, 0, tzinfo=UTC)
    assert scheduled_period(datetime(2025, 3, 30, 1, 0, tzinfo=UTC), "02:30", BERLIN) is not None
    # 02:30 happens twice on 2025-10-26: the first time counts.
    repeated = send_time(date(2025, 10, 26), "02:30", BERLIN)
    assert repeated == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    assert send_time(date(2025, 6, 1), "08:00", BERLIN) == datetime(2025, 6, 1, 6, 0, tzinfo=UTC)


def test_last_hours_and_parse_day() -> None:
    now = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)
    period = last_hours(now, "UTC")
    assert (period.since, period.until) == (now - timedelta(hours=24), now)
    assert parse_day("2025-03-30") == date(2025, 3, 30)
    for bad in ("2025-3-30", "30.03.2025", "2025-02-30", "tomorrow", ""):
        with pytest.raises(ValueError, match="expected a date like"):
            parse_day(bad)


# --- token honesty ---------------------------------------------------------------------------


def test_usage_band_allows_every_honest_count_of_the_text() -> None:
    # "1 2 3 4 5 6 7 8 9 10": 20 characters, 19 o200k tokens; chars / 4 would say 5.
    assert usage_out_of_band(Usage(19, 0, 20), BAND) is False
    # 99 characters of English prose, 19 tokens.
    assert usage_out_of_band(Usage(19, 0, 99), BAND) is False
    # Hidden reasoning (o-series) is reported but never streamed.
    assert usage_out_of_band(Usage(19 + 200, 200, 20), BAND) is False


def test_usage_band_flags_counts_no_text_could_have() -> None:
    # Twice as many tokens as characters: no tokenizer produces that for visible text.
    assert usage_out_of_band(Usage(40, 0, 20), BAND) is True
    # A relay reporting 1 token for 400 characters.
    assert usage_out_of_band(Usage(1, 0, 400), BAND) is True
    # Too small to judge either way.
    assert usage_out_of_band(Usage(3, 0, 5), BAND) is None


def test_token_honesty_counts_checked_and_mismatched() -> None:
    usages = [Usage(19, 0, 20)] * 8 + [Usage(60, 0, 20)] * 2 + [Usage(1, 0, 2)]
    honesty = token_honesty(usages, BAND)
    assert (honesty.checked, honesty.mismatched) == (10, 2)
    assert honesty.median_ratio_to_chars4 == pytest.approx(19 / 5)


# --- changes ---------------------------------------------------------------------------------


def test_changes_judge_direction_by_metric() -> None:
    slower = compare("latency p50", 1200.0, 1000.0, higher_is_better=False)
    assert (slower.direction, slower.verdict, slower.arrow) == ("up", "worse", "\u25b2")
    faster = compare("latency p50", 800.0, 1000.0, higher_is_better=False)
    assert (faster.direction, faster.verdict, faster.arrow) == ("down", "better", "\u25bc")
    up = compare("uptime", 0.999, 0.99, higher_is_better=True)
    assert (up.direction, up.verdict) == ("up", "better")
    assert up.delta == pytest.approx(0.009)
    down = compare("uptime", 0.98, 0.99, higher_is_better=True)
    assert (down.direction, down.verdict) == ("down", "worse")
    # Noise is no news.
    assert compare("uptime", 0.9991, 0.9990, True).direction == "same"
    assert compare("latency p50", 1020.0, 1000.0, False).direction == "same"
    # Spend is shown, not judged; a missing side gives no arrow.
    assert compare("spend", 2.0, 1.0, None).verdict == "neutral"
    assert compare("TTFT p50", None, 1.0, False).direction is None


# --- the whole context -----------------------------------------------------------------------

PERIOD = local_day(date(2025, 3, 30), BERLIN)


def _figures(uptime: float | None, latency: float | None = 500.0, results: int = 100) -> Figures:
    return Figures(
        results=results,
        uptime=uptime,
        latency_p50=latency,
        latency_p95=latency * 2 if latency else None,
        ttft_p50=latency / 2 if latency else None,
        ttft_p95=latency if latency else None,
        tokens_per_s_p50=50.0,
        errors={"timeout": 1} if uptime and uptime < 1 else {},
    )


def _inputs(name: str, **overrides: object) -> TargetInputs:
    values: dict[str, object] = {
        "name": name,
        "model": "gpt-4o-mini",
        "model_key": "gpt-4o-mini",
        "objective": 0.99,
        "slo_window_s": 30 * 86400.0,
        "figures": _figures(1.0),
        "uptime_7d": 1.0,
        "uptime_30d": 1.0,
        "period_counts": WindowCounts(100, 0),
        "slo_counts": WindowCounts(3000, 0),
        "previous_day": _figures(1.0),
        "previous_week": _figures(1.0, latency=1000.0),
        "spend": Spend(0.01, 100, 1000, 500),
        "spend_previous_day": Spend(0.01, 100, 1000, 500),
        "spend_previous_week": Spend(0.01, 100, 1000, 500),
        "spend_month_to_date": Spend(0.3, 3000, 30000, 15000),
        "month_end_projection_usd": 0.31,
        "priced": True,
        "input_per_mtok": 0.15,
        "output_per_mtok": 0.6,
        "workload_usd": 2.7,
        "spend_cap_usd": None,
    }
    values.update(overrides)
    return TargetInputs(**values)  # type: ignore[arg-type]


def _context(*inputs: TargetInputs):  # type: ignore[no-untyped-def]
    return make_context(
        PERIOD,
        list(inputs),
        generated_at=PERIOD.until,
        usage_band=BAND,
        workload_input_tokens=10_000_000,
        workload_output_tokens=2_000_000,
        workload_cached_share=None,
    )


def test_all_good_verdict() -> None:
    ctx = _context(_inputs("a"), _inputs("b"))
    assert ctx.ok
    assert ctx.verdict == "All good: 2 routes within their SLOs."
    assert ctx.title == "checker digest 2025-03-30 (Europe/Berlin): all good"
    assert ctx.targets[0].state == "ok"
    assert ctx.total_spend_usd == pytest.approx(0.02)


def test_each_breach_rule_and_no_data() -> None:
    opened = PERIOD.since + timedelta(hours=2)
    ctx = _context(
        _inputs("budget", slo_counts=WindowCounts(1000, 20)),
        _inputs("uptime", figures=_figures(0.95), period_counts=WindowCounts(100, 5)),
        _inputs("paged", incidents=[IncidentSpan("down", "page", ("down",), opened, None)]),
        _inputs(
            "ticket", incidents=[IncidentSpan("burn", "ticket", ("burn_ticket",), opened, None)]
        ),
        _inputs(
            "silent",
            figures=_figures(None, latency=None, results=0),
            period_counts=WindowCounts(0, 0),
        ),
        _inputs("fine"),
    )
    by_name = {t.name: t for t in ctx.targets}
    assert by_name["budget"].reasons == ["error budget exhausted"]
    assert by_name["budget"].budget_remaining == pytest.approx(-1.0)
    assert by_name["uptime"].reasons == ["uptime 95.00% below 99.00%"]
    assert by_name["uptime"].burn_rate == pytest.approx(5.0)
    assert by_name["paged"].reasons == ["page incident open"]
    assert by_name["ticket"].state == "ok"
    assert by_name["silent"].state == "no_data"
    assert ctx.breaching == ["budget", "uptime", "paged"]
    assert ctx.no_data == ["silent"]
    assert not ctx.ok
    assert ctx.verdict == "3 of 6 routes breaching: budget, uptime, paged; 1 without data: silent."
    assert ctx.title.endswith(": 3 breaching, 1 without data")


def test_incidents_in_the_period_with_durations() -> None:
    resolved = IncidentSpan(
        "down",
        "page",
        ("down",),
        PERIOD.since + timedelta(hours=1),
        PERIOD.since + timedelta(hours=1, minutes=30),
    )
    carried_over = IncidentSpan(
        "latency", "ticket", ("latency",), PERIOD.since - timedelta(hours=5), None
    )
    ctx = _context(_inputs("a", incidents=[carried_over, resolved]))
    first, second = ctx.targets[0].incidents
    assert (first.rule_group, first.opened_in_period, first.open_at_end) == ("latency", False, True)
    assert first.duration_s == pytest.approx(PERIOD.seconds + 5 * 3600)
    assert (second.resolved_in_period, second.open_at_end) == (True, False)
    assert second.duration_s == 1800
    # A page incident resolved before the end is no breach.
    assert ctx.targets[0].state == "ok"


def test_changes_against_day_and_week() -> None:
    ctx = _context(_inputs("a"))
    rows = {row.metric: row for row in ctx.targets[0].change_rows}
    assert rows["latency p50"].vs_day is not None and rows["latency p50"].vs_day.direction == "same"
    week = rows["latency p50"].vs_week
    assert week is not None and (week.direction, week.verdict) == ("down", "better")
    assert week.delta == pytest.approx(-0.5)


def test_no_price_and_reference_workload_order() -> None:
    ctx = _context(
        _inputs("cheap", workload_usd=1.0),
        _inputs(
            "unknown",
            priced=False,
            workload_usd=None,
            spend=Spend(),
            spend_month_to_date=Spend(),
            input_per_mtok=None,
            output_per_mtok=None,
        ),
        _inputs("dear", workload_usd=5.0),
    )
    assert [row.target for row in ctx.workload] == ["cheap", "dear", "unknown"]
    unknown = next(t for t in ctx.targets if t.name == "unknown")
    assert unknown.spend_usd is None
    assert unknown.month_end_projection_usd is None
    assert ctx.unpriced == ["unknown"]


def test_a_route_billing_more_tokens_than_it_streams_is_not_ok() -> None:
    honest = {Usage(30, 0, 120, counted_tokens=30): 10}
    greedy = {Usage(90, 0, 120, counted_tokens=30): 10}  # 3x what it streamed
    few = {Usage(90, 0, 120, counted_tokens=30): 2}  # too few results to judge
    ctx = _context(
        _inputs("honest", usage=honest),
        _inputs("greedy", usage=greedy, output_per_mtok=0.6),
        _inputs("new", usage=few),
    )
    by_name = {t.name: t for t in ctx.targets}
    assert by_name["honest"].state == "ok" and by_name["new"].state == "ok"
    greedy_row = by_name["greedy"]
    assert greedy_row.state == "over_billing" and not ctx.ok
    assert greedy_row.reasons == [
        "reports 3.00x the output tokens it streams (band 0.8-1.25, 10 results)"
    ]
    # What an output token really costs on this route: the list price times the ratio.
    assert greedy_row.real_output_per_mtok == pytest.approx(1.8)
    assert "1 over-reporting usage: greedy" in ctx.verdict
    html = digest_render.render_html(ctx)
    text = digest_render.render_text(ctx)
    assert "over-billing" in html
    assert "== greedy [OVER-BILLING] ==" in text and "== greedy [ok] ==" not in text


def test_hour_chart_colours_against_the_objective_and_leaves_empty_hours_blank() -> None:
    start = PERIOD.since
    hours = [
        Hour(start, 60, 60),
        Hour(start + timedelta(hours=1), 60, 57),
        Hour(start + timedelta(hours=2), 60, 0),
        Hour(start + timedelta(hours=3), 0, 0),
    ]
    chart = hour_chart(hours, 0.99, ZoneInfo(BERLIN))
    assert [b.state for b in chart.bars] == ["good", "degraded", "bad", "empty"]
    assert [b.px for b in chart.bars] == [chart.height_px, round(0.95 * chart.height_px), 3, 0]
    assert chart.bars[0].label == "00" and chart.probes == 180
    assert chart.strip == "\u2588\u2584\u2581 "


def test_token_honesty_from_counts_equals_one_usage_per_result() -> None:
    usages = [Usage(19, 0, 20)] * 7 + [Usage(60, 0, 20, 19)] * 2 + [Usage(1, 0, 2)]
    usages += [Usage(25, 0, 21, 20)] * 4 + [Usage(40, 0, 400)]
    counts = Counter(usages)
    assert token_honesty(counts, BAND) == token_honesty(usages, BAND)
    assert token_honesty({}, BAND) == TokenHonesty(0, 0, None)


@pytest.mark.parametrize("seed", range(30))
def test_weighted_median_is_the_median_of_the_expanded_list(seed: int) -> None:
    rng = random.Random(seed)
    values = {rng.uniform(0, 5): rng.randint(0, 4) for _ in range(rng.randint(1, 8))}
    expanded = [v for v, n in values.items() for _ in range(n)]
    expected = statistics.median(expanded) if expanded else None
    assert weighted_median(values) == expected
