"""Streaming reads for `checker export`: raw results and hourly rollups, oldest first.

Both readers are generators over a server-side cursor (`stream_results`, `yield_per`), so
an export of any size holds one batch of rows in memory, never the whole table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.probes.base import TRANSIENT_FIELDS, ProbeResult
from checker.store.db import one_of
from checker.store.tables import RAW, ROLLUPS

__all__ = ["BATCH", "RAW_FIELDS", "ROLLUP_FIELDS", "raw_rows", "rollup_rows"]

BATCH = 1000

# Every stored ProbeResult field (location included), then the row's maintenance flag.
RAW_FIELDS: tuple[str, ...] = (
    *(f.name for f in dataclasses.fields(ProbeResult) if f.name not in TRANSIENT_FIELDS),
    "maintenance",
)
# One rollup row's key, counts, sums and errors; the sketches are left out (see the CLI help).
ROLLUP_FIELDS: tuple[str, ...] = (
    "hour",
    "target",
    "probe",
    "location",
    "total",
    "ok_count",
    "maintenance_count",
    "sli_ok_count",
    "sli_rate_limited_count",
    "cost_usd",
    "cost_count",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "errors",
)


def _stream(
    engine: Engine,
    table_cols: Any,
    fields: Sequence[str],
    time_col: str,
    since: datetime | None,
    until: datetime | None,
    targets: Sequence[str],
    probe: str | None,
) -> Iterator[dict[str, Any]]:
    with engine.connect() as conn:
        time = getattr(table_cols, time_col)
        query = sa.select(*(getattr(table_cols, f) for f in fields))
        if since is not None:
            query = query.where(time >= since)
        if until is not None:
            query = query.where(time < until)
        if targets:
            query = query.where(one_of(conn, table_cols.target, targets))
        if probe is not None:
            query = query.where(table_cols.probe == probe)
        # id breaks ties between rows of the same instant, so reruns give the same order.
        query = query.order_by(time, table_cols.id)
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for row in result:
            yield dict(zip(fields, row, strict=True))


def raw_rows(
    engine: Engine,
    since: datetime | None,
    until: datetime | None,
    targets: Sequence[str] = (),
    probe: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Raw results with since <= started_at < until (either bound optional), oldest first."""
    yield from _stream(engine, RAW, RAW_FIELDS, "started_at", since, until, targets, probe)


def rollup_rows(
    engine: Engine,
    since: datetime | None,
    until: datetime | None,
    targets: Sequence[str] = (),
    probe: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Hourly rollup rows with since <= hour < until, oldest hour first."""
    yield from _stream(engine, ROLLUPS.c, ROLLUP_FIELDS, "hour", since, until, targets, probe)
