"""`checker nodes`: the nodes of the fleet, from their heartbeat rows.

A node is "up" while it beats (every 5 s), "stopped" once it said so, "gone" when its
heartbeat is older than three ticks without a stop (killed, or cut off from the database).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from checker.cli.config_file import load_or_report
from checker.cli.table import Cell, Column
from checker.cli.table import render as render_table
from checker.store.db import make_engine
from checker.store.fleet import LIVE_AFTER, NodeInfo, list_nodes

__all__ = ["current_leader", "node_json", "node_state", "nodes_command"]


def node_state(node: NodeInfo, now: datetime) -> str:
    if node.stopped_at is not None:
        return "stopped"
    return "up" if now - node.last_seen <= LIVE_AFTER else "gone"


def current_leader(nodes: list[NodeInfo], now: datetime) -> str | None:
    """The node that leads now: of the live nodes whose heartbeat says so, the one that
    said it last (a leader killed a moment ago still looks live, and says so, for up to
    three heartbeats)."""
    claims = [n for n in nodes if n.leader and node_state(n, now) == "up"]
    return max(claims, key=lambda n: n.last_seen).node if claims else None


def node_json(node: NodeInfo, now: datetime, leader: str | None) -> dict[str, Any]:
    return {
        "node": node.node,
        "location": node.location,
        "version": node.version,
        "started_at": node.started_at.isoformat(),
        "last_seen": node.last_seen.isoformat(),
        "leader": node.node == leader,
        "state": node_state(node, now),
    }


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def nodes_command(config_path: Path, as_json: bool) -> int:
    cfg = load_or_report(config_path)
    if cfg is None:
        return 2
    engine = make_engine(cfg.storage.resolved_url())
    now = datetime.now(UTC)
    try:
        nodes = list_nodes(engine)
    except Exception as exc:  # the database: one line, never a traceback
        print(f"error: cannot read nodes: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    leader = current_leader(nodes, now)
    if as_json:
        print(json.dumps([node_json(n, now, leader) for n in nodes]))
        return 0
    columns = [
        Column("node"),
        Column("location"),
        Column("version"),
        Column("state"),
        Column("leader"),
        Column("last seen", right=True),
        Column("started (UTC)"),
    ]
    rows: list[list[str | Cell]] = []
    for n in nodes:
        state = node_state(n, now)
        style = {"up": "green", "gone": "red"}.get(state, "")
        rows.append(
            [
                n.node,
                n.location,
                n.version,
                Cell(state, style),
                "yes" if n.node == leader else "",
                _ago((now - n.last_seen).total_seconds()),
                f"{n.started_at:%Y-%m-%d %H:%M:%S}",
            ]
        )
    if not rows:
        print("no node has run against this storage yet")
        return 0
    Console().print(render_table(columns, rows), soft_wrap=True)
    return 0
