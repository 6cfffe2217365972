"""SQLite serves one node: a second `checker run` on the same file refuses to start.

An exclusive `flock` on a file next to the database, held for the life of the process.
The kernel drops it when the process dies, however it dies, so a node restarted after
`kill -9` is never locked out by its own ghost (a heartbeat row could not tell).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from checker.store.startup import StorageUnavailable

__all__ = ["SingleNodeLock"]


class SingleNodeLock:
    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        database = parsed.database or ""
        self.path: Path | None = None
        if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
            self.path = Path(database).with_name(Path(database).name + ".node-lock")
        self._fd: int | None = None

    def acquire(self, describe: str) -> None:
        """Take the lock, or StorageUnavailable naming the node that holds it.
        `describe` says who we are, written into the file for the next one to read."""
        if self.path is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StorageUnavailable(
                f"storage sqlite:///{self.path.with_suffix('')} is in use by another checker "
                f"node ({holder}); SQLite serves one node: run several nodes on PostgreSQL"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, describe.encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
