"""The result writer: one asyncio task that batches results into the database.

Probes call `submit()`, which only appends to an in-memory queue: it never blocks and never
touches the database. The task flushes every `flush_every` seconds, or as soon as
`flush_batch` results wait, in a worker thread so the event loop never stalls. While the
database is unavailable the queue keeps growing up to `queue_max` (then the oldest waiting
result is dropped and counted), and the batch is retried with backoff, in order. Each result
carries a UUID assigned at submit time, and inserts ignore a UUID that is already stored,
so a batch whose commit succeeded but whose acknowledgement was lost is never duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from checker.config.schema import Storage
from checker.probes.base import ProbeResult
from checker.store.models import ProbeResultRow, result_to_row

log = logging.getLogger(__name__)

_TABLE = ProbeResultRow.__table__  # type: ignore[attr-defined]
_ERROR_TEXT_MAX = 200


@dataclass(frozen=True, slots=True)
class QueuedResult:
    """A submitted result with its storage identity, while it waits in the queue."""

    result: ProbeResult
    maintenance: bool
    uid: str
    seq: int


# Called on the event loop after each commit with the results it stored, in order.
FlushCallback = Callable[[list[ProbeResult]], Awaitable[None] | None]


def insert_results(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert probe_results rows, silently skipping any result_uid already stored."""
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        stmt: Any = postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["result_uid"])
    elif dialect == "sqlite":
        stmt = sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["result_uid"])
    else:  # pragma: no cover - make_engine only builds the two above
        raise ValueError(f"unsupported dialect {dialect}")
    conn.execute(stmt, list(rows))


def new_uid() -> str:
    return str(uuid.uuid4())


def _is_bad_data(exc: BaseException) -> bool:
    """A row the database will never accept (as opposed to a database that is away)."""
    if isinstance(exc, sa.exc.DataError | sa.exc.IntegrityError):
        return True
    # Conversion failures in the driver (e.g. an int too large for SQLite) come unwrapped.
    if isinstance(exc, OverflowError | TypeError | ValueError):
        return True
    # Raised before reaching the database: a value the driver cannot convert.
    return isinstance(exc, sa.exc.StatementError) and not isinstance(exc, sa.exc.DBAPIError)


