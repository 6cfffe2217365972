"""The database tables (SQLModel), ProbeResult <-> row, and syncing targets from the config.

Timestamps are stored in UTC and always come back timezone-aware (UtcDateTime), on
SQLite as well as PostgreSQL. Every constraint and index has an explicit name so Alembic
batch migrations on SQLite can find them again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel, select

from checker.config.schema import Config, Target
from checker.probes.base import TRANSIENT_FIELDS, ErrorKind, ProbeResult, utcnow
from checker.redact import Redactor
from checker.store.upsert import insert_ignore

__all__ = [
    "AlertStateRow",
    "BaselineRow",
    "BigIntPK",
    "DailyRollupRow",
    "DigestLogRow",
    "IncidentRow",
    "NodeRow",
    "OutboxRow",
    "ProbeResultRow",
    "RolledDayRow",
    "RolledHourRow",
    "RollupMeasures",
    "RollupRow",
    "RouteHoldRow",
    "TargetRow",
    "UtcDateTime",
    "WindowSketchRow",
    "public_base_url",
    "result_to_row",
    "row_to_result",
    "sync_targets",
]


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops offsets silently)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            # Naive values are taken as UTC: that is all this project ever produces.
            return value if dialect.name == "sqlite" else value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# A 64-bit key on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the auto-increment rowid.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class TargetRow(SQLModel, table=True):
    """A configured target, synced from the config by name; kept (retired) once removed."""

    __tablename__ = "targets"
    __table_args__ = (sa.UniqueConstraint("name", name="uq_targets_name"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str
    kind: str
    # Scheme, host and path only: credentials and query strings are stripped before storing.
    base_url: str
    model: str | None = None
    tags: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    # The SLO's fleet rounds (checker.store.fleet_rounds): the probe interval, and the down
    # rule's quorum as a number of locations or a share (both NULL: a majority).
    interval_s: float | None = None
    quorum_locations: int | None = None
    quorum_share: float | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class ProbeResultRow(SQLModel, table=True):
    """One probe result: every ProbeResult field, plus maintenance and a unique result_uid."""

    __tablename__ = "probe_results"
    __table_args__ = (
        sa.UniqueConstraint("result_uid", name="uq_probe_results_result_uid"),
        sa.Index("ix_probe_results_target_started_at", "target", "started_at"),
        sa.Index("ix_probe_results_started_at", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    # Assigned when the result is queued: a retried batch insert can never duplicate a row.
    result_uid: str = Field(sa_type=sa.String(36))
    target: str
    probe: str
    started_at: datetime = Field(sa_type=UtcDateTime)
    ok: bool
    error: str | None = None
    status: int | None = None
    latency_ms: float | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None
    retry_after_s: float | None = None
    detail: str | None = Field(default=None, sa_type=sa.Text)
    chunks: int | None = None
    max_gap_ms: float | None = None
    output_chars: int | None = None
    counted_tokens: int | None = None
    location: str | None = None
    ttfo_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    prefill_tokens_per_s: float | None = None
    system_fingerprint: str | None = None
    signature: str | None = None
    # The probe ran inside a maintenance window: kept, but excluded from SLOs.
    maintenance: bool = False


class RollupMeasures(SQLModel):
    """What a rollup row holds for one target x probe x location over its period.

    `sli_ok_count` and `sli_rate_limited_count` count results outside maintenance windows:
    the SLO inputs. The sketches hold successful results outside maintenance only (a
    timeout's 30 s is an availability problem, not a latency figure). Sums and `errors`
    cover every result, maintenance or not.
    """

    target: str
    probe: str
    # "" when results carry no location label (NULL would defeat the unique key).
    location: str = ""
    total: int = 0
    ok_count: int = 0
    maintenance_count: int = 0
    sli_ok_count: int = 0
    sli_rate_limited_count: int = 0
    errors: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON)
    latency_sketch: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    ttft_sketch: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    tokens_per_s_sketch: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # First answer token and inter-chunk gaps (each result's ITL p50), as the TTFT sketch.
    ttfo_sketch: dict[str, Any] = Field(
        default_factory=dict, sa_type=sa.JSON, sa_column_kwargs={"server_default": "{}"}
    )
    itl_sketch: dict[str, Any] = Field(
        default_factory=dict, sa_type=sa.JSON, sa_column_kwargs={"server_default": "{}"}
    )
    cost_usd: float = 0.0
    cost_count: int = 0
    prompt_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    completion_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cached_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    reasoning_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    # The (target, probe)'s events in fleet rounds (checker.store.fleet_rounds), with rate
    # limits counted and left out, held by the row of its first location in sort order (0
    # on the others, so sums over locations are right). NULL: rolled up before 0011.
    fleet_valid: int | None = None
    fleet_bad: int | None = None
    fleet_valid_no_rl: int | None = None
    fleet_bad_no_rl: int | None = None


# Covers the count columns: long-window uptime sums never touch the wide sketch rows.
_COUNT_COLUMNS = (
    "total",
    "maintenance_count",
    "sli_ok_count",
    "sli_rate_limited_count",
    "fleet_valid",
    "fleet_bad",
    "fleet_valid_no_rl",
    "fleet_bad_no_rl",
)


class RollupRow(RollupMeasures, table=True):
    """One hour (UTC), recomputed from raw rows."""

    __tablename__ = "rollups"
    __table_args__ = (
        sa.UniqueConstraint("hour", "target", "probe", "location", name="uq_rollups_key"),
        sa.Index("ix_rollups_target_hour_counts", "target", "hour", *_COUNT_COLUMNS),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    hour: datetime = Field(sa_type=UtcDateTime)
    # For the digest, so a day needs no raw scan. NULL: the hour was rolled up before these
    # columns existed (migration 0005); readers then take the hour from raw rows.
    # usage_counts: [completion, reasoning, output_chars, counted, n] per distinct usage of
    # successful results that reported completion tokens and a text length.
    usage_counts: list[list[int | None]] | None = Field(default=None, sa_type=sa.JSON)
    # The newest detail of each error kind: {kind: [ISO started_at, detail]}.
    error_details: dict[str, list[str | None]] | None = Field(default=None, sa_type=sa.JSON)


class DailyRollupRow(RollupMeasures, table=True):
    """One UTC day, the exact sum of its 24 hourly rows: a month's percentiles merge 30
    sketches per target instead of 720. Exists only while all 24 hours are rolled up and
    unchanged since (re-rolling an hour deletes its day's rows in the same transaction)."""

    __tablename__ = "rollups_daily"
    __table_args__ = (
        sa.UniqueConstraint("day", "target", "probe", "location", name="uq_rollups_daily_key"),
        sa.Index("ix_rollups_daily_target_day_counts", "target", "day", *_COUNT_COLUMNS),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigIntPK)
    day: datetime = Field(sa_type=UtcDateTime)


class RolledHourRow(SQLModel, table=True):
    """Which hours have rollups, and whether their raw rows were (partly) pruned since.

    Queries read rollups only for hours listed here and raw rows for every other hour, so
    an hour not yet rolled up is never missing from a window.
    """

    __tablename__ = "rolled_hours"

    hour: datetime = Field(primary_key=True, sa_type=UtcDateTime)
    rolled_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    raw_pruned: bool = False


class RolledDayRow(SQLModel, table=True):
    """Which days have daily rollups (see DailyRollupRow)."""

    __tablename__ = "rolled_days"

    day: datetime = Field(primary_key=True, sa_type=UtcDateTime)
    rolled_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class WindowSketchRow(SQLModel, table=True):
    """One target x probe's rollups merged over a run of whole periods [since, until) of one kind
    ("day": daily rollups, "hour": hourly ones): the runs that the 24h, 7d and 30d windows
    of the current hour read, kept by the rollup job, so `status` reads one row per target
    and run instead of one per day or hour. Valid while the run's rolled periods are still
    `periods` in number with newest `rolled_at` (re-rolling one changes that); otherwise
    readers merge the rollup rows themselves."""

    __tablename__ = "window_sketches"

    kind: str = Field(primary_key=True)
    target: str = Field(primary_key=True)
    probe: str = Field(primary_key=True)
    since: datetime = Field(primary_key=True, sa_type=UtcDateTime)
    until: datetime = Field(primary_key=True, sa_type=UtcDateTime)
    periods: int
    rolled_at: datetime = Field(sa_type=UtcDateTime)
    errors: dict[str, int] = Field(default_factory=dict, sa_type=sa.JSON)
    latency_sketch: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    ttft_sketch: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    tokens_per_s_sketch: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    ttfo_sketch: dict[str, Any] = Field(
        default_factory=dict, sa_type=sa.JSON, sa_column_kwargs={"server_default": "{}"}
    )
    itl_sketch: dict[str, Any] = Field(
        default_factory=dict, sa_type=sa.JSON, sa_column_kwargs={"server_default": "{}"}
    )


class IncidentRow(SQLModel, table=True):
    __tablename__ = "incidents"
    __table_args__ = (
        sa.UniqueConstraint("key", name="uq_incidents_key"),
        sa.Index("ix_incidents_target_state", "target", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The alert engine's own incident id (upserts go by it); unique when set.
    key: str | None = None
    target: str
    rule_group: str  # e.g. down, latency, burn, budget, spend, cert
    severity: str  # page | ticket
    rules: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    state: str = "open"  # open | resolved
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_notified_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class AlertStateRow(SQLModel, table=True):
    """The alert rules' state per target (JSON owned by checker.rules), kept across restarts."""

    __tablename__ = "alert_states"

    target: str = Field(primary_key=True)
    state: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        sa.UniqueConstraint("dedup_key", name="uq_outbox_dedup_key"),
        sa.Index("ix_outbox_pending", "delivered_at", "failed_at", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str
    channel: str | None = None  # which configured channel delivers it
    kind: str | None = None  # what the message is about (alert, digest, test, ...)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    tags: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    notify_type: str = "info"  # apprise: info | success | warning | failure
    title: str
    body: str = Field(sa_type=sa.Text)
    body_format: str = "text"  # text | markdown | html
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UtcDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    failed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    claimed_by: str | None = None
    claimed_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    deadline_at: datetime | None = Field(default=None, sa_type=UtcDateTime)  # then give up


class DigestLogRow(SQLModel, table=True):
    __tablename__ = "digest_log"
    __table_args__ = (sa.UniqueConstraint("day", name="uq_digest_log_day"),)

    id: int | None = Field(default=None, primary_key=True)
    day: str  # local date, YYYY-MM-DD, in `timezone`
    timezone: str
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    status: str = "pending"  # pending | sent | failed


class BaselineRow(SQLModel, table=True):
    """What a route is accepted to serve: its system fingerprint, returned model and
    identity signature, for the `drift` rule. The first value seen is adopted; an operator
    accepts a new one with `checker baseline --accept`."""

    __tablename__ = "baselines"

    target: str = Field(primary_key=True)
    field: str = Field(primary_key=True)  # system_fingerprint | model | signature
    value: str
    accepted_at: datetime = Field(sa_type=UtcDateTime)
    accepted_by: str  # "first seen" or "operator"


class NodeRow(SQLModel, table=True):
    """One running `checker run` process: its heartbeat, for `checker nodes` and takeover."""

    __tablename__ = "nodes"

    node: str = Field(primary_key=True)  # host:pid:start, unique per process
    location: str
    version: str
    started_at: datetime = Field(sa_type=UtcDateTime)
    last_seen: datetime = Field(sa_type=UtcDateTime)
    leader: bool = False
    stopped_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class RouteHoldRow(SQLModel, table=True):
    """A Retry-After hold on a target, shared by every node and kept across restarts."""

    __tablename__ = "route_holds"

    target: str = Field(primary_key=True)
    held_until: datetime = Field(sa_type=UtcDateTime)
    hold_s: float
    set_at: datetime = Field(sa_type=UtcDateTime)
    set_by: str  # the location whose probe saw the 429


# --- ProbeResult <-> row ------------------------------------------------------------------

_RESULT_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(ProbeResult) if f.name not in TRANSIENT_FIELDS
)
_FLOAT_FIELDS = tuple(n for n in _RESULT_FIELDS if n.endswith(("_ms", "_s", "_usd")))
_TEXT_FIELDS = ("target", "probe", "model", "detail", "location")
_DETAIL_MAX = 1000


def result_to_row(result: ProbeResult, *, uid: str, maintenance: bool = False) -> dict[str, Any]:
    """The column values of one probe_results row (a plain dict, for bulk inserts)."""
    row: dict[str, Any] = {name: getattr(result, name) for name in _RESULT_FIELDS}
    # NaN/inf are not measurements, and PostgreSQL rejects NUL in text: neither may block
    # a batch.
    for name in _FLOAT_FIELDS:
        value = row[name]
        if value is not None and not math.isfinite(value):
            row[name] = None
    for name in _TEXT_FIELDS:
        value = row[name]
        if value and "\x00" in value:
            row[name] = value.replace("\x00", "")
    if isinstance(row["error"], ErrorKind):
        row["error"] = row["error"].value
    detail = row["detail"]
    if detail is not None and len(detail) > _DETAIL_MAX:
        row["detail"] = detail[:_DETAIL_MAX]
    started = row["started_at"]
    if started.tzinfo is None:
        row["started_at"] = started.replace(tzinfo=UTC)
    row["ok"] = bool(row["ok"])
    row["result_uid"] = uid
    row["maintenance"] = maintenance
    return row


def row_to_result(row: Any) -> ProbeResult:
    """A ProbeResult from a probe_results row (ORM object or Core row with those columns)."""
    values = {name: getattr(row, name) for name in _RESULT_FIELDS}
    error = values["error"]
    if error is not None:
        # A kind from a newer version stays a string rather than being lost.
        with contextlib.suppress(ValueError):
            values["error"] = ErrorKind(error)
    return ProbeResult(**values)


# --- targets <- config ----------------------------------------------------------------------


def public_base_url(url: str, redact: Redactor | None = None) -> str:
    """The URL without credentials, query or fragment (keys hide in all three)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return redact.text(clean) if redact else clean


def _round_settings(cfg: Config, target: Target) -> dict[str, Any]:
    quorum = cfg.alerts(target).down.quorum
    return {
        "interval_s": cfg.interval(target),
        "quorum_locations": quorum if isinstance(quorum, int) else None,
        "quorum_share": quorum if isinstance(quorum, float) else None,
    }


def sync_targets(db: Session | Engine, cfg: Config, now: datetime | None = None) -> None:
    """Upsert every configured target by name and retire the others (a returning target is
    un-retired, same row). Commits. Takes a Session, or an Engine to open one on."""
    if isinstance(db, Engine):
        with Session(db) as session:
            sync_targets(session, cfg, now)
        return
    session = db
    now = now or utcnow()
    redact = Redactor(cfg.secrets())
    existing = {row.name: row for row in session.exec(select(TargetRow))}
    for target in cfg.targets:
        values: dict[str, Any] = {
            "kind": target.kind,
            "base_url": public_base_url(target.base_url, redact),
            "model": target.model,
            "tags": list(target.tags),
            **_round_settings(cfg, target),
        }
        row = existing.pop(target.name, None)
        if row is None:
            # Insert-or-ignore: nodes of a fleet start together, and a second insert of the
            # same name must not stop a node from starting (it carries the same config).
            insert_ignore(
                session.connection(),
                TargetRow.__table__,  # type: ignore[attr-defined]
                [{"name": target.name, "created_at": now, "updated_at": now, **values}],
                ["name"],
            )
            continue
        changed = row.retired_at is not None or any(
            getattr(row, key) != value for key, value in values.items()
        )
        if changed:
            for key, value in values.items():
                setattr(row, key, value)
            row.retired_at = None
            row.updated_at = now
            session.add(row)
    for row in existing.values():
        if row.retired_at is None:
            row.retired_at = now
            row.updated_at = now
            session.add(row)
    session.commit()
