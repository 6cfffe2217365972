"""The evaluator: reads signals from the store, runs the pure rules, persists the outcome.

One transaction per target writes the new rule state, the changed incidents and the outbox
rows together, so a crash can never leave a page sent for an incident the database does not
know, nor an incident whose page was never queued. Dedup keys make a repeated evaluation
(two nodes, or a retry after a crash) insert nothing new.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.alerting.channels import Channel, route
from checker.alerting.drift_inputs import identities_of
from checker.alerting.drift_rule import Identity
from checker.alerting.maintenance import MaintenanceCalendar
from checker.alerting.messages import alert_message
from checker.alerting.outbox import enqueue
from checker.alerting.rules import evaluate
from checker.alerting.signals import ConfirmRequest, Policy, ProbeOutcome, Signals
from checker.alerting.slo import WindowCounts, is_bad, required_windows
from checker.alerting.state import AlertState, Incident
from checker.config.schema import Config, Target
from checker.redact import Redactor
from checker.store import baselines as store_baselines
from checker.store.db import one_of_param
from checker.store.models import AlertStateRow, IncidentRow, ProbeResultRow
from checker.store.queries.counts import RoundMemo, window_counts_many
from checker.store.upsert import upsert

__all__ = [
    "Context",
    "EvaluatorTask",
    "evaluate_targets",
    "window_signals",
]

log = logging.getLogger("checker.evaluator")

# SQLModel sets __table__ at class creation; its stubs do not declare it.
RESULTS: sa.Table = ProbeResultRow.__table__  # type: ignore[attr-defined]
STATES: sa.Table = AlertStateRow.__table__  # type: ignore[attr-defined]
INCIDENTS: sa.Table = IncidentRow.__table__  # type: ignore[attr-defined]


@dataclass
class Context:
    """What one evaluation round needs from the running service."""

    cfg: Config
    calendar: MaintenanceCalendar
    channels: list[Channel]
    redactor: Redactor
    spend_today: Callable[[str], float | None]
    cert_days_left: Callable[[str], float | None]
    # USD per million output tokens of a target's model (list or override); None: unknown.
    output_price: Callable[[str], float | None] = lambda _name: None
    # The length of a target's current Retry-After hold, 0 when not held.
    rate_limit_hold: Callable[[str], float] = lambda _name: 0.0
    # Nodes running now (at least the locations results come from): each probe's recent
    # results are read that many times deeper, so every location has its own streak.
    nodes: int = 1
    # The most one run of a target's probe may cost (target name, probe) -> USD or None.
    probe_cost_limit: Callable[[str, str], float | None] = lambda _name, _probe: None


# Built once: a statement object reused with new parameters skips SQLAlchemy's per-call
# construction and cache-key work, which was most of a flush round's cost (py-spy at 5,000
# probes/min: the evaluator thread was 18 % of the service's CPU).
_RECENT = (
    sa.select(
        RESULTS.c.started_at,
        RESULTS.c.ok,
        RESULTS.c.error,
        RESULTS.c.detail,
        RESULTS.c.location,
        RESULTS.c.cost_usd,
    )
    .where(RESULTS.c.target == sa.bindparam("target"), RESULTS.c.probe == sa.bindparam("probe"))
    .order_by(RESULTS.c.started_at.desc())
    .limit(sa.bindparam("n", type_=sa.Integer))
)
_STATES_OF = sa.select(STATES.c.target, STATES.c.state).where(
    one_of_param(STATES.c.target, "targets")
)
# Keeps each IN list well under every backend's bound-parameter limit.
_STATES_CHUNK = 500


def _recent(
    conn: sa.Connection, target: Target, probe: str, n: int, cfg: Config, redactor: Redactor
) -> list[Any]:
    rows = conn.execute(_RECENT, {"target": target.name, "probe": probe, "n": n}).all()
    slo = cfg.slo(target)
    out = []
    for r in reversed(rows):
        bad = is_bad(r.error, r.ok, slo)
        if bad is None:  # not a valid event for this SLO (e.g. an uncounted 429)
            continue
        # Details are redacted when probed; again here, as they go on into the rule state,
        # the incidents table and messages.
        detail = redactor(r.detail)
        out.append(
            ProbeOutcome(
                at=r.started_at,
                bad=bad,
                error=r.error,
                detail=detail,
                location=r.location or "",
                cost_usd=r.cost_usd,
            )
        )
    return out


def _latency_values(conn: sa.Connection, target: Target, cfg: Config) -> list[float] | None:
    rule = cfg.alerts(target).latency
    if rule.p95_above_ms is None:
        return None
    column = RESULTS.c[rule.metric]
    rows = conn.execute(
        sa.select(column)
        .where(RESULTS.c.target == target.name, RESULTS.c.ok.is_(True), column.is_not(None))
        .order_by(RESULTS.c.started_at.desc())
        .limit(rule.last)
    ).all()
    return [float(r[0]) for r in reversed(rows)]


_USAGE = (
    sa.select(RESULTS.c.completion_tokens, RESULTS.c.reasoning_tokens, RESULTS.c.counted_tokens)
    .where(
        RESULTS.c.target == sa.bindparam("target"),
        RESULTS.c.counted_tokens.is_not(None),
        RESULTS.c.completion_tokens.is_not(None),
    )
    .order_by(RESULTS.c.started_at.desc())
    .limit(sa.bindparam("n", type_=sa.Integer))
)


def _usage(conn: sa.Connection, target: Target, cfg: Config) -> list[tuple[int, int, int]] | None:
    """The last counted streams' (reported, reasoning, counted) tokens, oldest first."""
    rule = cfg.alerts(target).billing
    if not rule.enabled or target.kind == "http":  # nothing is streamed, nothing counted
        return None
    rows = conn.execute(_USAGE, {"target": target.name, "n": rule.last}).all()
    return [(int(c), int(r or 0), int(n)) for c, r, n in reversed(rows)]


