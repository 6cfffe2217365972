"""The digest shell: read the period's figures from the store, hand them to the pure core.

`build` / `build_period` run every query the digest needs (status, window counts, spend,
incidents, token usage, hourly points), turn the answers into `TargetInputs` and call
`context.make_context`. Blocking: async callers run them in a thread.

Every query lives in `checker.store.queries`; this module only turns the answers into the
digest's own types. The exactly-once ledger is `checker.store.digest_log`, used by `send`.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine

from checker.alerting.slo import WindowCounts
from checker.compare.build import compare_routes
from checker.config.schema import Config, Target
from checker.cost.prices import PriceBook, month_window, project_month_end
from checker.digest.context import make_context
from checker.digest.inputs import Figures, Hour, IncidentSpan, Spend, TargetInputs, TtftHour, Usage
from checker.digest.models import DigestContext
from checker.digest.period import Period
from checker.digest.shift import MEASURES, Measure, Quartiles, quartiles
from checker.probes.base import ErrorKind
from checker.redact import Redactor
from checker.store.plan import as_utc
from checker.store.queries import digest as read
from checker.store.queries.counts import window_counts_many
from checker.store.queries.series import hourly_series_many
from checker.store.queries.status import TargetStatus, status

__all__ = [
    "RawOnlyFigures",
    "build",
    "build_period",
    "hour_points",
    "incidents_touching",
    "latest_error_details",
    "model_key",
    "spend_many",
    "ttft_hours",
    "ttft_probe",
    "usage_and_error_details",
    "usage_samples",
]

log = logging.getLogger("checker.digest")

_RATE_LIMITED = ErrorKind.rate_limited.value
_DETAIL_MAX = 300


# --- what the digest reads (checker.store.queries), in the digest context's types ------------


def spend_many(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> dict[str, Spend]:
    """Probe spend and tokens per target over [since, until)."""
    return {t: Spend(*sums) for t, sums in read.spend_many(engine, targets, since, until).items()}


def incidents_touching(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> dict[str, list[IncidentSpan]]:
    """Incidents open at any moment of [since, until)."""
    spans = read.incidents_touching(engine, targets, since, until)
    return {t: [IncidentSpan(*span) for span in mine] for t, mine in spans.items()}


@dataclass
class RawOnlyFigures:
    """What the digest once read from raw rows only, per target: distinct usages (token
    honesty) with their number of results, and the newest detail of each error kind."""

    usage: dict[str, Counter[Usage]]
    error_details: dict[str, dict[str, str]]


def usage_and_error_details(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> RawOnlyFigures:
    """Token-honesty usages and the newest error detail per kind, over [since, until)."""
    found = read.usage_and_error_details(engine, targets, since, until, detail_max=_DETAIL_MAX)
    usage = {
        t: Counter({Usage(*key): n for key, n in counts.items()})
        for t, counts in found.usage.items()
    }
    return RawOnlyFigures(usage, found.error_details)


def usage_samples(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> dict[str, Counter[Usage]]:
    """Distinct usages of successful results per target, with their number of results."""
    return usage_and_error_details(engine, targets, since, until).usage


def latest_error_details(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> dict[str, dict[str, str]]:
    """The most recent detail text of each error kind per target in [since, until)."""
    return usage_and_error_details(engine, targets, since, until).error_details


def hour_points(
    engine: Engine, count_rate_limited: Mapping[str, bool], since: datetime, until: datetime
) -> dict[str, list[Hour]]:
    """The uptime chart: one point per hour start in [floor_hour(since), until) for every
    target, empty hours included, counting every probe (as the SLO does)."""
    series = hourly_series_many(engine, count_rate_limited, since, until, ttft=False)
    return {
        target: [Hour(p.hour, p.valid, p.good) for p in points] for target, points in series.items()
    }


def ttft_probe(target: Target) -> str | None:
    """The probe a route's TTFT band is drawn from: its stream probe (what production
    streaming resembles; prefill and cache probes send other prompts), None without one."""
    return "stream" if "stream" in target.probe_names else None


def ttft_hours(
    engine: Engine, cfg: Config, since: datetime, until: datetime
) -> dict[str, list[TtftHour]]:
    """The TTFT band: per target with a streaming probe, that probe's successful results
    and TTFT p50/p95 per hour, empty hours included; no other probe in any percentile."""
    probes = {t.name: p for t in cfg.targets if (p := ttft_probe(t)) is not None}
    rate_limits = {name: rule for name, rule in _count_rate_limited(cfg).items() if name in probes}
    series = hourly_series_many(engine, rate_limits, since, until, ttft=True, probes=probes)
    return {
        target: [TtftHour(p.hour, p.good, p.ttft_p50, p.ttft_p95) for p in points]
        for target, points in series.items()
    }


# --- building the context --------------------------------------------------------------------


def _profile(s: TargetStatus) -> dict[Measure, Quartiles]:
    """The primary probe's TTFT and decode-speed quartiles (the same sketches as its
    percentiles: the status query already merged rollups and raw rows for the window)."""
    out: dict[Measure, Quartiles] = {}
    for measure in MEASURES:
        sketch = s.primary.sketches.get(measure)
        found = quartiles(sketch) if sketch is not None else None
        if found is not None:
            out[measure] = found
    return out


def _figures(s: TargetStatus, key: str) -> Figures:
    return Figures(
        results=s.results,
        uptime=s.uptime.get(key),
        latency_p50=s.latency_ms.get("p50"),
        latency_p95=s.latency_ms.get("p95"),
        ttft_p50=s.ttft_ms.get("p50"),
        ttft_p95=s.ttft_ms.get("p95"),
        tokens_per_s_p50=s.tokens_per_s_p50,
        errors=dict(s.errors),
        probe=s.primary_probe,
        profile=_profile(s),
    )


def _status_by_name(
    engine: Engine, cfg: Config, period: Period, windows: Sequence[str]
) -> dict[str, TargetStatus]:
    rows = status(
        engine,
        [t.name for t in cfg.targets],
        period.until,
        windows=windows,
        main_window=period.window_key,
        count_rate_limited=_count_rate_limited(cfg),
        with_last=False,  # a digest shows no single result
        layout=cfg.probe_layout(),
    )
    return {r.target: r for r in rows}


def _count_rate_limited(cfg: Config) -> dict[str, bool]:
    return {t.name: cfg.slo(t).count_rate_limited for t in cfg.targets}


def _window_counts(
    engine: Engine, cfg: Config, until: datetime, seconds: Mapping[str, float]
) -> dict[str, WindowCounts]:
    """(valid, bad) per target over its own window ending at `until`; one query per
    distinct (window, rate-limit rule)."""
    groups: dict[tuple[float, bool], list[str]] = {}
    for t in cfg.targets:
        key = (seconds[t.name], cfg.slo(t).count_rate_limited)
        groups.setdefault(key, []).append(t.name)
    out: dict[str, WindowCounts] = {}
    for (window_s, count_rl), names in groups.items():
        since = until - timedelta(seconds=window_s)
        rows = window_counts_many(engine, names, since, until, count_rl)
        out.update({name: WindowCounts(valid, bad) for name, (valid, bad) in rows.items()})
    return out


def model_key(book: PriceBook, target: Target) -> str | None:
    """What "the same model" means across routes: genai-prices' model id where it matched,
    else the model name without a vendor prefix."""
    found = book.list_model(target)
    if found is not None:
        return found.model.id
    if not target.model:
        return None
    return target.model.rsplit("/", 1)[-1].lower()


def build(
    engine: Engine,
    cfg: Config,
    since: datetime,
    until: datetime,
    *,
    prices: PriceBook | None = None,
    now: datetime | None = None,
    label: str | None = None,
) -> DigestContext:
    """The digest of [since, until). Blocking (database and genai-prices): call it in a
    thread from async code. `prices` saves rebuilding the price book on every call."""
    since, until = as_utc(since), as_utc(until)
    tz = cfg.digest.timezone
    zone = ZoneInfo(tz)
    if label is None:
        label = (
            f"{since.astimezone(zone):%Y-%m-%d %H:%M} to {until.astimezone(zone):%Y-%m-%d %H:%M %Z}"
        )
    return build_period(
        engine, cfg, Period(since, until, tz, label), prices=prices, now=now or datetime.now(UTC)
    )


def build_period(
    engine: Engine,
    cfg: Config,
    period: Period,
    *,
    prices: PriceBook | None = None,
    now: datetime | None = None,
) -> DigestContext:
    book = prices or PriceBook(cfg)
    names = [t.name for t in cfg.targets]
    key = period.window_key
    day_before, week_before = period.shifted(-1), period.shifted(-7)

    current = _status_by_name(engine, cfg, period, (key, "7d", "30d"))
    previous_day = _status_by_name(engine, cfg, day_before, (day_before.window_key,))
    previous_week = _status_by_name(engine, cfg, week_before, (week_before.window_key,))
    period_counts = _window_counts(
        engine, cfg, period.until, {t.name: period.seconds for t in cfg.targets}
    )
    slo_counts = _window_counts(
        engine, cfg, period.until, {t.name: cfg.slo(t).window for t in cfg.targets}
    )
    spend = spend_many(engine, names, period.since, period.until)
    spend_day = spend_many(engine, names, day_before.since, day_before.until)
    spend_week = spend_many(engine, names, week_before.since, week_before.until)
    # The month the period ends in: a period ending at midnight on the 1st is last month's.
    month_ref = period.until - timedelta(microseconds=1)
    month_start, _ = month_window(month_ref, period.timezone)
    month = spend_many(engine, names, month_start, period.until)
    incidents = incidents_touching(engine, names, period.since, period.until)
    raw_only = usage_and_error_details(engine, names, period.since, period.until)
    redact = Redactor(cfg.secrets())
    hours = hour_points(engine, _count_rate_limited(cfg), period.since, period.until)
    ttft = ttft_hours(engine, cfg, period.since, period.until)
    workload = cfg.digest.reference_workload

    inputs = []
    for t in cfg.targets:
        slo = cfg.slo(t)
        price = book.price_for(t, period.until)
        inputs.append(
            TargetInputs(
                name=t.name,
                model=t.model,
                model_key=model_key(book, t),
                objective=slo.availability,
                slo_window_s=slo.window,
                figures=_figures(current[t.name], key),
                uptime_7d=current[t.name].uptime.get("7d"),
                uptime_30d=current[t.name].uptime.get("30d"),
                period_counts=period_counts[t.name],
                slo_counts=slo_counts[t.name],
                previous_day=_figures(previous_day[t.name], day_before.window_key),
                previous_week=_figures(previous_week[t.name], week_before.window_key),
                spend=spend[t.name],
                spend_previous_day=spend_day[t.name],
                spend_previous_week=spend_week[t.name],
                spend_month_to_date=month[t.name],
                month_end_projection_usd=project_month_end(
                    month[t.name].cost_usd, month_ref, period.timezone
                ),
                priced=price is not None,
                input_per_mtok=price.input_per_mtok if price else None,
                output_per_mtok=price.output_per_mtok if price else None,
                workload_usd=book.workload_cost(
                    t,
                    workload.input_tokens_per_month,
                    workload.output_tokens_per_month,
                    workload.cached_input_share,
                    at=period.until,
                ),
                spend_cap_usd=t.spend_cap_usd_per_day,
                incidents=incidents[t.name],
                hours=hours[t.name],
                ttft_probe=ttft_probe(t),
                ttft_hours=ttft.get(t.name, ()),
                usage=raw_only.usage[t.name],
                error_details={
                    k: redact.text(v) for k, v in raw_only.error_details[t.name].items()
                },
            )
        )
    return make_context(
        period,
        inputs,
        generated_at=as_utc(now) if now else datetime.now(UTC),
        usage_band=tuple(cfg.digest.usage_ratio_band),  # type: ignore[arg-type]
        workload_input_tokens=workload.input_tokens_per_month,
        workload_output_tokens=workload.output_tokens_per_month,
        workload_cached_share=workload.cached_input_share,
        # The same view as `checker compare` over the period (its stream probes).
        comparison=compare_routes(engine, cfg, period.until, period.window_key, book=book),
    )


# --- exactly once a day ----------------------------------------------------------------------
