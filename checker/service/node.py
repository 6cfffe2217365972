"""This process as a node of a fleet: its heartbeat row, the shared Retry-After holds and
its bid for leadership, every few seconds.

Every node probes; the leader (an advisory lock on PostgreSQL) also evaluates alerts,
delivers the outbox, sends the digest, rolls up and prunes. The tick runs on every node and
tries for the lock each time, so a dead leader is replaced within one tick (`TICK_S`) after
PostgreSQL drops its connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from checker import __version__
from checker.service.accounting import Accounting
from checker.service.clock import Clock
from checker.store.fleet import (
    LIVE_AFTER,
    TICK_S,
    NodeInfo,
    beat,
    mark_stopped,
    other_live_nodes,
)
from checker.store.leader import Leadership
from checker.web.metrics import Metrics

__all__ = ["TICK_S", "Node", "node_id"]

log = logging.getLogger("checker.node")


def node_id(started_at: datetime) -> str:
    """host:pid:start:nonce: readable in `checker nodes`, unique even for two services in
    one process (tests, or a host embedding checker)."""
    return f"{socket.gethostname()}:{os.getpid()}:{started_at:%H%M%S}:{secrets.token_hex(2)}"


class Node:
    def __init__(
        self,
        engine: Engine,
        location: str,
        leadership: Leadership,
        accounting: Accounting,
        metrics: Metrics,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.location = location
        self.leadership = leadership
        self.accounting = accounting
        self.metrics = metrics
        self.clock = clock
        self.started_at = clock.now()
        self.id = node_id(self.started_at)
        self.ticks = 0
        self.live_nodes = 1  # this one, until the first tick has read the others

    def info(self, now: datetime) -> NodeInfo:
        return NodeInfo(
            self.id, self.location, __version__, self.started_at, now, self.leadership.leading
        )

    async def tick(self) -> None:
        """Bid for leadership, write the heartbeat, share and adopt holds. A database that
        is away skips the tick: the next one tries again."""
        try:
            leading = await asyncio.to_thread(self.leadership.check)
            self.metrics.node_leader.set(1 if leading else 0)
            await asyncio.to_thread(beat, self.engine, self.info(self.clock.now()))
            others = await asyncio.to_thread(
                other_live_nodes, self.engine, self.id, self.clock.now(), LIVE_AFTER
            )
            self.live_nodes = 1 + len(others)
            if self.accounting.holds_to_share:
                await self.accounting.share_holds(self.engine)
            await self.accounting.sync_holds(self.engine)
        except SQLAlchemyError as exc:
            log.warning("node heartbeat skipped: database error %s", type(exc).__name__)
        self.ticks += 1

    async def stop(self) -> None:
        try:
            if self.accounting.holds_to_share:
                await self.accounting.share_holds(self.engine)
            await asyncio.to_thread(mark_stopped, self.engine, self.id, self.clock.now())
        except SQLAlchemyError as exc:
            log.warning("could not record this node's stop: %s", type(exc).__name__)
