"""The `checker check` table: one row per probe run, units in the headers.

Each row shows what that probe measured and what it cost: the tokens the route reported
(in, out, cached) and the cost checker/cost priced them at. On a narrow terminal the
secondary timings go first (Column.drop); tokens and cost stay.
"""

from __future__ import annotations

from collections.abc import Sequence

from checker.cli.table import Cell, Column, fmt
from checker.probes.base import ProbeResult

__all__ = ["CHECK_COLUMNS", "check_rows"]

CHECK_COLUMNS = [
    Column("target"),
    Column("probe"),
    Column("result"),
    Column("http", right=True, drop=5),
    Column("latency", right=True, group="ms"),
    Column("ttfb", right=True, group="ms", drop=9),
    Column("ttft", right=True, group="ms"),
    Column("ttfo", right=True, group="ms", drop=8),
    Column("itl p50", right=True, group="ms", drop=7),
    Column("tok/s", right=True, drop=4),
    Column("in", right=True, group="tokens"),
    Column("out", right=True, group="tokens"),
    Column("cached", right=True, group="tokens", drop=6),
    Column("cost $", right=True),
    Column("detail"),
]


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _cost(value: float | None) -> str:
    # A cheap probe costs 7.4e-06 USD: six decimals, never rounded to 0.
    return "-" if value is None else f"{value:.6f}"


def check_rows(results: Sequence[ProbeResult]) -> list[list[str | Cell]]:
    return [
        [
            r.target,
            r.probe,
            Cell("ok", "green") if r.ok else Cell(str(r.error), "red"),
            "-" if r.status is None else str(r.status),
            fmt(r.latency_ms),
            fmt(r.ttfb_ms),
            fmt(r.ttft_ms),
            fmt(r.ttfo_ms),
            fmt(r.itl_p50_ms, 1),
            fmt(r.tokens_per_s, 1),
            _count(r.prompt_tokens),
            _count(r.completion_tokens),
            _count(r.cached_tokens),
            _cost(r.cost_usd),
            r.detail or "",
        ]
        for r in results
    ]
