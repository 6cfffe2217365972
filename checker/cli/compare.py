"""`checker compare`: routes to the same model side by side, for one probe and window.

The table fits 100 columns: one line per route with its rank, and under it, in words, the
flags and what cannot be told apart yet. `--json` prints the full-precision document.
"""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.text import Text

from checker.cli.config_file import load_or_report
from checker.cli.table import Cell, Column, fmt
from checker.cli.table import render as render_table
from checker.compare.build import compare_routes
from checker.compare.view import CompareView, RouteView
from checker.store.db import make_engine

__all__ = ["compare_command", "compare_text"]

WIDTH = 100  # the table and its notes fit a 100-column terminal

COLUMNS = [
    Column("#", right=True),
    Column("route"),
    Column("n", right=True),
    Column("uptime [95% CI]"),
    Column("ttft p50", right=True),
    Column("+ttft vs ref [CI]"),
    Column("tok/s", right=True),
    Column("usage", right=True),
    Column("$/Mtok out", right=True),
]


def _uptime(route: RouteView) -> str:
    if route.uptime is None or route.uptime_ci is None:
        return "-"
    lo, hi = route.uptime_ci
    return f"{route.uptime:.2%} [{lo * 100:.1f}, {hi * 100:.1f}]"


def _added(route: RouteView) -> str:
    added = route.added_ttft_ms
    if added is None:
        return "reference"
    if added["ci"] is None:
        return "-"
    lo, hi = added["ci"]
    # Whole milliseconds, or tenths when the shift is small (a "-0" says nothing).
    digits = 0 if max(abs(lo), abs(hi)) >= 10 else 1
    return f"{added['p50']:+.{digits}f} ms [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def _cells(route: RouteView) -> list[str | Cell]:
    name = Cell(route.target, "red") if route.flags else route.target
    return [
        str(route.rank),
        name,
        str(route.n),
        _uptime(route),
        fmt(route.ttft_ms.get("p50")),
        _added(route),
        "-" if route.tokens_per_s_p50 is None else f"{route.tokens_per_s_p50:.1f}",
        "-" if route.usage_ratio is None else f"{route.usage_ratio:.2f}x",
        "-" if route.usd_per_mtok_output is None else f"{route.usd_per_mtok_output:.2f}",
    ]


def compare_text(view: CompareView) -> Text:
    out = Text()
    if not view.groups:
        out.append(
            "no group of two or more routes runs this probe: set the same `model` (or "
            "`group:`) on the targets to compare"
        )
        return out
    for i, group in enumerate(view.groups):
        if i:
            out.append("\n\n")
        ref = f", reference {group.reference}" if group.reference else ", no reference"
        out.append(f"{group.model} ({view.probe}, last {view.window}{ref})\n", style="bold")
        out.append_text(render_table(COLUMNS, [_cells(r) for r in group.routes]))
        for route in group.routes:
            words = [f"flagged {', '.join(route.flags)}"] if route.flags else []
            words += route.notes
            if words:
                text = f"{route.target}: {'; '.join(words)}"
                out.append(
                    "\n" + textwrap.fill(text, WIDTH, initial_indent="  ", subsequent_indent="    ")
                )
    return out


def compare_command(
    config_path: Path, window: str, probe: str, model: str | None, as_json: bool
) -> int:
    """Exit 0, or 2 with one `error:` line on bad input, 1 when the database fails."""
    cfg = load_or_report(config_path)
    if cfg is None:
        return 2
    engine = make_engine(cfg.storage.resolved_url())
    try:
        view = compare_routes(engine, cfg, datetime.now(UTC), window, probe, model)
    except ValueError as exc:
        print(f"error: --window: {exc} (got {window!r})", file=sys.stderr)
        return 2
    except Exception as exc:  # the database: one line, never a traceback
        scheme = cfg.storage.resolved_url().split("://")[0]
        print(
            f"error: {scheme} database: {type(exc).__name__}: is the schema created? "
            "run `checker db upgrade -c FILE`",
            file=sys.stderr,
        )
        return 1
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps(view.to_json()))
    else:
        console = Console() if sys.stdout.isatty() else Console(width=WIDTH)
        console.print(compare_text(view), soft_wrap=True)
    return 0
