"""`checker incidents` for people: local times to the second in the zone TZ names,
durations like "1h 12m", and what burned; `--json` keeps ISO 8601 UTC at full precision.

The incidents are opened by the real evaluator from stored probe results, then listed
through the real entry point."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from checker.alerting.evaluator import evaluate_targets
from checker.cli.human_time import local_time
from checker.cli.incidents_table import SloTerms, incident_rows, what_happened
from checker.config.load import parse
from checker.probes.base import ErrorKind, ProbeResult
from checker.redact import Redactor
from checker.store import migrate
from checker.store.db import make_engine
from checker.store.models import result_to_row
from checker.store.writer import insert_results, new_uid
from checker.units import format_elapsed
from checker.web.status_data import incidents
from tests.alerting.test_evaluator_batch import context
from tests.tools import run_cli

BERLIN = ZoneInfo("Europe/Berlin")


def write_config(tmp_path: Path) -> tuple[Path, str]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate.upgrade(url)
    path = tmp_path / "c.yaml"
    path.write_text(
        "targets:\n"
        "  - {name: flaky, kind: http, base_url: 'http://127.0.0.1:9/x', interval: 1m}\n"
        "defaults: {slo: {availability: 99.5%}}\n"
        f"storage: {{url: '{url}'}}\n"
    )
    return path, url


def burn_an_hour(url: str, path: Path, at: datetime) -> None:
    """An hour of one probe a minute up to `at`, its last 20 failed; then one round of
    the evaluator at `at`: down and the 1h page burn share a page, the budget a ticket."""
    engine = make_engine(url)
    rows = []
    for k in range(60):
        started = at - timedelta(minutes=k, seconds=1)  # the window ends just after
        r = ProbeResult(target="flaky", probe="http", started_at=started)
        r.status, r.ok, r.latency_ms = 200, True, 20.0
        if k < 20:
            r.status = 503
            r.fail(ErrorKind.server_error, "HTTP 503 upstream unavailable")
        rows.append(result_to_row(r, uid=new_uid(), maintenance=False))
    with engine.begin() as conn:
        insert_results(conn, rows)
    cfg = parse(path.read_text())
    ctx = context(cfg)  # no channels: the incidents are what this test reads
    evaluate_targets(engine, ctx, cfg.targets, at)
    engine.dispose()


def what_column(text: str) -> dict[str, str]:
    """Each row's last cell, its continuation lines (indented to the column) joined back."""
    lines = text.splitlines()
    start = lines[0].index("what")
    rows: dict[str, str] = {}
    for line in lines[2:]:
        if line[:start].strip():
            key = line.split()[0]
            rows[key] = line[start:]
        else:
            rows[key] += " " + line[start:]
    return rows


def test_incidents_read_local_to_the_second_and_say_what_burned(tmp_path: Path) -> None:
    path, url = write_config(tmp_path)
    # Opened 72 minutes ago, at a moment with microseconds, as real moments have.
    opened = datetime.now(UTC).replace(microsecond=123456) - timedelta(minutes=72)
    burn_an_hour(url, path, opened)
    # The JSON (the same rows `--json` prints) keeps ISO 8601 UTC, every digit.
    engine = make_engine(url)
    docs = [i.to_json() for i in incidents(engine, Redactor([]), open_only=False)]
    engine.dispose()
    assert {tuple(d["rules"]) for d in docs} == {("down", "burn_page"), ("budget",)}
    assert {d["opened_at"] for d in docs} == {opened.isoformat().replace("+00:00", "Z")}

    shown = run_cli("incidents", "-c", str(path), env={**os.environ, "TZ": "Europe/Berlin",
                                                       "COLUMNS": "80"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert max(len(line) for line in text.splitlines()) <= 80, text
    # Berlin in December is CET (UTC+1), in summer CEST: the zone's own name either way.
    berlin = opened.astimezone(BERLIN)
    expected = f"{berlin:%Y-%m-%d %H:%M:%S} {berlin.tzname()}"
    assert text.count(expected) == 2, text
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", text) and "+00:00" not in text
    # Still open: the duration runs to now, in its two largest units.
    assert re.search(r"\b1h 1[23]m\b", text), text
    what = {docs_id: cell for docs_id, cell in what_column(text).items()}
    page, budget = (what[str(d["id"])] for d in sorted(docs, key=lambda d: d["rules"][0] != "down"))
    # 20 bad of 60 at a 0.5% budget: an error rate of 1/3 burns it 66.7 times too fast.
    # Both page windows fired (6h holds the same hour): each says its rate and threshold.
    assert page.startswith(
        "error budget burn 66.7x over 1h (threshold 14.4x), 66.7x over 6h (threshold 6x,"
        " SLO 99.5%);"
    ), page
    assert page.endswith("; HTTP 503 upstream unavailable"), page
    # Budget remaining 1 - 20 / (60 x 0.005) = -65.67: 66.67 budgets spent.
    assert budget == "error budget 6666.7% spent over 30d (alert below 25%, SLO 99.5%)"


def test_resolved_incident_rows_in_a_given_zone() -> None:
    doc = {
        "id": 7,
        "target": "t",
        "severity": "ticket",
        "rules": ["budget"],
        "state": "resolved",
        "opened_at": "2026-07-01T10:00:00.999999Z",
        "resolved_at": "2026-07-01T11:12:30.5Z",
        "detail": None,
        "details": {"measurements": {"budget": [
            {"name": "budget_remaining", "value": 0.125, "threshold": 0.25, "op": "<",
             "unit": "ratio", "scope": None}]}},
    }  # fmt: skip
    [row] = incident_rows([doc], {}, datetime(2026, 7, 2, tzinfo=UTC), BERLIN)
    cells = [c if isinstance(c, str) else c.text for c in row]
    assert cells[5:] == [
        "2026-07-01 12:00:00 CEST",  # microseconds dropped, never rounded up
        "2026-07-01 13:12:30 CEST",
        "1h 12m",
        # No SLO known (the target left the config): the stored figures alone.
        "error budget 12.5% left (alert below 25%)",
    ]
    terms = {"t": SloTerms(0.999, 7 * 86400.0)}
    [row] = incident_rows([doc], terms, datetime(2026, 7, 2, tzinfo=UTC), BERLIN)
    assert row[-1] == "error budget 12.5% left over 1w (alert below 25%, SLO 99.9%)"
    assert local_time("2026-12-07T13:03:12Z", BERLIN) == "2026-12-07 14:03:12 CET"
    # Other rules without a stored detail: their measurements, as the alerts word them.
    down = {"name": "consecutive_failures", "value": 3, "threshold": 3, "op": ">=",
            "unit": "", "scope": "stream"}  # fmt: skip
    doc = {"rules": ["down"], "detail": None, "details": {"measurements": {"down": [down]}}}
    assert what_happened(doc, None) == "stream: consecutive failures 3 (threshold >= 3)"


def test_durations_read_in_their_two_largest_units() -> None:
    cases = {0: "0s", -2: "0s", 45: "45s", 725: "12m 5s", 3600: "1h", 4335: "1h 12m",
             86400 + 3600: "1d 1h", 3 * 86400 + 59: "3d"}  # fmt: skip
    assert {s: format_elapsed(s) for s in cases} == cases
