"""What a usage costs: genai-prices list prices plus per-target overrides (pure, no I/O).

Usage follows OpenAI's report: `prompt_tokens` includes `cached_tokens`, and
`completion_tokens` includes `reasoning_tokens`. Probes of APIs that report them apart
(Anthropic's `input_tokens` excludes cache reads) add them up before asking for a cost.

Where a price comes from:
- A target whose `base_url` is a provider genai-prices knows (api.openai.com,
  api.deepseek.com, openrouter.ai, ...) is priced from that provider's list only: a model
  that provider does not list has no price, rather than some other provider's.
- Any other host (a relay, a self-hosted gateway, the simulator) is priced at the model's
  list price where it comes from (`gpt-4o-mini` -> OpenAI; `openai/gpt-4o-mini` -> OpenAI),
  plus the target's `markup`, which is what relays charge on top.
- `pricing.input_per_mtok` / `output_per_mtok` / `cached_input_per_mtok` replace the list
  price per kind of token, in `pricing.currency` converted at the fixed `usd_per_unit`;
  kinds left unset keep the list price. Without an overridden cached price, cached input
  is billed at the overridden input price (no discount is assumed). Markup applies to list
  prices only: an explicit price is what you pay.
- No price is ever guessed: an unknown model, or a target with neither a list price nor
  explicit input and output prices, costs None ("no price" in the digest).

List prices change over time (new rates from a date, off-peak hours at DeepSeek), so every
cost is computed at the probe's `started_at`. Without overrides the cost is genai-prices'
own figure (tiers, cache-read and reasoning prices, per-request fees) times 1 + markup.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

from checker.config.schema import Config, Target
from checker.cost.probe_usage import expected_usage

if TYPE_CHECKING:
    from checker.probes.base import ProbeResult

__all__ = [
    "ListModel",
    "PriceBook",
    "PriceInfo",
    "PriceSource",
    "effective_price_per_mtok",
    "match_list_model",
    "month_fraction_elapsed",
    "month_window",
    "project_month_end",
]

PriceSource = Literal["override", "genai-prices"]

_PER_MTOK = Decimal(1_000_000)
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class PriceInfo:
    """Effective USD prices per million tokens for one target at one moment."""

    input_per_mtok: float
    cached_input_per_mtok: float
    output_per_mtok: float
    # None: reasoning tokens are billed as ordinary output tokens (the usual case).
    reasoning_per_mtok: float | None
    source: PriceSource
    provider: str | None  # genai-prices provider name, e.g. "OpenAI"
    model: str | None  # genai-prices model id the target's model matched
    markup: float  # fraction added to list prices (0.0 without markup)


@dataclass(frozen=True, slots=True)
class ListModel:
    """A model matched in genai-prices' bundled data, with the provider whose list prices it."""

    provider: Provider
    model: ModelInfo


@dataclass(frozen=True, slots=True)
class _RateCard:
    """USD per million tokens of each kind; Decimal so list prices stay exact."""

    input: Decimal
    cached_input: Decimal
    output: Decimal
    reasoning: Decimal | None


def match_list_model(model: str, base_url: str | None = None) -> ListModel | None:
    """The genai-prices model for `model` served at `base_url`, or None if it has no price."""
    snapshot = get_snapshot()
    provider: Provider | None = None
    if base_url:
        try:
            provider = snapshot.find_provider(None, None, base_url)
        except LookupError:
            provider = None
    if provider is not None:
        found = provider.find_model(model, all_providers=snapshot.providers)
        return ListModel(provider, found) if found is not None else None
    for model_ref, provider_id in _model_candidates(model):
        try:
            matched_provider, matched_model = snapshot.find_provider_model(
                model_ref, None, provider_id, None
            )
        except LookupError:
            continue
        return ListModel(matched_provider, matched_model)
    return None


def _model_candidates(model: str) -> Iterable[tuple[str, str | None]]:
    """Ways to read a model name on an unknown host: as is, then `vendor/model` split."""
    yield model, None
    vendor, slash, bare = model.partition("/")
    if slash and vendor and bare:
        yield bare, vendor
        yield bare, None


def _as_utc(at: datetime) -> datetime:
    # genai-prices reads naive timestamps as UTC too; be explicit so both agree.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def _base_rate(value: Decimal | TieredPrices | None) -> Decimal | None:
    # Tiers start at hundreds of thousands of prompt tokens; a probe or a workload spread
    # over ordinary requests pays the base rate.
    if isinstance(value, TieredPrices):
        return value.base
    return value


def _list_card(model_price: ModelPrice) -> _RateCard | None:
    input_rate = _base_rate(model_price.input_mtok)
    output_rate = _base_rate(model_price.output_mtok)
    if input_rate is None or output_rate is None:
        return None
    cached_rate = _base_rate(model_price.cache_read_mtok)
    return _RateCard(
        input=input_rate,
        cached_input=cached_rate if cached_rate is not None else input_rate,
        output=output_rate,
        reasoning=_base_rate(model_price.output_reasoning_mtok),
    )


