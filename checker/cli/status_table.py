"""The `checker status` table: one row per probe of each target, the primary probe first.

The target's name stands on its primary probe's row (its headline figures, marked `*`);
the other probes follow on their own rows, so a 1 ms `models` answer is never read as the
route's latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from checker.cli.table import Cell, Column, fmt

__all__ = ["UPTIME_WINDOWS", "status_columns", "status_rows"]

UPTIME_WINDOWS = ("1h", "24h", "7d", "30d")


def status_columns(window: str) -> list[Column]:
    columns = [Column("target"), Column("probe")]
    columns += [Column(f"up {w}", right=True) for w in UPTIME_WINDOWS]
    headers = ("p50 ms", "p95 ms", "p99 ms", "ttft p50", "ttft p95", "tok/s", f"n {window}")
    columns += [Column(h, right=True) for h in headers]
    return [*columns, Column("errors"), Column("last")]


def _probe_cells(figures: dict[str, Any]) -> list[str | Cell]:
    up = figures["uptime"]
    lat, ttft = figures["latency_ms"], figures["ttft_ms"]
    return [
        *("-" if up.get(w) is None else f"{up[w]:.2%}" for w in UPTIME_WINDOWS),
        fmt(lat["p50"]),
        fmt(lat["p95"]),
        fmt(lat["p99"]),
        fmt(ttft["p50"]),
        fmt(ttft["p95"]),
        fmt(figures["tokens_per_s_p50"], 1),
        str(figures["results"]),
        ", ".join(f"{k} {v}" for k, v in sorted(figures["errors"].items())) or "-",
    ]


def status_rows(docs: Sequence[dict[str, Any]]) -> list[list[str | Cell]]:
    """Rows from `status --json` objects (TargetStatus.to_json)."""
    rows: list[list[str | Cell]] = []
    for doc in docs:
        last = doc["last"]
        last_cell: str | Cell = (
            "-" if not last else ("ok" if last["ok"] else Cell(str(last["error"]), "red"))
        )
        if doc.get("held_until"):
            # Probes are skipped while a Retry-After holds the route: say so, and until when.
            until = doc["held_until"][11:19]
            last_cell = Cell(
                f"{last_cell.text if isinstance(last_cell, Cell) else last_cell}"
                f", held until {until} UTC (429)",
                "yellow",
            )
        primary = doc["primary_probe"]
        probes = doc["probes"]
        # --by-location: a location's rows follow the route's, named by the location.
        where = doc.get("location")
        head = doc["target"] if where is None else f"  @{where or '(unlabelled)'}"
        if not probes:
            rows.append([head, "-", *_probe_cells(doc), last_cell])
            continue
        order = [primary, *(p for p in probes if p != primary)] if primary in probes else probes
        for i, name in enumerate(order):
            label = f"{name} *" if name == primary else name
            first = i == 0
            cells = _probe_cells(probes[name])
            rows.append([head if first else "", label, *cells, last_cell if first else ""])
    return rows
