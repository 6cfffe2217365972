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

log = logging.getLogger("checker.leader")

# Arbitrary but fixed: every checker node must agree on it.
LOCK_KEY = 7_236_508_373_151_351_666


class Leadership:
    def __init__(self, engine: Engine, key: int = LOCK_KEY) -> None:
        self.engine = engine
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
