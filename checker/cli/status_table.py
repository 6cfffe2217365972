"""The `checker status` table: a row per target, then an indented row per probe.

Percentiles are per probe kind only: a 1 ms `models` answer is never mixed into a
stream's latency, so the target's own row carries no percentile, only what is the
target's (its probe count over the window, its last result, a Retry-After hold). Each
probe row has its own uptime, percentiles, probe count and errors; the primary probe,
whose figures are the target's headline in the JSON, is marked `*`.

Units live in the headers ("uptime %" over 1h 24h 7d 30d, "latency ms" over p50 p95
p99), so cells are bare numbers that never wrap; narrow terminals lose the least useful
columns first (see Column.drop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

from checker.cli.human_time import local_clock
from checker.cli.table import Cell, Column, fmt, wrap_text

__all__ = ["UPTIME_WINDOWS", "status_columns", "status_notes", "status_rows"]

UPTIME_WINDOWS = ("1h", "24h", "7d", "30d")
# How dispensable each uptime window's column is when the terminal is narrow.
_UPTIME_DROP = {"1h": 3, "24h": 0, "7d": 7, "30d": 8}
INDENT = "  "


def status_columns(window: str) -> list[Column]:
    return [
        Column("target / probe"),
        *(Column(w, True, "uptime %", _UPTIME_DROP[w]) for w in UPTIME_WINDOWS),
        Column("p50", True, "latency ms"),
        Column("p95", True, "latency ms", 5),
        Column("p99", True, "latency ms", 9),
        Column("p50", True, "ttft ms", 1),
        Column("p95", True, "ttft ms", 6),
        Column("p50", True, "tok/s", 4),
        Column("probes", True, window),
        Column("errors / last"),
    ]


def status_notes(window: str, width: int | None = None) -> list[str]:
    """The lines under the table that say what its figures are, wrapped to `width`."""
    notes = [
        f"latency, ttft, tok/s, probes, errors: the last {window}, per probe kind",
        "* the primary probe: its figures are the target's headline",
    ]
    return [line for note in notes for line in wrap_text(note, width or len(note))]


def _uptime(value: float | None) -> str:
    # Floored, not rounded: 99.999% reads 99.99, never 100.00 while a probe failed.
    return "-" if value is None else f"{math.floor(value * 10_000 + 1e-6) / 100:.2f}"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(errors.items())) or "-"


def _probe_cells(figures: dict[str, Any]) -> list[str | Cell]:
    up = figures["uptime"]
    lat, ttft = figures["latency_ms"], figures["ttft_ms"]
    errors = figures["errors"]
    return [
        *(_uptime(up.get(w)) for w in UPTIME_WINDOWS),
        fmt(lat["p50"]),
        fmt(lat["p95"]),
        fmt(lat["p99"]),
        fmt(ttft["p50"]),
        fmt(ttft["p95"]),
        fmt(figures["tokens_per_s_p50"], 1),
        str(figures["results"]),
        Cell(_errors(errors), "yellow") if errors else "-",
    ]


def _last(doc: dict[str, Any], tz: tzinfo | None) -> Cell:
    last = doc["last"]
    text = "last: -" if not last else f"last: {'ok' if last['ok'] else last['error']}"
    style = "" if not last or last["ok"] else "red"
    if doc.get("held_until"):
        # Probes are skipped while a Retry-After holds the route: say so, and until when.
        return Cell(f"{text}; held until {local_clock(doc['held_until'], tz)} (429)", "yellow")
    return Cell(text, style)


def status_rows(docs: Sequence[dict[str, Any]], tz: tzinfo | None = None) -> list[list[str | Cell]]:
    """Rows from `status --json` objects (TargetStatus.to_json); `tz` for the times shown
    (None: the local zone)."""
    blank: list[str | Cell] = [""] * 10  # the percentile columns a target's row leaves empty
    rows: list[list[str | Cell]] = []
    for doc in docs:
        primary = doc["primary_probe"]
        probes = doc["probes"]
        # --by-location: a location's rows follow the route's, named by the location.
        where = doc.get("location")
        head = doc["target"] if where is None else f"{INDENT}@{where or '(unlabelled)'}"
        indent = INDENT if where is None else INDENT * 2
        count = sum(p["results"] for p in probes.values())
        rows.append([head, *blank, str(count), _last(doc, tz)])
        order = [primary, *(p for p in probes if p != primary)] if primary in probes else probes
        for name in order:
            label = f"{indent}{name} *" if name == primary else f"{indent}{name}"
            rows.append([label, *_probe_cells(probes[name])])
    return rows
