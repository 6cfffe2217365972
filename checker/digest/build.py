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
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.alerting.channels import Channel, load_channels, route
from checker.alerting.deliver import send
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
from checker.store.models import DigestLogRow, IncidentRow
from checker.store.queries import (
    Range,
    TargetStatus,
    hourly_series_many,
    json_rows,
    per_range,
    plan_for,
    status,
    window_counts_many,
)
from checker.store.rollup import (
    DAILY,
    DAY,
    HOUR,
    RAW,
    ROLLUPS,
    USAGE_FIELDS,
    as_utc,
    usage_filter,
)
from checker.store.upsert import insert_ignore_stmt

log = logging.getLogger("checker.digest")

DIGEST_LOG = DigestLogRow.__table__  # type: ignore[attr-defined]
INCIDENTS = IncidentRow.__table__  # type: ignore[attr-defined]
DELIVERED = "delivered"
_RATE_LIMITED = ErrorKind.rate_limited.value
_DETAIL_MAX = 300


# --- queries the status module does not answer -----------------------------------------------


def _read(conn: Connection) -> Connection:
    # One snapshot per answer on PostgreSQL: a rollup committed mid-query cannot count an
    # hour twice or not at all.
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def spend_many(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> dict[str, Spend]:
    """Probe spend and tokens per target over [since, until): daily rollups for whole rolled
    days, hourly rollups for the other whole rolled-up hours, raw rows for the rest (the
    status query's split). One statement per range: an OR of ranges makes SQLite read
    every row of every target."""
    since, until = as_utc(since), as_utc(until)
    if not targets:
        return {}
    cost = dict.fromkeys(targets, 0.0)
    counts = {t: [0, 0, 0] for t in targets}  # priced results, prompt and completion tokens
    with engine.connect() as raw_conn:
        conn = _read(raw_conn)
        plan = plan_for(conn, since, until, with_days=until - since >= DAY)
        parts: list[tuple[sa.Select[Any], Any, Sequence[Range]]] = []
        for table, period, ranges in (
            (ROLLUPS, ROLLUPS.c.hour, plan.rollup),
            (DAILY, DAILY.c.day, plan.daily),
        ):
            c = table.c
            sums = sa.select(
                c.target,
                sa.func.sum(c.cost_usd),
                sa.func.sum(c.cost_count),
                sa.func.sum(c.prompt_tokens),
                sa.func.sum(c.completion_tokens),
            )
            parts.append((sums.where(c.target.in_(targets)).group_by(c.target), period, ranges))
        raw_sums = sa.select(
            RAW.target,
            sa.func.sum(RAW.cost_usd),
            sa.func.count(RAW.cost_usd),
            sa.func.sum(RAW.prompt_tokens),
            sa.func.sum(RAW.completion_tokens),
        )
        parts.append(
            (raw_sums.where(RAW.target.in_(targets)).group_by(RAW.target), RAW.started_at, plan.raw)
        )
        for query, column, ranges in parts:
            for target, dollars, *numbers in per_range(conn, query, column, ranges):
                cost[target] += float(dollars or 0.0)
                for i, n in enumerate(numbers):
                    counts[target][i] += int(n or 0)
    return {t: Spend(cost[t], *counts[t]) for t in targets}


def incidents_touching(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> dict[str, list[Incident]]:
    """Incidents open at any moment of [since, until): opened before its end and not
    resolved before its start."""
    out: dict[str, list[Incident]] = {t: [] for t in targets}
    c = INCIDENTS.c
    query = sa.select(
        c.target, c.rule_group, c.severity, c.rules, c.opened_at, c.resolved_at
    ).where(
        c.target.in_(targets),
        c.opened_at < until,
        sa.or_(c.resolved_at.is_(None), c.resolved_at >= since),
    )
    with engine.connect() as conn:
        for target, group, severity, rules, opened, resolved in conn.execute(query):
            out[target].append(
                Incident(
                    rule_group=group,
                    severity=severity,
                    rules=tuple(rules or ()),
                    opened_at=as_utc(opened),
                    resolved_at=as_utc(resolved) if resolved is not None else None,
                )
            )
    return out


@dataclass
class RawOnlyFigures:
    """What the digest once read from raw rows only, per target: distinct usages (token
    honesty) with their number of results, and the newest detail of each error kind."""

    usage: dict[str, Counter[Usage]]
    error_details: dict[str, dict[str, str]]


_Latest = dict[str, dict[str, tuple[datetime, str | None]]]


def _keep_newest(latest: _Latest, target: str, kind: str, at: datetime, detail: Any) -> None:
    # Later wins on a tie: rows arrive oldest first within each source.
    seen = latest[target].get(kind)
    if seen is None or at >= seen[0]:
        latest[target][kind] = (at, detail)


def usage_and_error_details(
    engine: Engine, targets: Sequence[str], since: datetime, until: datetime
) -> RawOnlyFigures:
    """Token-honesty usages and the newest error detail per kind, over [since, until).

    Whole rolled-up hours come from the rollups' `usage_counts` and `error_details`; the
    partial hours, the hours not rolled up yet, and hours rolled up before those columns
    existed (NULL) from raw rows. So a period older than raw retention has figures only for
    hours rolled up since migration 0005.
    """
    since, until = as_utc(since), as_utc(until)
    out = RawOnlyFigures({t: Counter() for t in targets}, {t: {} for t in targets})
    latest: _Latest = {t: {} for t in targets}
    if not targets:
        return out
    with engine.connect() as raw_conn:
        conn = _read(raw_conn)
        plan = plan_for(conn, since, until, with_days=False)
        c = ROLLUPS.c
        stmt = sa.select(
            c.hour,
            c.target,
            sa.cast(c.usage_counts, sa.Text),
            sa.cast(c.error_details, sa.Text),
        ).where(c.target.in_(targets))
        rows = json_rows(list(per_range(conn, stmt, c.hour, plan.rollup)), 2)
        # All rows of an hour are written by one rollup: NULL in one means NULL in all.
        missing = {as_utc(row[0]) for row in rows if row[2] is None or row[3] is None}
        for hour, target, counts, details in rows:
            if as_utc(hour) in missing:
                continue
            usage = out.usage[target]
            for completion, reasoning, chars, counted, n in counts:
                usage[Usage(completion, reasoning or 0, chars, counted)] += n
            for kind, (at, detail) in details.items():
                _keep_newest(latest, target, kind, datetime.fromisoformat(at), detail)
        raw_ranges = _joined([*plan.raw, *((max(since, h), min(until, h + HOUR)) for h in missing)])
        _raw_usage(conn, targets, raw_ranges, out.usage)
        _raw_error_details(conn, targets, raw_ranges, latest)
    for target, kinds in latest.items():
        for kind, (_, detail) in sorted(kinds.items()):
            if detail:
                out.error_details[target][kind] = detail[:_DETAIL_MAX]
    return out


def _joined(ranges: Sequence[Range]) -> list[Range]:
    """Sorted, with touching ranges joined: one statement each."""
    out: list[Range] = []
    for start, end in sorted(ranges):
        if out and out[-1][1] >= start:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _raw_usage(
    conn: Connection,
    targets: Sequence[str],
    ranges: Sequence[Range],
    usage: dict[str, Counter[Usage]],
) -> None:
    # Grouped in SQL: a probe's answers repeat, so a day of 200 targets (288,000 rows) comes
    # back as a few thousand distinct rows.
    query = (
        sa.select(RAW.target, *USAGE_FIELDS, sa.func.count())
        .where(RAW.target.in_(targets), usage_filter())
        .group_by(RAW.target, *USAGE_FIELDS)
    )
    for target, completion, reasoning, chars, counted, n in per_range(
        conn, query, RAW.started_at, ranges
    ):
        usage[target][Usage(int(completion), int(reasoning or 0), int(chars), counted)] += int(n)


def _raw_error_details(
    conn: Connection, targets: Sequence[str], ranges: Sequence[Range], latest: _Latest
) -> None:
    for start, end in ranges:
        newest = (
            sa.select(RAW.target, RAW.error, sa.func.max(RAW.started_at).label("at"))
            .where(
                RAW.target.in_(targets),
                RAW.started_at >= start,
                RAW.started_at < end,
                RAW.error.is_not(None),
            )
            .group_by(RAW.target, RAW.error)
            .subquery()
        )
        query = (
            sa.select(RAW.target, RAW.error, RAW.started_at, RAW.detail)
            .join(
                newest,
                sa.and_(
                    RAW.target == newest.c.target,
                    RAW.error == newest.c.error,
                    RAW.started_at == newest.c.at,
                ),
            )
            .order_by(RAW.started_at, RAW.id)
        )
        for target, error, at, detail in conn.execute(query):
            _keep_newest(latest, target, error, as_utc(at), detail)


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


def claim_day(engine: Engine, day: str, timezone: str) -> bool:
    """Take the day's digest for this process: a new row, or a failed one taken back.

    RETURNING says whether this statement wrote the row; a rowcount would not (PostgreSQL
    reports -1 for inserts under SQLAlchemy 2.1).
    """
    row = {"day": day, "timezone": timezone, "status": "pending", "sent_at": None}
    with engine.begin() as conn:
        insert = insert_ignore_stmt(conn, DIGEST_LOG, ["day"]).returning(DIGEST_LOG.c.id)
        if conn.execute(insert, row).first() is not None:
            return True
        retake = (
            DIGEST_LOG.update()
            .where(DIGEST_LOG.c.day == day, DIGEST_LOG.c.status == "failed")
            .values(status="pending")
            .returning(DIGEST_LOG.c.id)
        )
        return conn.execute(retake).first() is not None


def finish_day(engine: Engine, day: str, sent: bool, at: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            DIGEST_LOG.update()
            .where(DIGEST_LOG.c.day == day)
            .values(status="sent" if sent else "failed", sent_at=at if sent else None)
        )


def day_status(engine: Engine, day: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(DIGEST_LOG.c.status).where(DIGEST_LOG.c.day == day)
        ).scalar_one_or_none()


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
