"""The SQLAlchemy tables behind the row models (checker.store.models), as the queries,
rollups and the window cache address them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from checker.store.models import (
    DailyRollupRow,
    DigestLogRow,
    IncidentRow,
    ProbeResultRow,
    RolledDayRow,
    RolledHourRow,
    RollupRow,
    WindowSketchRow,
)

__all__ = [
    "CACHE",
    "DAILY",
    "DIGEST_LOG",
    "INCIDENTS",
    "RAW",
    "RAW_TABLE",
    "ROLLED",
    "ROLLED_DAYS",
    "ROLLUPS",
]

# SQLModel declares __table__ at runtime only: mypy cannot see it on the classes.
RAW_TABLE: sa.Table = ProbeResultRow.__table__  # type: ignore[attr-defined]
RAW: Any = RAW_TABLE.c  # the raw results' columns (most reads name only columns)
ROLLUPS: sa.Table = RollupRow.__table__  # type: ignore[attr-defined]
ROLLED: sa.Table = RolledHourRow.__table__  # type: ignore[attr-defined]
DAILY: sa.Table = DailyRollupRow.__table__  # type: ignore[attr-defined]
ROLLED_DAYS: sa.Table = RolledDayRow.__table__  # type: ignore[attr-defined]
CACHE: sa.Table = WindowSketchRow.__table__  # type: ignore[attr-defined]
INCIDENTS: sa.Table = IncidentRow.__table__  # type: ignore[attr-defined]
DIGEST_LOG: sa.Table = DigestLogRow.__table__  # type: ignore[attr-defined]
