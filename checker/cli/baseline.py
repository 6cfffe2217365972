"""`checker baseline`: a route's accepted identity (system fingerprint, returned model,
identity signature) next to what it serves now; `--accept` makes the current values the
baseline, which resolves an open `drift` ticket at the next evaluation round."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from checker.alerting.drift_inputs import identities_of
from checker.alerting.drift_rule import FIELDS
from checker.cli.config_file import load_or_report
from checker.cli.table import Cell, Column
from checker.cli.table import render as render_table
from checker.store import baselines
from checker.store.db import make_engine

__all__ = ["baseline_command"]


def baseline_command(config_path: Path, target_name: str, accept: bool, as_json: bool) -> int:
    cfg = load_or_report(config_path)
    if cfg is None:
        return 2
    target = next((t for t in cfg.targets if t.name == target_name), None)
    if target is None or target.kind == "http":
        known = ", ".join(t.name for t in cfg.targets if t.kind != "http") or "none"
        print(f"error: TARGET: expected an LLM target of {config_path} ({known})", file=sys.stderr)
        return 2
    engine = make_engine(cfg.storage.resolved_url())
    now = datetime.now(UTC)
    try:
        with engine.connect() as conn:
            stored = baselines.baselines_of(conn, [target.name]).get(target.name, {})
            found, _ = identities_of(conn, cfg, [target])
        identity = found[target.name]
        current = {f: h[-1][1] for f, h in identity.history.items()}
        if accept:
            baselines.accept(engine, target.name, current, now)
            stored = {**stored, **current}
    except Exception as exc:  # the database: one line, never a traceback
        print(f"error: cannot read baselines: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    rows = [
        {"field": f, "baseline": stored.get(f), "current": current.get(f)}
        for f in FIELDS
        if f in stored or f in current
    ]
    if as_json:
        print(json.dumps({"target": target.name, "accepted": accept, "fields": rows}))
        return 0
    if not rows:
        print(f"{target.name}: no identity values recorded yet")
        return 0
    table: list[list[str | Cell]] = [
        [
            r["field"] or "-",
            r["baseline"] or "-",
            Cell(r["current"] or "-", "" if r["current"] == r["baseline"] else "yellow"),
        ]
        for r in rows
    ]
    Console().print(render_table([Column("field"), Column("baseline"), Column("now")], table))
    if accept:
        print(f"{target.name}: the current values are the baseline now")
    return 0