def _stored_states(conn: sa.Connection, names: Sequence[str]) -> dict[str, Any]:
    """The stored rule state JSON of each named target that has one, in a few queries."""
    out: dict[str, Any] = {}
    for i in range(0, len(names), _STATES_CHUNK):
        chunk = list(names[i : i + _STATES_CHUNK])
        out.update((r.target, r.state) for r in conn.execute(_STATES_OF, {"targets": chunk}))
    return out


def window_signals(
    engine: Engine, cfg: Config, targets: Sequence[Target], now: datetime
) -> dict[str, dict[float, WindowCounts]]:
    """Counts for every window each target's SLO needs, a few grouped queries per round."""
    lengths: dict[tuple[float, bool], list[str]] = {}
    for t in targets:
        slo = cfg.slo(t)
        for length in required_windows(slo):
            lengths.setdefault((length, slo.count_rate_limited), []).append(t.name)
    out: dict[str, dict[float, WindowCounts]] = {t.name: {} for t in targets}
    memo: RoundMemo = {}  # the windows share their raw tail: its rounds are counted once
    for (length, count_rl), names in lengths.items():
        since = now - timedelta(seconds=length)
        counts = window_counts_many(engine, names, since, now, count_rl, memo)
        for name in names:
            valid, bad = counts.get(name, (0, 0))
            out[name][length] = WindowCounts(valid=valid, bad=bad)
    return out


def evaluate_targets(
    engine: Engine,
    ctx: Context,
    targets: Sequence[Target],
    now: datetime,
    *,
    windows: bool = True,
    counts: dict[str, dict[float, WindowCounts]] | None = None,
) -> list[ConfirmRequest]:
    """Evaluate targets and persist the outcome; returns probes to re-run for confirmation.

    With windows=False only the result-driven rules get data (the fast path after a flush);
    the rules without data keep their state, as rules.evaluate documents. `counts` are
    window_signals already read for this `now` (the service shares them with its gauges).

    Every target's inputs are read on one connection first; a target whose evaluation
    changes something is then written in its own transaction (state, incidents and outbox
    together). Most rounds change nothing and write nothing.
    """
    if windows and counts is None:
        counts = window_signals(engine, ctx.cfg, targets, now)
    signals = _read_signals(engine, ctx, targets, now, counts if windows else None)
    confirmations: list[ConfirmRequest] = []
    for target in targets:
        state, stored, target_signals = signals[target.name]
        confirmations += _evaluate_one(engine, ctx, target, now, state, stored, target_signals)
    return confirmations