def _scaled(card: _RateCard, factor: Decimal) -> _RateCard:
    return _RateCard(
        input=card.input * factor,
        cached_input=card.cached_input * factor,
        output=card.output * factor,
        reasoning=card.reasoning * factor if card.reasoning is not None else None,
    )


class PriceBook:
    """Prices for the targets of one config; genai-prices lookups are done once per target.

    Building it imports genai-prices' bundled data (a few hundred milliseconds): build it at
    startup, not on the event loop while probes are in flight.
    """

    def __init__(self, config: Config | None = None, targets: Iterable[Target] = ()) -> None:
        self._list_models: dict[str, ListModel | None] = {}
        for target in [*(config.targets if config else ()), *targets]:
            self._list_model(target)

    # --- lookups ---------------------------------------------------------------------------

    def _list_model(self, target: Target) -> ListModel | None:
        if target.name not in self._list_models:
            found = match_list_model(target.model, target.base_url) if target.model else None
            self._list_models[target.name] = found
        return self._list_models[target.name]

    def _has_token_override(self, target: Target) -> bool:
        p = target.pricing
        return p is not None and any(
            v is not None for v in (p.input_per_mtok, p.output_per_mtok, p.cached_input_per_mtok)
        )

    def _markup_factor(self, target: Target) -> Decimal:
        markup = target.pricing.markup if target.pricing else None
        return Decimal(1) + (_decimal(markup) if markup else Decimal(0))

    def _card(self, target: Target, at: datetime) -> _RateCard | None:
        """Effective USD rates at `at`: list prices with markup, overridden kinds replaced."""
        found = self._list_model(target)
        listed: _RateCard | None = None
        if found is not None:
            listed = _list_card(found.model.get_prices(at))
            if listed is not None:
                listed = _scaled(listed, self._markup_factor(target))
        if not self._has_token_override(target):
            return listed
        p = target.pricing
        assert p is not None
        usd_per_unit = Decimal(1) if p.currency == "USD" else _decimal(p.usd_per_unit or 0)

        def explicit(value: float | None) -> Decimal | None:
            return _decimal(value) * usd_per_unit if value is not None else None

        input_rate = explicit(p.input_per_mtok)
        output_rate = explicit(p.output_per_mtok)
        cached_rate = explicit(p.cached_input_per_mtok)
        if input_rate is None and listed is not None:
            input_rate = listed.input
            if cached_rate is None:
                cached_rate = listed.cached_input
        if output_rate is None and listed is not None:
            output_rate = listed.output
        if input_rate is None or output_rate is None:
            return None
        return _RateCard(
            input=input_rate,
            cached_input=cached_rate if cached_rate is not None else input_rate,
            output=output_rate,
            # An explicit output price covers every output token, reasoning included.
            reasoning=listed.reasoning if listed and p.output_per_mtok is None else None,
        )

    # --- public API ------------------------------------------------------------------------

    def list_model(self, target: Target) -> ListModel | None:
        """The genai-prices match for the target's model, if any (for display and tests)."""
        return self._list_model(target)

    def price_for(self, target: Target, at: datetime) -> PriceInfo | None:
        """Effective prices in force at `at`; None when no price is known."""
        card = self._card(target, _as_utc(at))
        if card is None:
            return None
        found = self._list_model(target)
        markup = target.pricing.markup if target.pricing and target.pricing.markup else 0.0
        return PriceInfo(
            input_per_mtok=float(card.input),
            cached_input_per_mtok=float(card.cached_input),
            output_per_mtok=float(card.output),
            reasoning_per_mtok=float(card.reasoning) if card.reasoning is not None else None,
            source="override" if self._has_token_override(target) else "genai-prices",
            provider=found.provider.name if found else None,
            model=found.model.id if found else None,
            markup=markup,
        )

    def output_per_mtok(self, target: Target | None, at: datetime) -> float | None:
        """USD per million output tokens in force at `at`; None when unknown."""
        price = self.price_for(target, at) if target is not None else None
        return price.output_per_mtok if price is not None else None

    def cost_usd(
        self,
        target: Target,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        cached_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        *,
        at: datetime,
    ) -> float | None:
        """USD cost of one call's usage at `at` (pass the probe's started_at).

        None when no price is known or no usage was reported: an unreported usage is not free.
        Counts a relay reports inconsistently (more cached than prompt tokens) are capped at
        their total so one bad report cannot make a negative cost.
        """
        if prompt_tokens is None and completion_tokens is None:
            return None
        prompt = max(prompt_tokens or 0, 0)
        completion = max(completion_tokens or 0, 0)
        cached = min(max(cached_tokens or 0, 0), prompt)
        reasoning = min(max(reasoning_tokens or 0, 0), completion)
        when = _as_utc(at)
        if not self._has_token_override(target):
            found = self._list_model(target)
            if found is None or _list_card(found.model.get_prices(when)) is None:
                return None
            usage = Usage(
                input_tokens=prompt,
                cache_read_tokens=cached,
                output_tokens=completion,
                output_reasoning_tokens=reasoning,
            )
            calc = found.model.calc_price(usage, found.provider, genai_request_timestamp=when)
            return float(calc.total_price * self._markup_factor(target))
        card = self._card(target, when)
        if card is None:
            return None
        return float(_card_cost(card, prompt - cached, cached, completion, reasoning))

    def expected_cost(self, target: Target, probe: str, at: datetime) -> float | None:
        """What one run of `probe` should cost (probe_usage.expected_usage); None when free
        or no price is known."""
        usage = expected_usage(target, probe)
        if usage is None:
            return None
        return self.cost_usd(target, usage[0], usage[1], at=at)

    def cost_of_result(self, target: Target, result: ProbeResult) -> float | None:
        """The cost of a probe result's reported usage at its start time."""
        return self.cost_usd(
            target,
            result.prompt_tokens,
            result.completion_tokens,
            result.cached_tokens,
            result.reasoning_tokens,
            at=result.started_at,
        )

    def workload_cost(
        self,
        target: Target,
        input_tokens: int,
        output_tokens: int,
        cached_share: float | None = None,
        *,
        at: datetime,
    ) -> float | None:
        """USD cost of a monthly reference workload on this target's model and price.

        The workload is taken as many ordinary requests spread evenly over the day, so
        prices that change with the time of day (off-peak hours) are averaged over the UTC
        day of `at`, minute by minute; tiered prices use their base rate.
        `cached_share` is the fraction of input tokens served from the prompt cache.
        """
        share = min(max(cached_share or 0.0, 0.0), 1.0)
        cached = Decimal(input_tokens) * _decimal(share)
        uncached = Decimal(input_tokens) - cached
        day = _as_utc(at).date()
        total = Decimal(0)
        for minute in range(_MINUTES_PER_DAY):
            moment = datetime.combine(day, time(0, 0, 30), UTC) + timedelta(minutes=minute)
            card = self._card(target, moment)
            if card is None:
                return None
            # Reasoning is part of the output volume; a workload has no separate figure.
            total += _card_cost(card, uncached, cached, Decimal(output_tokens), Decimal(0))
        return float(total / _MINUTES_PER_DAY)


