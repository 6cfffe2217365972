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
from checker.store.upsert import upsert

__all__ = [
    "Hold",
    "NodeInfo",
    "active_holds",
    "beat",
    "holds_at",
    "list_nodes",
    "mark_stopped",
    "other_live_nodes",
    "save_hold",
]

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
