"""What the status page, the JSON API and the incident list show, read from the store: the
I/O shell around checker.web.status_view (the pure view model).

Every function that takes an Engine blocks on the database: the web handlers call them
through asyncio.to_thread, so the event loop (which also runs the probes) never waits.

Text that came from probes is redacted again with the current config's secrets before it
leaves: a key that was rotated in after a result was stored is still masked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from checker.compare.build import DEFAULT_PROBE, compare_routes
from checker.compare.view import CompareView
from checker.config.schema import Config, Target
from checker.cost.prices import PriceBook, month_window, project_month_end
from checker.redact import Redactor
from checker.store.fleet import per_location
from checker.store.plan import as_utc
from checker.store.queries import page as page_queries
from checker.store.queries.counts import window_counts_many
from checker.store.queries.digest import spend_many
from checker.store.queries.page import IncidentView, current_states, daily_uptime, recent_results
from checker.store.queries.series import hourly_series_many
from checker.store.queries.status import status
from checker.web.heartbeat import BEATS
from checker.web.page_sections import SpendSummary, spend_summary
from checker.web.status_view import (
    DAYS,
    SPARK_HOURS,
    Budget,
    StatusPage,
    assemble_page,
    budget_groups,
    budgets_from_counts,
    count_rate_limited,
    redact_tree,
)

__all__ = ["INCIDENTS_LIMIT", "api_status", "budgets", "build_page", "heartbeat_since", "incidents"]

INCIDENTS_LIMIT = 200
HISTORY = 20  # incidents in the page's history
COMPARE_WINDOW = "24h"
# Heartbeat rows search back this many intervals per bar: room for holds, restarts and
# maintenance gaps without ranking the whole raw table.
_BEAT_HORIZON = 2


def heartbeat_since(cfg: Config, now: datetime) -> dict[datetime, list[str]]:
    """Where each target's newest BEATS results are searched from, targets grouped by it."""
    out: dict[datetime, list[str]] = {}
    for t in cfg.targets:
        since = now - timedelta(seconds=cfg.interval(t) * BEATS * _BEAT_HORIZON)
        out.setdefault(since, []).append(t.name)
    return out


def incidents(
    engine: Engine, redactor: Redactor, *, open_only: bool, limit: int = INCIDENTS_LIMIT
) -> list[IncidentView]:
    """Open incidents oldest first; or the newest `limit` incidents of any state, their
    details redacted with the current config's secrets."""
    return [
        replace(
            view,
            details=redact_tree(view.details, redactor),
            detail=redact_tree(view.detail, redactor),
        )
        for view in page_queries.incidents(engine, open_only=open_only, limit=limit)
    ]


def budgets(
    engine: Engine, cfg: Config, targets: Sequence[Target], now: datetime
) -> dict[str, Budget]:
    """Error budget over each target's SLO window; one pass per distinct (window, counting)."""
    counts: dict[str, tuple[int, int]] = {}
    for (window_s, rl), names in budget_groups(cfg, targets).items():
        since = now - timedelta(seconds=window_s)
        counts.update(window_counts_many(engine, names, since, now, count_rate_limited=rl))
    return budgets_from_counts(cfg, targets, counts)


def spend(
    engine: Engine,
    cfg: Config,
    now: datetime,
    book: PriceBook,
    compare: CompareView,
    open_incidents: Sequence[IncidentView],
) -> SpendSummary:
    """Probe spend today (the UTC day, as the spend cap counts it), this month (in the
    digest's timezone) and the month-end projection, as the digest computes them; two
    passes for every target."""
    tz = cfg.digest.timezone
    names = [t.name for t in cfg.targets]
    month_start, _ = month_window(now, tz)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = spend_many(engine, names, month_start, now)
    return spend_summary(
        cfg,
        priced={t.name: book.price_for(t, now) is not None for t in cfg.targets},
        today=spend_many(engine, names, day_start, now),
        month=month,
        projection={n: project_month_end(month[n].cost_usd, now, tz) for n in names},
        compare_flags={r.target: r.flags for g in compare.groups for r in g.routes},
        open_incidents=open_incidents,
    )


def build_page(engine: Engine, cfg: Config, now: datetime, days: int = DAYS) -> StatusPage:
    """Everything the status page shows, for every configured target."""
    now = as_utc(now)
    redactor = Redactor(cfg.secrets())
    book = PriceBook(cfg)
    compare = compare_routes(engine, cfg, now, COMPARE_WINDOW, DEFAULT_PROBE, book=book)
    open_incidents = incidents(engine, redactor, open_only=True)
    primaries = {t.name: t.primary for t in cfg.targets}
    names = [t.name for t in cfg.targets]
    rl = count_rate_limited(cfg)
    statuses = {
        s.target: s
        for s in status(engine, names, now, count_rate_limited=rl, layout=cfg.probe_layout())
    }
    states = current_states(
        engine, {n: statuses[n].last for n in names}, now, redactor, timedelta(days=days)
    )
    return assemble_page(
        cfg,
        now,
        days,
        uptime={n: statuses[n].uptime for n in names},
        states=states,
        bars=daily_uptime(engine, names, now, days, rl),
        open_incidents=open_incidents,
        budgets=budgets(engine, cfg, cfg.targets, now),
        # The charts draw each target's primary probe, as its headline figures do.
        sparks=hourly_series_many(
            engine,
            rl,
            now - timedelta(hours=SPARK_HOURS),
            now,
            probes=primaries,
        ),
        locations=per_location(engine, primaries, now - timedelta(hours=1)),
        recent=recent_results(engine, heartbeat_since(cfg, now), BEATS),
        history=incidents(engine, redactor, open_only=False, limit=HISTORY),
        spend=spend(engine, cfg, now, book, compare, open_incidents),
        compare=compare,
    )


def api_status(
    engine: Engine, cfg: Config, now: datetime, window: str = "24h"
) -> list[dict[str, Any]]:
    """What `checker status --json` prints for the same data and window, with any secret
    of the current config masked (probes redact before storing; this is the second line)."""
    rows = status(
        engine,
        [t.name for t in cfg.targets],
        now,
        main_window=window,
        count_rate_limited=count_rate_limited(cfg),
        layout=cfg.probe_layout(),
    )
    redactor = Redactor(cfg.secrets())
    return [redact_tree(r.to_json(), redactor) for r in rows]
