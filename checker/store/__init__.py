"""Storage: tables, engines, migrations, the batched result writer, rollups and queries."""

from checker.store.db import make_engine, normalize_url
from checker.store.migrate import check, upgrade
from checker.store.models import sync_targets
from checker.store.queries import (
    HourPoint,
    TargetStatus,
    hourly_series,
    status,
    window_counts,
    window_counts_many,
)
from checker.store.rollup import PruneResult, prune, rollup_due, rollup_hours
from checker.store.writer import QueuedResult, ResultWriter

__all__ = [
    "HourPoint",
    "PruneResult",
    "QueuedResult",
    "ResultWriter",
    "TargetStatus",
    "check",
    "hourly_series",
    "make_engine",
    "normalize_url",
    "prune",
    "rollup_due",
    "rollup_hours",
    "status",
    "sync_targets",
    "upgrade",
    "window_counts",
    "window_counts_many",
]