def _read_signals(
    engine: Engine,
    ctx: Context,
    targets: Sequence[Target],
    now: datetime,
    counts: dict[str, dict[float, WindowCounts]] | None,
) -> dict[str, tuple[AlertState, Any, Signals]]:
    """Each target's stored state and its signals, read on one connection."""
    cfg = ctx.cfg
    out: dict[str, tuple[AlertState, Any, Signals]] = {}
    identities: dict[str, Identity] = {}
    adopt: dict[str, dict[str, str]] = {}
    with engine.connect() as conn:
        stored_states = _stored_states(conn, [t.name for t in targets])
        if counts is not None:  # identity moves slowly: the periodic rounds read it
            identities, adopt = identities_of(conn, cfg, targets)
        for target in targets:
            alerts = cfg.alerts(target)
            depth = (max(alerts.down.failures, alerts.down.recoveries) + 2) * max(1, ctx.nodes)
            windows = counts.get(target.name, {}) if counts is not None else None
            stored = stored_states.get(target.name)
            state = (
                AlertState.from_json(stored)
                if stored is not None
                else AlertState(target=target.name)
            )
            signals = Signals(
                recent={
                    p: _recent(conn, target, p, depth, cfg, ctx.redactor)
                    for p in target.probe_names
                },
                latency_values=_latency_values(conn, target, cfg) if windows is not None else None,
                windows=windows,
                spend_today_usd=ctx.spend_today(target.name) if windows is not None else None,
                cert_days_left=ctx.cert_days_left(target.name) if windows is not None else None,
                # Usage moves slowly: read on the periodic rounds, not after every flush.
                usage=_usage(conn, target, cfg) if windows is not None else None,
                output_usd_per_mtok=ctx.output_price(target.name),
                rate_limit_hold_s=ctx.rate_limit_hold(target.name),
                in_maintenance=ctx.calendar.active(target.name, now),
                identity=identities.get(target.name),
                probe_cost_limits={
                    p: limit
                    for p in target.probe_names
                    if (limit := ctx.probe_cost_limit(target.name, p)) is not None
                },
            )
            out[target.name] = (state, stored, signals)
    if adopt:
        with engine.begin() as conn:
            for name, values in adopt.items():
                store_baselines.adopt(conn, name, values, now)
    return out


def _evaluate_one(
    engine: Engine,
    ctx: Context,
    target: Target,
    now: datetime,
    state: AlertState,
    stored: Any,
    signals: Signals,
) -> list[ConfirmRequest]:
    cfg = ctx.cfg
    policy = Policy.for_target(cfg, target)
    result = evaluate(state, signals, policy, now)
    new_state = result.state.to_json()
    # Most rounds change nothing; rewriting the row anyway was a third of an evaluation's
    # cost at 5,000 probes/min (bench/capacity.py). updated_at is thus when the state last
    # changed.
    if new_state == stored and not result.changed and not result.notifications:
        return list(result.confirmations)
    with engine.begin() as conn:
        if new_state != stored:
            upsert(
                conn,
                STATES,
                {"target": target.name, "state": new_state, "updated_at": now},
                ["target"],
            )
        for incident in result.changed:
            upsert(conn, INCIDENTS, _incident_row(incident), ["key"])
        status_url = cfg.server.public_url if cfg.server else None
        for n in result.notifications:
            message = alert_message(n, ctx.redactor, status_url)
            channels = route(ctx.channels, n.tags, "alert")
            inserted = enqueue(conn, message, channels)
            if inserted:
                log.info("%s: queued %s %s to %d channels", n.target, n.kind, n.group, inserted)
            if not channels:
                log.warning("%s: %s %s has no channel to go to", n.target, n.kind, n.group)
    return list(result.confirmations)


def _incident_row(i: Incident) -> dict[str, Any]:
    doc = i.to_json()
    return {
        "key": i.id,
        "target": i.target,
        "rule_group": i.group,
        "severity": i.severity,
        "rules": list(i.all_rules),
        "state": "resolved" if i.resolved_at else "open",
        "opened_at": i.opened_at,
        "resolved_at": i.resolved_at,
        "last_notified_at": i.last_notice_at,
        "details": doc,
    }


class EvaluatorTask:
    """Runs evaluations off the event loop, one at a time, so rounds never overlap."""

    def __init__(self, engine: Engine, context: Callable[[], Context]) -> None:
        self.engine = engine
        self._context = context
        self._lock = asyncio.Lock()
        self.rounds = 0
        self.last_error: str | None = None

    async def run(
        self,
        targets: Sequence[str] | None = None,
        *,
        windows: bool = True,
        counts: dict[str, dict[float, WindowCounts]] | None = None,
        now: datetime | None = None,
    ) -> list[ConfirmRequest]:
        """One round; `counts` are window_signals already read at `now` (else read here)."""
        ctx = self._context()
        wanted = None if targets is None else set(targets)
        chosen = [t for t in ctx.cfg.targets if wanted is None or t.name in wanted]
        at = now or datetime.now(UTC)
        async with self._lock:
            try:
                confirmations = await asyncio.to_thread(
                    evaluate_targets, self.engine, ctx, chosen, at, windows=windows, counts=counts
                )
            except sa.exc.SQLAlchemyError as exc:
                # The database is away: nothing was written, the next round tries again.
                self.last_error = type(exc).__name__
                log.warning("evaluation skipped: database error %s", type(exc).__name__)
                return []
        self.rounds += 1
        self.last_error = None
        return confirmations
