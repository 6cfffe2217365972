"""Notifications: channels, routing by tag, and the outbox delivered through Apprise.

Nothing is lost: a notification is a database row before anything is sent. The row is
claimed with a lease (an atomic UPDATE), so two processes never send the same row; it is
marked delivered right after Apprise accepts it. A crash between those two steps can send
that one row again after its lease runs out: at-least-once there, never silently dropped.

One row per (notification, channel): a retry after a partial failure resends only to the
channel that failed. Rows name the channel by a hash of its URL; the URL itself (which
holds tokens and passwords) never reaches the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import apprise
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.config.schema import Config, _url_secrets
from checker.redact import Redactor
from checker.store.models import OutboxRow
from checker.store.upsert import insert_ignore

log = logging.getLogger("checker.notify")

EMAIL_SCHEMES = frozenset({"mailto", "mailtos", "email"})
LEASE = timedelta(seconds=120)
# How long close() lets sends in flight finish, so that a restart does not repeat them.
CLOSE_GRACE_S = 5.0
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 600.0
DEFAULT_DEADLINE = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    url: str
    tags: frozenset[str]

    @property
    def is_email(self) -> bool:
        return self.url.split("://", 1)[0].lower() in EMAIL_SCHEMES

    @property
    def label(self) -> str:
        """Secret-free name for logs and reports: scheme plus the stable id."""
        return f"{self.url.split('://', 1)[0]}:{self.id}"


def channel_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def load_channels(cfg: Config) -> list[Channel]:
    """Channels from `notify:` and from an Apprise config file (YAML or TEXT)."""
    channels = [
        Channel(channel_id(u), u, frozenset(c.tags))
        for c in cfg.notify
        if (u := c.url.get_secret_value())
    ]
    if cfg.apprise_config:
        ac = apprise.AppriseConfig()
        # Apprise reads the file lazily and only logs when it cannot: an unreadable or empty
        # file must fail here, not leave every alert without a channel.
        listing = None
        if ac.add(cfg.apprise_config):
            # Apprise 2 renamed servers() to services().
            listing = getattr(ac, "services", None) or ac.servers
        servers = listing() if listing else []
        if not servers:
            raise ValueError(
                f"apprise_config: cannot read {cfg.apprise_config} (or it lists no URLs)"
            )
        for server in servers:
            url = server.url(privacy=False)
            channels.append(Channel(channel_id(url), url, frozenset(server.tags or ())))
    return channels


def route(channels: Iterable[Channel], tags: Iterable[str], purpose: str) -> list[Channel]:
    """Alerts reach channels sharing a tag, and untagged channels; digests only tagged ones."""
    wanted = set(tags)
    out = []
    for ch in channels:
        if ch.tags & wanted or (purpose == "alert" and not ch.tags):
            out.append(ch)
    return out


@dataclass(frozen=True, slots=True)
class Message:
    """One notification before fan-out; bodies must already be redacted."""

    dedup_key: str
    kind: str  # alert | digest | test
    notify_type: str  # apprise: info | success | warning | failure
    title: str
    body_markdown: str
    body_html: str | None = None
    tags: tuple[str, ...] = ()


def outbox_rows(
    message: Message, channels: Sequence[Channel], now: datetime
) -> list[dict[str, Any]]:
    rows = []
    for ch in channels:
        html = ch.is_email and message.body_html is not None
        rows.append(
            {
                "dedup_key": f"{message.dedup_key}@{ch.id}",
                "channel": ch.id,
                "kind": message.kind,
                "created_at": now,
                "tags": list(message.tags),
                "notify_type": message.notify_type,
                "title": message.title,
                "body": message.body_html if html else message.body_markdown,
                "body_format": "html" if html else "markdown",
                "attempts": 0,
                "next_attempt_at": now,
                "deadline_at": now + DEFAULT_DEADLINE,
            }
        )
    return rows


def enqueue(conn: sa.Connection, message: Message, channels: Sequence[Channel]) -> int:
    """Insert the rows in the caller's transaction; a repeated dedup_key inserts nothing."""
    rows = outbox_rows(message, channels, datetime.now(UTC))
    if not rows:
        return 0
    return insert_ignore(conn, OutboxRow.__table__, rows, ["dedup_key"])


def backoff_s(attempts: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempts - 1))


# --- the delivery worker --------------------------------------------------------------------

T = OutboxRow.__table__


