"""The digest shell: read the period's figures from the store, hand them to the pure core.

`build` / `build_period` run every query the digest needs (status, window counts, spend,
incidents, token usage, hourly points), turn the answers into `TargetInputs` and call
`context.make_context`. Blocking: async callers run them in a thread.

The `digest_log` reads and writes (`claim_day`, `finish_day`, `day_status`) are the ledger
`checker.digest.send` keeps to send exactly once a day; its rules are written there.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from checker.alerting.slo import WindowCounts
from checker.config.schema import Config, Target
from checker.cost.prices import PriceBook, month_window, project_month_end
from checker.digest.context import make_context
from checker.digest.inputs import Figures, Hour, IncidentSpan, Spend, TargetInputs, Usage
from checker.digest.models import DigestContext
from checker.digest.period import Period
from checker.probes.base import ErrorKind
from checker.redact import Redactor
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

__all__ = [
    "RawOnlyFigures",
    "build",
    "build_period",
    "claim_day",
    "day_status",
    "finish_day",
    "hour_points",
    "incidents_touching",
    "latest_error_details",
    "model_key",
    "spend_many",
    "usage_and_error_details",
    "usage_samples",
]

log = logging.getLogger("checker.digest")

DIGEST_LOG = DigestLogRow.__table__  # type: ignore[attr-defined]
INCIDENTS = IncidentRow.__table__  # type: ignore[attr-defined]
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
) -> dict[str, list[IncidentSpan]]:
    """Incidents open at any moment of [since, until): opened before its end and not
    resolved before its start."""
    out: dict[str, list[IncidentSpan]] = {t: [] for t in targets}
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
                IncidentSpan(
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
