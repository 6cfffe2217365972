"""What the nodes of a fleet share through the database: who is running (a heartbeat row
per node) and which routes a Retry-After holds (one row per target, whoever saw the 429).

Blocking functions: the service calls them in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.store.models import NodeRow, RouteHoldRow
from checker.store.tables import DAILY, RAW, ROLLUPS
from checker.store.upsert import upsert

__all__ = [
    "LIVE_AFTER",
    "TICK_S",
    "Hold",
    "LocationFigures",
    "NodeInfo",
    "active_holds",
    "beat",
    "holds_at",
    "list_nodes",
    "locations_seen",
    "mark_stopped",
    "other_live_nodes",
    "per_location",
    "save_hold",
]

# Every node writes its heartbeat this often; one not seen for LIVE_AFTER (three beats)
# is gone: `checker nodes` shows it so, and the leader stops counting it.
TICK_S = 5.0
LIVE_AFTER = timedelta(seconds=3 * TICK_S)

NODES: sa.Table = NodeRow.__table__  # type: ignore[attr-defined]
HOLDS: sa.Table = RouteHoldRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node: str
    location: str
    version: str
    started_at: datetime
    last_seen: datetime
    leader: bool
    stopped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Hold:
    target: str
    held_until: datetime
    hold_s: float
    set_at: datetime
    set_by: str


def beat(engine: Engine, info: NodeInfo) -> None:
    """Write this node's heartbeat (insert the first time, then update)."""
    row = {
        "node": info.node,
        "location": info.location,
        "version": info.version,
        "started_at": info.started_at,
        "last_seen": info.last_seen,
        "leader": info.leader,
        "stopped_at": None,
    }
    with engine.begin() as conn:
        upsert(conn, NODES, row, ["node"])


def mark_stopped(engine: Engine, node: str, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            NODES.update().where(NODES.c.node == node).values(stopped_at=now, leader=False)
        )


def list_nodes(engine: Engine, *, since: datetime | None = None) -> list[NodeInfo]:
    """Nodes seen since `since` (all when None), by location then start time."""
    query = sa.select(NODES).order_by(NODES.c.location, NODES.c.started_at)
    if since is not None:
        query = query.where(NODES.c.last_seen >= since)
    with engine.connect() as conn:
        return [NodeInfo(**dict(r)) for r in conn.execute(query).mappings()]


def other_live_nodes(engine: Engine, node: str, now: datetime, within: timedelta) -> list[str]:
    """Other nodes that beat within `within` and did not say they stopped."""
    query = sa.select(NODES.c.node).where(
        NODES.c.node != node, NODES.c.last_seen >= now - within, NODES.c.stopped_at.is_(None)
    )
    with engine.connect() as conn:
        return [r.node for r in conn.execute(query)]


def save_hold(engine: Engine, hold: Hold) -> None:
    """Record a hold; an existing one that lasts longer is kept (holds only extend)."""
    with engine.begin() as conn:
        current = conn.execute(
            sa.select(HOLDS.c.held_until).where(HOLDS.c.target == hold.target)
        ).scalar()
        if current is not None and current >= hold.held_until:
            return
        upsert(
            conn,
            HOLDS,
            {
                "target": hold.target,
                "held_until": hold.held_until,
                "hold_s": hold.hold_s,
                "set_at": hold.set_at,
                "set_by": hold.set_by,
            },
            ["target"],
        )


def holds_at(conn: sa.Connection, now: datetime) -> dict[str, Hold]:
    """The holds in force at `now`, by target."""
    query = sa.select(HOLDS).where(HOLDS.c.held_until > now)
    return {r.target: Hold(**dict(r)) for r in conn.execute(query).mappings()}


def active_holds(engine: Engine, now: datetime) -> dict[str, Hold]:
    with engine.connect() as conn:
        return holds_at(conn, now)


def locations_seen(engine: Engine, since: datetime) -> list[str]:
    """Every location results were measured at since `since` (raw rows and rollups),
    sorted; "" stands for results without a location label."""
    raw = sa.select(sa.func.coalesce(RAW.location, "")).where(RAW.started_at >= since).distinct()
    hourly = sa.select(ROLLUPS.c.location).where(ROLLUPS.c.hour >= since).distinct()
    daily = sa.select(DAILY.c.location).where(DAILY.c.day >= since).distinct()
    with engine.connect() as conn:
        found = {r[0] for q in (raw, hourly, daily) for r in conn.execute(q)}
    return sorted(found)


@dataclass(frozen=True, slots=True)
class LocationFigures:
    """One probe of one target as one location measured it over a recent span."""

    location: str
    results: int
    ok: int
    last_ok: bool
    last_error: str | None


def per_location(
    engine: Engine, probes: dict[str, str], since: datetime
) -> dict[str, list[LocationFigures]]:
    """Per target, its probe `probes[target]` per location since `since` (by location).
    One grouped query for the counts, one ranked query for each location's newest result."""
    if not probes:
        return {}
    where = sa.and_(
        RAW.started_at >= since,
        sa.or_(*(sa.and_(RAW.target == t, RAW.probe == p) for t, p in probes.items())),
    )
    loc = sa.func.coalesce(RAW.location, "")
    counts = (
        sa.select(RAW.target, loc, sa.func.count(), sa.func.sum(sa.case((RAW.ok, 1), else_=0)))
        .where(where)
        .group_by(RAW.target, loc)
    )
    rank = (
        sa.func.row_number()
        .over(partition_by=(RAW.target, loc), order_by=(RAW.started_at.desc(), RAW.id.desc()))
        .label("rank")
    )
    ranked = (
        sa.select(RAW.target, loc.label("loc"), RAW.ok, RAW.error, rank).where(where).subquery()
    )
    newest = sa.select(ranked.c.target, ranked.c.loc, ranked.c.ok, ranked.c.error).where(
        ranked.c.rank == 1
    )
    with engine.connect() as conn:
        totals = {(t, lo): (int(n), int(good or 0)) for t, lo, n, good in conn.execute(counts)}
        last = {(t, lo): (bool(ok), err) for t, lo, ok, err in conn.execute(newest)}
    out: dict[str, list[LocationFigures]] = {}
    for (target, location), (n, good) in sorted(totals.items()):
        ok, error = last.get((target, location), (False, None))
        out.setdefault(target, []).append(LocationFigures(location, n, good, ok, error))
    return out
