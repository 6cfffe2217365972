"""The outbox: a durable queue of notifications, claimed with a lease and retried with backoff.

Nothing is lost: a notification is a database row before anything is sent. The row is
claimed with a lease (an atomic UPDATE), so two processes never send the same row; it is
marked delivered right after Apprise accepts it (`checker.alerting.deliver`). A crash
between those two steps can send that one row again after its lease runs out:
at-least-once there, never silently dropped.

One row per (notification, channel): a retry after a partial failure resends only to the
channel that failed. Rows name the channel by its id (`checker.alerting.channels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.alerting.channels import Channel
from checker.store.models import OutboxRow
from checker.store.upsert import insert_ignore

__all__ = [
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "DEFAULT_DEADLINE",
    "LEASE",
    "Message",
    "backoff_s",
    "claim",
    "enqueue",
    "finish",
    "outbox_rows",
    "pending_count",
    "reroute",
]

LEASE = timedelta(seconds=120)
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 600.0
DEFAULT_DEADLINE = timedelta(hours=24)
# SQLModel sets __table__ at class creation; its stubs do not declare it.
T: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]


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
    """Insert the rows in the caller's transaction; a repeated dedup_key inserts nothing.

    Rows are due at the wall clock's now, not the evaluation's: delivery runs in real time."""
    rows = outbox_rows(message, channels, datetime.now(UTC))
    if not rows:
        return 0
    return insert_ignore(conn, T, rows, ["dedup_key"])


def backoff_s(attempts: int) -> float:
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempts - 1))


def claim(engine: Engine, worker: str, now: datetime, limit: int) -> list[dict[str, Any]]:
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


def finish(
    engine: Engine,
    row: dict[str, Any],
    worker: str,
    ok: bool,
    error: str | None,
    *,
    give_up: bool = False,
) -> str:
    """Record one attempt; returns delivered | retry | failed (`give_up`: no retry)."""
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
        if give_up or (deadline is not None and next_at > deadline):
            values["failed_at"] = now
            outcome = "failed"
        else:
            values["next_attempt_at"] = next_at
            outcome = "retry"
    with engine.begin() as conn:
        conn.execute(T.update().where(T.c.id == row["id"], T.c.claimed_by == worker).values(values))
    return outcome


def reroute(engine: Engine, row: dict[str, Any], worker: str, channels: Sequence[Channel]) -> int:
    """Move an undelivered row whose channel is gone to the channels its tags route to now:
    one new row each (its dedup key keeps a channel from getting it twice), the old row
    closed. Returns the rows added."""
    base = str(row["dedup_key"]).rsplit("@", 1)[0]
    now = datetime.now(UTC)
    fresh = [
        {
            **{k: row[k] for k in ("kind", "tags", "notify_type", "title", "deadline_at")},
            "dedup_key": f"{base}@{ch.id}",
            "channel": ch.id,
            "created_at": row["created_at"],
            # The body was made for the old channel's format; email gets markdown then.
            "body": row["body"],
            "body_format": row["body_format"],
            "attempts": 0,
            "next_attempt_at": now,
        }
        for ch in channels
    ]
    with engine.begin() as conn:
        added = insert_ignore(conn, T, fresh, ["dedup_key"]) if fresh else 0
        conn.execute(
            T.update()
            .where(T.c.id == row["id"], T.c.claimed_by == worker)
            .values(
                failed_at=now,
                claimed_by=None,
                claimed_until=None,
                last_error="channel no longer configured: rerouted by its tags",
            )
        )
    return added


def pending_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(T)
                .where(T.c.delivered_at.is_(None), T.c.failed_at.is_(None))
            ).scalar_one()
        )
