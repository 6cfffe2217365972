"""The daily digest: queries -> context (checker.digest_context) -> HTML/text/markdown -> Apprise.

Sending exactly once per local day, across restarts and nodes, rests on the `digest_log`
table (one row per local day, unique):
- `run_scheduled` claims the day by inserting its row as `pending` (insert-or-ignore);
  only the process whose insert went in sends. A row left `failed` can be claimed again
  by the next call for the same day (an atomic UPDATE failed -> pending), so a digest that
  could not be delivered is retried whenever the scheduler calls again that day (after a
  restart, or a later catch-up run), and never after the day is over.
- After sending the row becomes `sent` when at least one channel accepted the digest, else
  `failed`. A partly delivered digest counts as sent: retrying it would send a second copy
  to the channels that did get it; the failed channels are logged.
- A process killed between the claim and the end of sending leaves the row `pending`, and
  that day is not retried automatically (a duplicate is worse than a missing digest here);
  `checker digest --send` sends one by hand, without touching the log.

Email channels get the HTML digest. Apprise's email plugin builds the multipart/alternative
itself: its text/plain part is Apprise's own conversion of the HTML (apprise.conversion), not
templates/digest.txt.j2, because the plugin has no way to take a separate text part. The
plain-text template is sent to email channels configured with `?format=text`, and written
by `--preview FILE.txt`. Chat channels get the short markdown summary.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import css_inline
import jinja2
from sqlalchemy.engine import Engine

from checker.alerting.outbox import Channel, load_channels, route, send
from checker.alerting.slo import WindowCounts
from checker.config.schema import Config, Target
from checker.cost.prices import PriceBook, month_window, project_month_end
from checker.digest.context import (
    DigestContext,
    Figures,
    Hour,
    Incident,
    Period,
    Spend,
    TargetInputs,
    Usage,
    make_context,
    scheduled_period,
)
from checker.probes.base import ErrorKind
from checker.redact import Redactor
from checker.render import human_duration, templates_dir
from checker.store.digest_log import claim_day, finish_day
from checker.store.plan import as_utc
from checker.store.queries import digest as read
from checker.store.queries.series import hourly_series_many
from checker.store.queries.status import TargetStatus, status, window_counts_many

log = logging.getLogger("checker.digest")

DELIVERED = "delivered"
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
) -> dict[str, list[Incident]]:
    """Incidents open at any moment of [since, until)."""
    spans = read.incidents_touching(engine, targets, since, until)
    return {t: [Incident(*span) for span in mine] for t, mine in spans.items()}


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
    """The chart: one point per hour start in [floor_hour(since), until) for every target,
    empty hours included."""
    series = hourly_series_many(engine, count_rate_limited, since, until, ttft=False)
    return {
        target: [Hour(p.hour, p.valid, p.good, p.latency_p50) for p in points]
        for target, points in series.items()
    }


# --- building the context --------------------------------------------------------------------


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
    )


# --- rendering -------------------------------------------------------------------------------


def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms"


def fmt_num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_usd(value: float | None, none: str = "no price") -> str:
    """Dollars with three significant digits for small sums (probes cost fractions of a cent)."""
    if value is None:
        return none
    if value == 0:
        return "$0.00"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    digits = min(2 - math.floor(math.log10(abs(value))), 10)
    return f"${value:.{digits}f}"


def fmt_tokens(value: int | None) -> str:
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return str(value)


def fmt_change(change: Any) -> str:
    """`▲ 12%`, `▼ 0.30 pp`, `=`; `-` when one side has no data."""
    if change.direction is None:
        return "-"
    if change.direction == "same":
        return "="
    if change.metric == "uptime":
        return f"{change.arrow} {abs(change.delta) * 100:.2f} pp"
    if change.delta == float("inf"):
        return f"{change.arrow} new"
    return f"{change.arrow} {abs(change.delta) * 100:.0f}%"


def fmt_metric(value: float | None, metric: str) -> str:
    """A change row's current value in its own unit."""
    if metric == "uptime":
        return fmt_pct(value)
    if metric == "spend":
        return fmt_usd(value)
    if metric == "tokens/s":
        return fmt_num(value)
    return fmt_ms(value)