def _card_cost(
    card: _RateCard,
    uncached_input: int | Decimal,
    cached_input: int | Decimal,
    completion: int | Decimal,
    reasoning: int | Decimal,
) -> Decimal:
    """Each kind of token at its own rate; reasoning is a part of completion."""
    reasoning_rate = card.reasoning if card.reasoning is not None else card.output
    dollars = (
        Decimal(uncached_input) * card.input
        + Decimal(cached_input) * card.cached_input
        + (Decimal(completion) - Decimal(reasoning)) * card.output
        + Decimal(reasoning) * reasoning_rate
    )
    return dollars / _PER_MTOK


# --- spend arithmetic --------------------------------------------------------------------------


def effective_price_per_mtok(cost_usd: float | None, tokens: int | None) -> float | None:
    """What a million tokens actually cost, from a spend and the tokens it bought."""
    if cost_usd is None or not tokens or tokens <= 0:
        return None
    return cost_usd / tokens * 1_000_000


def _zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def month_window(now: datetime, tz: str | tzinfo) -> tuple[datetime, datetime]:
    """Start of `now`'s calendar month in `tz` and start of the next month (aware datetimes).

    A naive `now` is read as UTC. Month-to-date spend is the spend in [start, now).
    """
    zone = _zone(tz)
    local = _as_utc(now).astimezone(zone)
    start = datetime.combine(date(local.year, local.month, 1), time(0), zone)
    days = calendar.monthrange(local.year, local.month)[1]
    end = datetime.combine(start.date() + timedelta(days=days), time(0), zone)
    return start, end


def month_fraction_elapsed(now: datetime, tz: str | tzinfo) -> float:
    """Share of `now`'s calendar month in `tz` that has passed, in real (UTC) seconds.

    Real seconds make a DST month one hour shorter or longer, as it is.
    """
    start, end = month_window(now, tz)
    elapsed = (_as_utc(now) - start.astimezone(UTC)).total_seconds()
    total = (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds()
    return min(max(elapsed / total, 0.0), 1.0)


def project_month_end(spend_so_far: float, now: datetime, tz: str | tzinfo) -> float:
    """Month-end spend if the month continues at its average rate so far.

    Linear: month-to-date spend divided by the elapsed fraction of the calendar month in
    `tz`. Early in a month it rests on little data (one expensive hour on the 1st is
    projected over the whole month); at the very start it returns the spend so far.
    """
    fraction = month_fraction_elapsed(now, tz)
    if fraction <= 0.0:
        return spend_so_far
    return spend_so_far / fraction