class ResultWriter:
    """Batches submitted results into probe_results; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        storage: Storage | None = None,
        *,
        queue_max: int | None = None,
        flush_every: float | None = None,
        flush_batch: int | None = None,
        on_flush: FlushCallback | None = None,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
    ) -> None:
        """Settings come from `storage` (the config's storage section, or its defaults);
        keyword arguments override them."""
        storage = storage or Storage()
        queue_max = queue_max if queue_max is not None else storage.queue_max
        flush_every = flush_every if flush_every is not None else storage.flush_every
        flush_batch = flush_batch if flush_batch is not None else storage.flush_batch
        if queue_max < 2:
            raise ValueError("queue_max must be at least 2")
        self._engine = engine
        self._queue_max = queue_max
        self._flush_every = flush_every
        # At most half the queue is ever in flight, so a write in progress never leaves
        # submit() without room to keep the newest results.
        self._batch_size = max(1, min(flush_batch, queue_max // 2))
        self._on_flush = on_flush
        self._retry_initial = retry_initial
        self._retry_max = retry_max

        self._queue: deque[QueuedResult] = deque()
        self._inflight: list[QueuedResult] = []
        self._seq = 0
        self._dropped = 0
        self._burst_dropped = 0
        self._written = 0
        self._rejected = 0
        self._last_error: str | None = None
        self._failing_since: float | None = None  # monotonic, while writes fail
        self._flush_waiters = 0
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- observability -------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Results not yet committed: waiting plus the batch being written."""
        return len(self._queue) + len(self._inflight)

    @property
    def queue_max(self) -> int:
        return self._queue_max

    @property
    def dropped(self) -> int:
        """Results discarded because the queue was full (oldest first)."""
        return self._dropped

    @property
    def written(self) -> int:
        """Results committed to the database."""
        return self._written

    @property
    def rejected(self) -> int:
        """Results the database refused as invalid data (logged, never retried)."""
        return self._rejected

    def failing_for(self, now: float) -> float:
        """Seconds (monotonic `now`) since writes started failing; 0 while they succeed."""
        return 0.0 if self._failing_since is None else max(0.0, now - self._failing_since)

    @property
    def last_error(self) -> str | None:
        """The last write failure, None once a write succeeds again."""
        return self._last_error

    # --- producer side -------------------------------------------------------------------

    def submit(self, result: ProbeResult, maintenance: bool = False) -> None:
        """Queue a result. Never blocks; past queue_max the oldest waiting result is dropped."""
        self._seq += 1
        self._queue.append(QueuedResult(result, maintenance, new_uid(), self._seq))
        if self.queue_depth > self._queue_max:
            self._queue.popleft()
            self._dropped += 1
            if self._burst_dropped == 0:
                log.warning(
                    "result queue full (%d): dropping the oldest results until the database "
                    "catches up",
                    self._queue_max,
                )
            self._burst_dropped += 1
        if len(self._queue) >= self._batch_size and self._last_error is None:
            self._wake.set()

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer task on the running event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="result-writer")

    async def __aenter__(self) -> ResultWriter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def flush(self) -> None:
        """Wait until every result submitted so far is committed (or dropped).

        While the database is away this waits for it: bound it with asyncio.timeout()
        (the results stay queued). RuntimeError if the writer is not running.
        """
        if self._task is None or self._task.done():
            raise RuntimeError("the result writer is not running")
        target = self._seq
        self._flush_waiters += 1
        self._wake.set()
        try:
            while not self._settled(target):
                if self._task.done():
                    raise RuntimeError("the result writer stopped")
                await self._progress.wait()
        finally:
            self._flush_waiters -= 1

    async def close(self, grace: float = 5.0) -> int:
        """Final flush for at most `grace` seconds, then stop. Returns the results not stored."""
        if self._task is None:
            return self.queue_depth
        try:
            if not self._task.done():
                async with asyncio.timeout(grace):
                    await self.flush()
        except TimeoutError:
            pass
        finally:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = self.queue_depth
        if left:
            log.warning("result writer stopped with %d results not stored", left)
        return left

    # --- the task ------------------------------------------------------------------------

    def _settled(self, seq: int) -> bool:
        oldest = self._inflight[0] if self._inflight else (self._queue[0] if self._queue else None)
        return oldest is None or oldest.seq > seq

    def _pulse(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake early when a batch is full or someone waits on flush()."""
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass
        self._wake.clear()

    def _due(self) -> bool:
        return len(self._queue) >= self._batch_size or (
            self._flush_waiters > 0 and bool(self._queue)
        )

    async def _run(self) -> None:
        delay = self._retry_initial
        while True:
            if not self._due():
                await self._sleep(self._flush_every)
            if not self._queue:
                self._pulse()
                continue
            if await self._write_batch():
                delay = self._retry_initial
                continue
            await self._sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _write_batch(self) -> bool:
        count = min(len(self._queue), self._batch_size)
        batch = [self._queue.popleft() for _ in range(count)]
        self._inflight = batch
        try:
            stored, bad = await asyncio.to_thread(self._store, batch)
        except Exception as exc:
            # Back to the front, in order: nothing is lost or reordered by a failed attempt.
            self._queue.extendleft(reversed(batch))
            self._inflight = []
            self._note_failure(exc)
            self._pulse()
            return False
        self._inflight = []
        self._note_success(len(stored), bad)
        self._pulse()
        if stored and self._on_flush is not None:
            await self._call_on_flush(stored)
        return True

    def _store(self, batch: list[QueuedResult]) -> tuple[list[QueuedResult], int]:
        """Runs in a worker thread. Returns the committed results and how many were rejected."""
        rows = [result_to_row(q.result, uid=q.uid, maintenance=q.maintenance) for q in batch]
        try:
            with self._engine.begin() as conn:
                insert_results(conn, rows)
            return batch, 0
        except Exception as exc:
            if not _is_bad_data(exc):
                raise
        # Some row is unacceptable: store the others one by one and set the culprits aside,
        # or one bad value would block the queue forever.
        stored: list[QueuedResult] = []
        bad = 0
        for queued, row in zip(batch, rows, strict=True):
            try:
                with self._engine.begin() as conn:
                    insert_results(conn, [row])
                stored.append(queued)
            except Exception as exc:
                if not _is_bad_data(exc):
                    raise
                bad += 1
                log.error(
                    "database rejected a %s/%s result: %s",
                    queued.result.target,
                    queued.result.probe,
                    self._describe(exc),
                )
        return stored, bad

    def _describe(self, exc: BaseException) -> str:
        """A short, secret-free description: never the SQL, parameters or URL password."""
        inner = getattr(exc, "orig", None) or exc
        lines = str(inner).strip().splitlines()
        text = f"{type(inner).__name__}: {lines[0] if lines else ''}".strip()
        password = self._engine.url.password
        if password:
            text = text.replace(str(password), "***")
        return text[:_ERROR_TEXT_MAX]

    def _note_failure(self, exc: BaseException) -> None:
        first = self._last_error is None
        self._last_error = self._describe(exc)
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        if first:
            log.warning(
                "database unavailable (%s); %d results queued, retrying",
                self._last_error,
                self.queue_depth,
            )

    def _note_success(self, stored: int, rejected: int) -> None:
        if self._last_error is not None:
            backlog = self.queue_depth + stored
            log.info("database reachable again; writing %d queued results", backlog)
            self._last_error = None
        self._failing_since = None
        self._written += stored
        self._rejected += rejected
        if self._burst_dropped and len(self._queue) < self._queue_max // 2:
            log.warning("dropped %d results while the queue was full", self._burst_dropped)
            self._burst_dropped = 0

    async def _call_on_flush(self, stored: list[QueuedResult]) -> None:
        try:
            outcome = self._on_flush([q.result for q in stored])  # type: ignore[misc]
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            # A consumer's bug must not stop results from being stored.
            log.exception("on_flush callback failed")
