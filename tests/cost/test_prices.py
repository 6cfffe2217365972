"""Cost accounting: genai-prices figures, overrides, price history, month projection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from genai_prices import Usage, calc_price

from checker.config.load import parse
from checker.config.schema import Pricing, Target
from checker.cost.prices import (
    PriceBook,
    effective_price_per_mtok,
    month_fraction_elapsed,
    month_window,
    project_month_end,
)
from checker.probes.base import ProbeResult

NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)  # DeepSeek's peak hours (00:30-16:30 UTC)
EVENING = datetime(2026, 11, 2, 20, 0, tzinfo=UTC)  # DeepSeek's off-peak hours


def target(
    model: str | None, base_url: str = "https://relay.example.com/v1", **pricing: Any
) -> Target:
    return Target(
        name="t",
        kind="openai",
        base_url=base_url,
        model=model,
        pricing=Pricing(**pricing) if pricing else None,
    )


def book_for(t: Target) -> PriceBook:
    return PriceBook(targets=[t])


def genai_figure(
    model: str,
    at: datetime,
    prompt: int,
    completion: int,
    cached: int = 0,
    reasoning: int = 0,
    **where: str,
) -> float:
    usage = Usage(
        input_tokens=prompt,
        cache_read_tokens=cached,
        output_tokens=completion,
        output_reasoning_tokens=reasoning,
    )
    return float(calc_price(usage, model, genai_request_timestamp=at, **where).total_price)


@pytest.mark.parametrize(
    ("model", "base_url"),
    [
        ("gpt-4o-mini", "https://api.openai.com/v1"),
        ("deepseek-chat", "https://api.deepseek.com/v1"),
        ("claude-sonnet-4-5", "https://api.anthropic.com"),
        ("sonar-deep-research", "https://api.perplexity.ai"),
    ],
)
def test_cost_equals_genai_prices_own_figure(model: str, base_url: str) -> None:
    t = target(model, base_url)
    book = book_for(t)
    for at in (NOON, EVENING):
        cost = book.cost_usd(t, 12_000, 900, cached_tokens=3_000, reasoning_tokens=200, at=at)
        expected = genai_figure(
            model, at, 12_000, 900, cached=3_000, reasoning=200, provider_api_url=base_url
        )
        assert expected > 0
        assert cost == pytest.approx(expected, rel=1e-12)


def test_known_usage_on_known_model_by_hand() -> None:
    # deepseek-chat at peak: $0.27 input, $0.07 cache read, $1.10 output per Mtok.
    t = target("deepseek-chat", "https://api.deepseek.com/v1")
    cost = book_for(t).cost_usd(t, 1_000, 300, cached_tokens=400, at=NOON)
    assert cost == pytest.approx((600 * 0.27 + 400 * 0.07 + 300 * 1.1) / 1e6)


def test_reasoning_tokens_at_their_own_price() -> None:
    # Perplexity's sonar-deep-research: output $8, reasoning $3 per Mtok, no cache price.
    t = target("sonar-deep-research", "https://api.perplexity.ai")
    book = book_for(t)
    cost = book.cost_usd(t, 1_000, 500, cached_tokens=200, reasoning_tokens=100, at=NOON)
    assert cost == pytest.approx((1_000 * 2 + 400 * 8 + 100 * 3) / 1e6)
    info = book.price_for(t, NOON)
    assert info is not None
    assert (info.output_per_mtok, info.reasoning_per_mtok) == (8.0, 3.0)
    assert info.cached_input_per_mtok == info.input_per_mtok == 2.0


def test_relay_pays_model_list_price_plus_markup() -> None:
    t = target("openai/gpt-4o-mini", markup=0.1)
    book = book_for(t)
    cost = book.cost_usd(t, 2_000, 100, cached_tokens=1_000, at=NOON)
    list_cost = genai_figure("gpt-4o-mini", NOON, 2_000, 100, cached=1_000, provider_id="openai")
    assert cost == pytest.approx(list_cost * 1.1, rel=1e-12)
    info = book.price_for(t, NOON)
    assert info is not None
    assert (info.source, info.provider, info.model) == ("genai-prices", "OpenAI", "gpt-4o-mini")
    assert info.input_per_mtok == pytest.approx(0.15 * 1.1)
    assert info.markup == 0.1


def test_markup_by_hand() -> None:
    t = target("deepseek-chat", "https://api.deepseek.com/v1", markup=0.2)
    cost = book_for(t).cost_usd(t, 1_000, 300, cached_tokens=400, at=NOON)
    assert cost == pytest.approx((600 * 0.27 + 400 * 0.07 + 300 * 1.1) * 1.2 / 1e6)


def test_known_provider_host_only_uses_its_own_list() -> None:
    # DeepSeek does not serve gpt-4o-mini: no price, rather than OpenAI's.
    t = target("gpt-4o-mini", "https://api.deepseek.com/v1")
    book = book_for(t)
    assert book.price_for(t, NOON) is None
    assert book.cost_usd(t, 100, 10, at=NOON) is None


def test_unknown_model_has_no_price() -> None:
    t = target("sim-model-that-does-not-exist", "http://127.0.0.1:9/v1")
    book = book_for(t)
    assert book.list_model(t) is None
    assert book.price_for(t, NOON) is None
    assert book.cost_usd(t, 1_000, 100, 0, 0, at=NOON) is None
    assert book.workload_cost(t, 10_000_000, 2_000_000, 0.5, at=NOON) is None
    http = Target(name="h", kind="http", base_url="https://example.com/health")
    assert PriceBook(targets=[http]).cost_usd(http, 10, 10, at=NOON) is None


def test_no_reported_usage_is_no_cost() -> None:
    t = target("gpt-4o-mini")
    assert book_for(t).cost_usd(t, None, None, at=NOON) is None


def test_override_prices_by_hand() -> None:
    t = target("unknown-model", input_per_mtok=2.0, output_per_mtok=8.0, cached_input_per_mtok=0.5)
    book = book_for(t)
    cost = book.cost_usd(t, 1_000, 300, cached_tokens=400, reasoning_tokens=100, at=NOON)
    assert cost == pytest.approx((600 * 2.0 + 400 * 0.5 + 300 * 8.0) / 1e6)
    info = book.price_for(t, NOON)
    assert info is not None
    assert info.source == "override"
    assert (info.input_per_mtok, info.cached_input_per_mtok, info.output_per_mtok) == (2, 0.5, 8)


def test_override_without_cached_price_bills_cached_input_at_input_price() -> None:
    t = target("unknown-model", input_per_mtok=2.0, output_per_mtok=8.0)
    cost = book_for(t).cost_usd(t, 1_000, 300, cached_tokens=400, at=NOON)
    assert cost == pytest.approx((1_000 * 2.0 + 300 * 8.0) / 1e6)


def test_override_in_another_currency_converted_at_fixed_rate() -> None:
    t = target(
        "unknown-model",
        input_per_mtok=1.0,
        output_per_mtok=3.0,
        cached_input_per_mtok=0.25,
        currency="EUR",
        usd_per_unit=1.08,
    )
    cost = book_for(t).cost_usd(t, 1_000, 300, cached_tokens=200, at=NOON)
    assert cost == pytest.approx((800 * 1.08 + 200 * 0.27 + 300 * 3.24) / 1e6)


def test_partial_override_keeps_list_prices_and_markup_applies_to_them_only() -> None:
    t = target("deepseek-chat", "https://api.deepseek.com/v1", output_per_mtok=2.0, markup=0.1)
    book = book_for(t)
    cost = book.cost_usd(t, 1_000, 300, cached_tokens=400, at=NOON)
    assert cost == pytest.approx(((600 * 0.27 + 400 * 0.07) * 1.1 + 300 * 2.0) / 1e6)
    info = book.price_for(t, NOON)
    assert info is not None
    assert info.source == "override"
    assert info.output_per_mtok == 2.0
    assert info.input_per_mtok == pytest.approx(0.27 * 1.1)


def test_only_an_input_price_on_an_unknown_model_is_no_price() -> None:
    t = target("unknown-model", input_per_mtok=1.0)
    book = book_for(t)
    assert book.price_for(t, NOON) is None
    assert book.cost_usd(t, 100, 100, at=NOON) is None


def test_price_in_force_at_the_probe_time() -> None:
    # deepseek-v4-flash: $0.14/$0.28 until 2026-08-17, $0.22/$0.66 from then, $0.15/$0.60
    # from 2026-09-10; 01:00-04:00 UTC is peak at $0.30/$1.20.
    t = target("deepseek-v4-flash", "https://api.deepseek.com")
    book = book_for(t)
    history = [
        (datetime(2026, 8, 1, 12, tzinfo=UTC), 0.14, 0.28),
        (datetime(2026, 8, 20, 12, tzinfo=UTC), 0.22, 0.66),
        (datetime(2026, 10, 1, 12, tzinfo=UTC), 0.15, 0.60),
        (datetime(2026, 10, 1, 2, tzinfo=UTC), 0.30, 1.20),
    ]
    for at, input_rate, output_rate in history:
        info = book.price_for(t, at)
        assert info is not None
        assert (info.input_per_mtok, info.output_per_mtok) == (input_rate, output_rate)
        cost = book.cost_usd(t, 10_000, 1_000, at=at)
        assert cost == pytest.approx((10_000 * input_rate + 1_000 * output_rate) / 1e6)
        expected = genai_figure(
            "deepseek-v4-flash", at, 10_000, 1_000, provider_api_url="https://api.deepseek.com"
        )
        assert cost == pytest.approx(expected, rel=1e-12)


def test_off_peak_price_by_time_of_day() -> None:
    t = target("deepseek-chat", "https://api.deepseek.com/v1")
    book = book_for(t)
    peak = book.cost_usd(t, 1_000_000, 0, at=NOON)
    off_peak = book.cost_usd(t, 1_000_000, 0, at=EVENING)
    assert (peak, off_peak) == (pytest.approx(0.27), pytest.approx(0.135))


def test_naive_timestamp_is_utc() -> None:
    t = target("deepseek-chat", "https://api.deepseek.com/v1")
    book = book_for(t)
    assert book.cost_usd(t, 1_000, 1_000, at=NOON.replace(tzinfo=None)) == book.cost_usd(
        t, 1_000, 1_000, at=NOON
    )


def test_inconsistent_usage_is_capped_not_negative() -> None:
    t = target("unknown-model", input_per_mtok=1.0, output_per_mtok=1.0, cached_input_per_mtok=0)
    book = book_for(t)
    assert book.cost_usd(t, 100, 10, cached_tokens=500, reasoning_tokens=50, at=NOON) == (
        pytest.approx(10 / 1e6)
    )


def test_cost_of_probe_result_uses_its_start_time() -> None:
    t = target("deepseek-chat", "https://api.deepseek.com/v1")
    book = book_for(t)
    result = ProbeResult(
        target="t",
        probe="stream",
        started_at=EVENING,
        prompt_tokens=1_000,
        completion_tokens=100,
        cached_tokens=0,
    )
    assert book.cost_of_result(t, result) == pytest.approx((1_000 * 0.135 + 100 * 0.55) / 1e6)


def test_price_book_from_config() -> None:
    cfg = parse(
        """
