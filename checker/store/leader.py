"""Leader election: exactly one node runs the evaluator and the digest at a time.

PostgreSQL: a session-level advisory lock held on a dedicated connection; if that
connection dies the lock goes with it and another node takes over on its next try.
SQLite is single-node by nature, so its one process always leads.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

log = logging.getLogger("checker.leader")

# Arbitrary but fixed: every checker node must agree on it.
LOCK_KEY = 7_236_508_373_151_351_666


# A leader cut off from PostgreSQL must lose the lock soon, on both sides: the server drops
# a silent client after about idle + interval x count seconds (11 s), and the client's own
# keepalives fail its next check as fast instead of hanging for the kernel's 2 hours.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
_SERVER_KEEPALIVE = (
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"
)


class Leadership:
    def __init__(self, engine: Engine, key: int = LOCK_KEY) -> None:
        self.engine = engine
        if engine.dialect.name == "postgresql":
            # The lock lives on a connection of its own, outside the pool, with keepalives.
            self.engine = sa.create_engine(
                engine.url,
                poolclass=NullPool,
                connect_args={**KEEPALIVE, "connect_timeout": 5},
            )
        self.key = key
        self._conn: Connection | None = None
        self.leading = engine.dialect.name == "sqlite"
        # Jobs ask from several threads at once: two concurrent bids from one node would
        # race for the lock on two connections, and the loser would report "not leading".
        self._mutex = threading.Lock()

    def check(self) -> bool:
        """Are we the leader now? Tries to become it when not (blocking: call in a thread)."""
        if self.engine.dialect.name == "sqlite":
            return True
        with self._mutex:
            return self._check()

    def _check(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT 1"))
                return True
            except sa.exc.DBAPIError:
                log.warning("leadership lost: the lock connection dropped")
                self._drop()
        try:
            conn = self.engine.connect()
        except sa.exc.DBAPIError:
            return False
        try:
            for statement in _SERVER_KEEPALIVE.split("; "):
                conn.execute(sa.text(statement))
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            conn.commit()
        except sa.exc.DBAPIError:
            conn.close()
            return False
        if got:
            self._conn = conn
            if not self.leading:
                log.info("this node now leads: it evaluates alerts and sends digests")
            self.leading = True
            return True
        conn.close()
        self.leading = False
        return False

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except sa.exc.DBAPIError:
                pass
        self._conn = None
        self.leading = False

    def release(self) -> None:
        with self._mutex:
            self._release()

    def _release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except sa.exc.DBAPIError:
                pass
        self._drop()