def fmt_local(at: datetime | None, timezone: str, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return "-" if at is None else at.astimezone(ZoneInfo(timezone)).strftime(pattern)


def sparkline(values: Sequence[float | None]) -> str:
    """Text bars for the plain-text part: one block a value, '.' for no data."""
    blocks = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
    out = []
    for v in values:
        out.append("." if v is None else blocks[min(int(v * (len(blocks) - 1) + 0.5), 7)])
    return "".join(out)


@functools.cache
def _environment(autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        pct=fmt_pct,
        ms=fmt_ms,
        num=fmt_num,
        usd=fmt_usd,
        tokens=fmt_tokens,
        change=fmt_change,
        metric=fmt_metric,
        local=fmt_local,
        duration=human_duration,
        sparkline=sparkline,
    )
    return env


_INLINER = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)


def render_html(ctx: DigestContext, status_url: str | None = None) -> str:
    """The HTML digest with its CSS inlined (mail clients drop <style> blocks)."""
    html = _environment(True).get_template("digest.html.j2").render(ctx=ctx, status_url=status_url)
    return _INLINER.inline(html)


def render_text(ctx: DigestContext, status_url: str | None = None) -> str:
    return _environment(False).get_template("digest.txt.j2").render(ctx=ctx, status_url=status_url)


def render_chat(ctx: DigestContext, status_url: str | None = None) -> str:
    return (
        _environment(False).get_template("digest_chat.md.j2").render(ctx=ctx, status_url=status_url)
    )


# --- sending ---------------------------------------------------------------------------------


def _wants_text(channel: Channel) -> bool:
    query = dict(parse_qsl(urlsplit(channel.url).query))
    return query.get("format", "").lower() == "text"


def public_status_url(cfg: Config) -> str | None:
    return cfg.server.public_url if cfg.server and cfg.server.public_url else None


def digest_channels(cfg: Config) -> list[Channel]:
    return route(load_channels(cfg), cfg.digest.tags, "digest")


async def send_now(engine: Engine, cfg: Config, ctx: DigestContext) -> dict[str, str]:
    """Send `ctx` to every channel tagged for the digest: channel label -> "delivered" or a
    secret-free error. Does not consult or write the digest log (`run_scheduled` does)."""
    del engine  # the digest goes out directly, not through the outbox
    redact = Redactor(cfg.secrets())
    status_url = public_status_url(cfg)
    bodies = {
        "html": redact.text(render_html(ctx, status_url)),
        "text": redact.text(render_text(ctx, status_url)),
        "markdown": redact.text(render_chat(ctx, status_url)),
    }
    title = redact.text(ctx.title)
    notify_type = "info" if ctx.ok else "warning"

    async def one(channel: Channel) -> tuple[str, str]:
        if channel.is_email:
            body_format = "text" if _wants_text(channel) else "html"
        else:
            body_format = "markdown"
        try:
            error = await send(channel, title, bodies[body_format], body_format, notify_type)
        except Exception as exc:  # a plugin bug must not stop the other channels
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            log.info("digest delivered to %s", channel.label)
            return channel.label, DELIVERED
        error = redact.text(error)
        log.warning("digest to %s failed: %s", channel.label, error)
        return channel.label, error

    results = await asyncio.gather(*(one(ch) for ch in digest_channels(cfg)))
    return dict(results)


# --- exactly once a day ----------------------------------------------------------------------


async def run_scheduled(
    engine: Engine, cfg: Config, now: datetime, *, prices: PriceBook | None = None
) -> bool:
    """The scheduler's job: send the digest due at `now` unless this day's went out already.

    True when this call delivered it (to at least one channel). Safe to call more often
    than once a day, on several nodes: calls before the day's send time, for a day already
    sent or being sent, or with no digest channel configured do nothing.
    """
    due = scheduled_period(now, cfg.digest.at, cfg.digest.timezone)
    if due is None:
        return False
    day, period = due
    day_text = day.isoformat()
    if not digest_channels(cfg):
        log.warning("digest: no notify channel is tagged %s", ", ".join(cfg.digest.tags))
        return False
    if not await asyncio.to_thread(claim_day, engine, day_text, cfg.digest.timezone):
        return False
    try:
        ctx = await asyncio.to_thread(build_period, engine, cfg, period, prices=prices, now=now)
    except Exception as exc:
        log.error("digest for %s could not be built: %s", day_text, type(exc).__name__)
        await asyncio.to_thread(finish_day, engine, day_text, False, now)
        return False
    results = await send_now(engine, cfg, ctx)
    sent = any(outcome == DELIVERED for outcome in results.values())
    await asyncio.to_thread(finish_day, engine, day_text, sent, datetime.now(UTC))
    return sent
