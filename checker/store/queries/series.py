"""Hourly series for charts: one point per hour of a window, per target, from hourly
rollups for whole rolled hours and raw rows for the rest (queries.window)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.probes.base import ErrorKind
from checker.store.db import one_of
from checker.store.plan import as_utc, floor_hour, hours_between
from checker.store.queries.window import Counts, Source, json_rows, plan_for, read_window, snapshot
from checker.store.sketch import Sketch

__all__ = ["HourPoint", "hourly_series", "hourly_series_many"]

_RATE_LIMITED = ErrorKind.rate_limited.value


@dataclass
class HourPoint:
    hour: datetime
    results: int
    valid: int
    good: int
    latency_p50: float | None
    latency_p95: float | None
    ttft_p50: float | None
    ttft_p95: float | None


def hourly_series_many(
    engine: Engine,
    count_rate_limited: Mapping[str, bool],
    since: datetime,
    until: datetime,
    ttft: bool = True,
    probes: Mapping[str, str] | None = None,
) -> dict[str, list[HourPoint]]:
    """Per target (the keys of `count_rate_limited`), one point per hour start in
    [floor_hour(since), until), for charts; empty hours included (zero counts, None
    percentiles). One pass over the rollups and raw rows for all targets; `ttft=False`
    leaves the TTFT percentiles out (None). `probes` (target -> probe) keeps only that
    probe's results of a target, so a chart's percentiles never mix probe kinds; without
    it every probe counts (the SLO's view)."""
    since, until = as_utc(since), as_utc(until)
    targets = list(count_rate_limited)
    hours = list(hours_between(since, until))
    counts: defaultdict[tuple[str, datetime], Counts] = defaultdict(Counts)
    stored: dict[str, defaultdict[tuple[str, datetime], list[Any]]] = {
        "latency": defaultdict(list),
        "ttft": defaultdict(list),
    }
    raw_values: dict[str, defaultdict[tuple[str, datetime], list[float]]] = {
        "latency": defaultdict(list),
        "ttft": defaultdict(list),
    }
    if targets:
        with engine.connect() as raw_conn:
            conn = snapshot(raw_conn)

            def per_hour(source: Source) -> sa.Select[Any]:
                c = source.c
                if not source.rolled_up:
                    return sa.select(
                        c.started_at,
                        c.target,
                        c.probe,
                        c.ok,
                        c.maintenance,
                        c.error,
                        c.latency_ms,
                        c.ttft_ms,
                    ).where(one_of(conn, c.target, targets))
                sketches = [sa.cast(c.latency_sketch, sa.Text)]
                if ttft:
                    sketches.append(sa.cast(c.ttft_sketch, sa.Text))
                return sa.select(
                    c.hour,
                    c.target,
                    c.probe,
                    c.total,
                    c.maintenance_count,
                    c.sli_ok_count,
                    c.sli_rate_limited_count,
                    *sketches,
                ).where(one_of(conn, c.target, targets))

            rolled_rows: list[Any] = []
            raw_rows: list[Any] = []
            plan = plan_for(conn, since, until, with_days=False)
            for source, row in read_window(conn, plan, per_hour):
                (rolled_rows if source.rolled_up else raw_rows).append(row)
        for hour, target, probe, total, maint, ok, rl, *docs in json_rows(rolled_rows, 7):
            if probes is not None and probes.get(target) != probe:
                continue
            key = (target, as_utc(hour))
            counts[key].add(total, maint, ok, rl)
            for name, doc in zip(("latency", "ttft"), docs, strict=False):
                if doc:
                    stored[name][key].append(doc)
        for at, target, probe, ok, maint, error, lat, tt in raw_rows:
            if probes is not None and probes.get(target) != probe:
                continue
            key = (target, floor_hour(at))
            outside = not maint
            counts[key].add(1, not outside, outside and ok, outside and error == _RATE_LIMITED)
            if ok and outside:
                if lat is not None:
                    raw_values["latency"][key].append(lat)
                if tt is not None and ttft:
                    raw_values["ttft"][key].append(tt)
    sketch: dict[str, dict[tuple[str, datetime], Sketch]] = {}
    for name in ("latency", "ttft"):
        merged = {key: Sketch().merge_all(docs) for key, docs in stored[name].items()}
        for key, values in raw_values[name].items():
            merged.setdefault(key, Sketch()).extend(values)
        sketch[name] = merged
    empty, none = Counts(), Sketch()
    out: dict[str, list[HourPoint]] = {}
    for t in targets:
        points = []
        for h in hours:
            n = counts.get((t, h), empty)
            lat = sketch["latency"].get((t, h), none)
            tt = sketch["ttft"].get((t, h), none)
            points.append(
                HourPoint(
                    hour=h,
                    results=n.total,
                    valid=n.valid(count_rate_limited[t]),
                    good=n.sli_ok,
                    latency_p50=lat.quantile(0.5),
                    latency_p95=lat.quantile(0.95),
                    ttft_p50=tt.quantile(0.5),
                    ttft_p95=tt.quantile(0.95),
                )
            )
        out[t] = points
    return out


def hourly_series(
    engine: Engine,
    target: str,
    since: datetime,
    until: datetime,
    count_rate_limited: bool = True,
) -> list[HourPoint]:
    """hourly_series_many for one target."""
    return hourly_series_many(engine, {target: count_rate_limited}, since, until)[target]
