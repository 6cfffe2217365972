"""The `checker check` table: one row per probe run, units in the headers."""

from __future__ import annotations

from collections.abc import Sequence

from checker.cli.table import Cell, Column, fmt
from checker.probes.base import ProbeResult

__all__ = ["CHECK_COLUMNS", "check_rows"]

CHECK_COLUMNS = [
    Column("target"),
    Column("probe"),
    Column("result", right=True),
    Column("status", right=True),
    Column("latency ms", right=True),
    Column("ttfb ms", right=True),
    Column("ttft ms", right=True),
    Column("ttfo ms", right=True),
    Column("itl p50 ms", right=True),
    Column("tok/s", right=True),
    Column("tokens in/out", right=True),
    Column("cost $", right=True),
    Column("detail"),
]


def _tokens(r: ProbeResult) -> str:
    if r.prompt_tokens is None and r.completion_tokens is None:
        return "-"
    cached = f" ({r.cached_tokens} cached)" if r.cached_tokens else ""
    return f"{r.prompt_tokens or 0}/{r.completion_tokens or 0}{cached}"


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
            _tokens(r),
            _cost(r.cost_usd),
            r.detail or "",
        ]
        for r in results
    ]
