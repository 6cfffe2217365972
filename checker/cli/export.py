"""`checker export`: stream raw results (or hourly rollups) to stdout as CSV or JSON lines.

Rows come oldest first from a server-side cursor and are written one at a time, so memory
stays flat however long the history. Every string value passes the config's redactor:
no secret reaches an export even if one slipped into a stored detail.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from checker.cli.config_file import load_or_report
from checker.redact import Redactor
from checker.store.db import make_engine
from checker.store.queries.export import RAW_FIELDS, ROLLUP_FIELDS, raw_rows, rollup_rows
from checker.units import parse_duration

__all__ = ["FORMATS", "cell", "export_command", "export_rows", "parse_time"]

FORMATS = ("csv", "jsonl")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_time(option: str, value: str, now: datetime) -> datetime:
    """An aware UTC datetime from `24h`/`7d` (now minus that), a date or an ISO datetime.

    Naive datetimes and bare dates are taken as UTC; raise ValueError with a message that
    names `option` and what it expects.
    """
    expected = f"{option}: expected an ISO date/datetime or a duration like 24h, 7d"
    text = value.strip()
    if text and text[-1].isalpha() and not _DATE.match(text):
        try:
            return now - timedelta(seconds=parse_duration(text))
        except ValueError:
            pass
    try:
        if _DATE.match(text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{expected} (got {value!r})") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def iso(value: datetime) -> str:
    """ISO 8601 in UTC with a 'Z', microseconds kept when present."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cell(value: Any, redact: Callable[[str], str]) -> Any:
    """A value as JSON lines carry it: datetimes as ISO 'Z' strings, strings redacted,
    JSON columns (dicts, lists) as they are; floats untouched (json/repr is exact)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, str):
        return redact(value)
    return value


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # full precision: 7.4e-06 stays 7.4e-06
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def export_rows(
    rows: Iterator[dict[str, Any]],
    fields: Sequence[str],
    fmt: str,
    secrets: Sequence[str],
    out: TextIO = sys.stdout,
) -> int:
    """Write each row as it arrives; return how many were written."""
    redactor = Redactor(secrets)
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            writer.writerow([_csv_cell(cell(row[f], redactor.text)) for f in fields])
            count += 1
    else:
        for row in rows:
            doc = {f: cell(row[f], redactor.text) for f in fields}
            if isinstance(doc.get("errors"), dict):  # rollup errors: redact their keys too
                doc["errors"] = {redactor.text(k): v for k, v in doc["errors"].items()}
            out.write(json.dumps(doc) + "\n")
            count += 1
    out.flush()
    return count


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def export_command(
    config_path: Path | str,
    since: str | None,
    until: str | None,
    targets: Sequence[str],
    probe: str | None,
    fmt: str,
    rollups: bool,
) -> int:
    """`checker export -c FILE ...`: exit 0 when every row was written, 1 when the database
    failed, 2 on bad input (one `error:` line naming the option)."""
    if fmt not in FORMATS:
        _error(f"--format: expected csv or jsonl (got {fmt!r})")
        return 2
    now = datetime.now(UTC)
    try:
        start = parse_time("--since", since, now) if since is not None else None
        end = parse_time("--until", until, now) if until is not None else None
    except ValueError as exc:
        _error(str(exc))
        return 2
    cfg = load_or_report(config_path)
    if cfg is None:
        return 2
    engine = make_engine(cfg.storage.resolved_url())
    reader, fields = (rollup_rows, ROLLUP_FIELDS) if rollups else (raw_rows, RAW_FIELDS)
    try:
        export_rows(reader(engine, start, end, targets, probe), fields, fmt, cfg.secrets())
    except BrokenPipeError:
        # `| head`: the reader went away, which is fine; silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # one clear line instead of a traceback
        _error(f"database: {type(exc).__name__}: run `checker db upgrade -c FILE` first?")
        return 1
    finally:
        engine.dispose()
    return 0
