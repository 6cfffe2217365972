"""The digest ledger (`digest_log`): one row per local day, so the daily digest goes out
once across restarts and nodes. checker.digest.build says how the states are used."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.store.tables import DIGEST_LOG
from checker.store.upsert import insert_ignore_stmt

__all__ = ["claim_day", "day_status", "finish_day"]


def claim_day(engine: Engine, day: str, timezone: str) -> bool:
    """Take the day's digest for this process: a new row, or a failed one taken back.

    RETURNING says whether this statement wrote the row; a rowcount would not (PostgreSQL
    reports -1 for inserts under SQLAlchemy 2.1).
    """
    row = {"day": day, "timezone": timezone, "status": "pending", "sent_at": None}
    with engine.begin() as conn:
        insert = insert_ignore_stmt(conn, DIGEST_LOG, ["day"]).returning(DIGEST_LOG.c.id)
        if conn.execute(insert, row).first() is not None:
            return True
        retake = (
            DIGEST_LOG.update()
            .where(DIGEST_LOG.c.day == day, DIGEST_LOG.c.status == "failed")
            .values(status="pending")
            .returning(DIGEST_LOG.c.id)
        )
        return conn.execute(retake).first() is not None


def finish_day(engine: Engine, day: str, sent: bool, at: datetime) -> None:
    """Mark the day's digest sent (at `at`) or failed (claimable again that day)."""
    with engine.begin() as conn:
        conn.execute(
            DIGEST_LOG.update()
            .where(DIGEST_LOG.c.day == day)
            .values(status="sent" if sent else "failed", sent_at=at if sent else None)
        )


def day_status(engine: Engine, day: str) -> str | None:
    """pending, sent or failed; None when the day's digest was never claimed."""
    with engine.connect() as conn:
        status: str | None = conn.execute(
            sa.select(DIGEST_LOG.c.status).where(DIGEST_LOG.c.day == day)
        ).scalar_one_or_none()
        return status