targets:
  - {name: a, kind: openai, base_url: "https://api.openai.com/v1", model: gpt-4o-mini}
  - {name: b, kind: openai, base_url: "http://127.0.0.1:1/v1", model: my-model,
     pricing: {input_per_mtok: 0.5, output_per_mtok: 1.5}}
  - {name: c, kind: http, base_url: "https://example.com/health"}
"""
    )
    book = PriceBook(cfg)
    a, b, c = cfg.targets
    price_a = book.price_for(a, NOON)
    assert price_a is not None and price_a.provider == "OpenAI"
    assert book.cost_usd(b, 1_000_000, 1_000_000, at=NOON) == pytest.approx(2.0)
    assert book.price_for(c, NOON) is None


def test_workload_cost_by_hand() -> None:
    t = target("unknown-model", input_per_mtok=2.0, output_per_mtok=8.0, cached_input_per_mtok=0.5)
    cost = book_for(t).workload_cost(t, 10_000_000, 2_000_000, cached_share=0.25, at=NOON)
    assert cost == pytest.approx(7.5 * 2.0 + 2.5 * 0.5 + 2 * 8.0)
    no_cache = book_for(t).workload_cost(t, 10_000_000, 2_000_000, at=NOON)
    assert no_cache == pytest.approx(10 * 2.0 + 2 * 8.0)


def test_workload_cost_averages_time_of_day_prices() -> None:
    # deepseek-chat: peak 00:30-16:30 UTC (16 h), off-peak the other 8 h at half price.
    t = target("deepseek-chat", "https://api.deepseek.com/v1")
    cost = book_for(t).workload_cost(t, 10_000_000, 2_000_000, cached_share=0.5, at=NOON)
    peak = 5 * 0.27 + 5 * 0.07 + 2 * 1.1
    off_peak = 5 * 0.135 + 5 * 0.035 + 2 * 0.55
    assert cost == pytest.approx((16 * peak + 8 * off_peak) / 24)


def test_effective_price_per_mtok() -> None:
    assert effective_price_per_mtok(0.5, 250_000) == pytest.approx(2.0)
    assert effective_price_per_mtok(None, 1_000) is None
    assert effective_price_per_mtok(1.0, 0) is None
    assert effective_price_per_mtok(1.0, None) is None


def test_month_window_in_local_time() -> None:
    start, end = month_window(datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "Europe/Berlin")
    # 23:30 UTC on Oct 31 is already November 1st in Berlin.
    berlin = ZoneInfo("Europe/Berlin")
    assert start == datetime(2026, 11, 1, tzinfo=berlin)
    assert end == datetime(2026, 12, 1, tzinfo=berlin)


def test_projection_is_linear_in_elapsed_month() -> None:
    now = datetime(2026, 11, 16, tzinfo=UTC)  # half of a 30-day month
    assert month_fraction_elapsed(now, "UTC") == pytest.approx(0.5)
    assert project_month_end(12.0, now, "UTC") == pytest.approx(24.0)
    assert project_month_end(12.0, now.replace(tzinfo=None), "UTC") == pytest.approx(24.0)


def test_projection_over_a_dst_change_counts_real_hours() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # March 2026 in Berlin has 743 hours (clocks jump forward on the 29th).
    now = datetime(2026, 3, 16, tzinfo=berlin)
    assert month_fraction_elapsed(now, berlin) == pytest.approx(15 * 24 / 743)
    assert project_month_end(10.0, now, "Europe/Berlin") == pytest.approx(10.0 * 743 / 360)
    start, end = month_window(now, berlin)
    assert (end - start) == timedelta(days=31)  # wall clock
    assert (end.astimezone(UTC) - start.astimezone(UTC)) == timedelta(hours=743)


def test_projection_at_month_start_and_end() -> None:
    first = datetime(2026, 11, 1, tzinfo=UTC)
    assert project_month_end(3.0, first, "UTC") == 3.0
    last = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    assert project_month_end(3.0, last, "UTC") == pytest.approx(3.0, rel=1e-5)