def _claim(engine: Engine, worker: str, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Lease due rows to this worker. The conditional UPDATE is the lock: a row another
    worker leased first affects zero rows here and is skipped."""
    due = (
        sa.select(T.c.id)
        .where(
            T.c.delivered_at.is_(None),
            T.c.failed_at.is_(None),
            T.c.next_attempt_at <= now,
            sa.or_(T.c.claimed_until.is_(None), T.c.claimed_until < now),
        )
        .order_by(T.c.next_attempt_at, T.c.id)
        .limit(limit)
    )
    claimed: list[dict[str, Any]] = []
    with engine.begin() as conn:
        ids = [r.id for r in conn.execute(due)]
    for row_id in ids:
        with engine.begin() as conn:
            res = conn.execute(
                T.update()
                .where(
                    T.c.id == row_id,
                    T.c.delivered_at.is_(None),
                    T.c.failed_at.is_(None),
                    sa.or_(T.c.claimed_until.is_(None), T.c.claimed_until < now),
                )
                .values(claimed_by=worker, claimed_until=now + LEASE)
            )
            if res.rowcount == 1:
                row = conn.execute(sa.select(T).where(T.c.id == row_id)).mappings().one()
                claimed.append(dict(row))
    return claimed


def _finish(engine: Engine, row: dict[str, Any], worker: str, ok: bool, error: str | None) -> str:
    """Record one attempt; returns delivered | retry | failed."""
    now = datetime.now(UTC)
    attempts = row["attempts"] + 1
    values: dict[str, Any] = {"attempts": attempts, "claimed_by": None, "claimed_until": None}
    if ok:
        values["delivered_at"] = now
        values["last_error"] = None
        outcome = "delivered"
    else:
        values["last_error"] = (error or "delivery failed")[:500]
        next_at = now + timedelta(seconds=backoff_s(attempts))
        deadline = row.get("deadline_at")
        if deadline is not None and next_at > deadline:
            values["failed_at"] = now
            outcome = "failed"
        else:
            values["next_attempt_at"] = next_at
            outcome = "retry"
    with engine.begin() as conn:
        conn.execute(T.update().where(T.c.id == row["id"], T.c.claimed_by == worker).values(values))
    return outcome


def load_plugins() -> None:
    """Let Apprise discover its plugins now: half a second of imports, once per process.

    Done at start, before probes run; done at the first alert, it would stall every probe in
    flight (even from a thread: much of it holds the GIL)."""
    apprise.Apprise().add("json://localhost")


def _apprise_for(url: str) -> apprise.Apprise | None:
    a = apprise.Apprise()
    return a if a.add(url) else None


async def send(
    channel: Channel, title: str, body: str, body_format: str, notify_type: str
) -> str | None:
    """Deliver through Apprise; None on success, else the reason (this channel's URL secrets
    are masked; redact the rest with the config's Redactor)."""
    # Parsing a URL can import a plugin (when load_plugins() did not run): not on the loop.
    a = await asyncio.to_thread(_apprise_for, channel.url)
    if a is None:
        return "Apprise cannot parse this channel URL"
    with apprise.LogCapture(level=logging.WARNING) as captured:
        result = await a.async_notify(
            body=body,
            title=title,
            notify_type=notify_type,
            body_format=body_format,
        )
        shared = captured.getvalue().splitlines()
    if result:
        return None
    # Apprise 2 keeps each call's own log; the global capture also holds lines of channels
    # sent at the same time, so it is only the fallback for older versions.
    own = getattr(result, "logs", None)
    lines = [str(e.message) for e in own()] if callable(own) else shared
    errors = [line for line in lines if line.strip()]
    # Channels from an Apprise config file are not among the config's secrets: mask this
    # channel's own credentials here, whoever reports the error.
    own_secrets = Redactor(_url_secrets(channel.url))
    return own_secrets.text("; ".join(errors[-3:]) or "Apprise reported failure")


class Deliverer:
    """Sends due outbox rows; database work runs in threads, so probes never wait on it."""

    def __init__(
        self,
        engine: Engine,
        channels: Callable[[], list[Channel]],
        redactor: Callable[[], Redactor],
        *,
        poll_s: float = 1.0,
        on_attempt: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self._channels = channels
        self._redactor = redactor
        self.poll_s = poll_s
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._on_attempt = on_attempt
        self.delivered = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        load_plugins()
        self._task = asyncio.create_task(self._loop())

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Stop after the sends in flight, within `grace_s`.

        Cancelling a send does not stop Apprise's worker thread: the receiver may get the
        message while the row stays unrecorded, to be sent again when its lease runs out.
        """
        if self._task is None:
            return
        self._closing = True
        self._wake.set()  # out of the idle wait at once
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except TimeoutError:
            log.warning("outbox: stopping with a delivery still in flight")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while not self._closing:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: try again next round
                log.warning("outbox: cannot read the queue: %s", type(exc).__name__)
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self, limit: int = 50) -> int:
        rows = await asyncio.to_thread(_claim, self.engine, self.worker, datetime.now(UTC), limit)
        if not rows:
            return 0
        by_id = {c.id: c for c in self._channels()}
        results = await asyncio.gather(*(self._deliver(row, by_id) for row in rows))
        return sum(1 for r in results if r == "delivered")

    async def _deliver(self, row: dict[str, Any], by_id: dict[str, Channel]) -> str:
        channel = by_id.get(row["channel"])
        if channel is None:
            error: str | None = "channel is no longer configured"
        else:
            try:
                error = await send(
                    channel, row["title"], row["body"], row["body_format"], row["notify_type"]
                )
            except Exception as exc:  # a plugin bug must not kill the worker
                error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            error = self._redactor().text(error)
        outcome = await asyncio.to_thread(
            _finish, self.engine, row, self.worker, error is None, error
        )
        label = channel.label if channel else row["channel"]
        if outcome == "delivered":
            self.delivered += 1
            log.info("notification delivered: %s to %s", row["title"], label)
        else:
            self.failures += 1
            level = logging.ERROR if outcome == "failed" else logging.WARNING
            log.log(level, "notification %s to %s: %s (%s)", row["title"], label, outcome, error)
        if self._on_attempt:
            self._on_attempt(outcome)
        return outcome


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(T)
                .where(T.c.delivered_at.is_(None), T.c.failed_at.is_(None))
            ).scalar_one()
        )
