"""`checker export`: raw results and rollups streamed as CSV or JSON lines, in a child process,
from a real SQLite file (and PostgreSQL when CHECKER_TEST_PG_URL is set)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from checker.probes.base import ProbeResult
from checker.store.db import make_engine
from checker.store.queries.export import RAW_FIELDS, ROLLUP_FIELDS
from checker.store.rollup import rollup_hours
from tests.fixtures_db import generate_results, store_results
from tests.tools import ROOT, run_cli

SECRET = "sk-live-SECRETKEY-0123456789abcdef"
END = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
START = END - timedelta(hours=6)


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(
        "targets:\n"
        f"  - {{name: alpha, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m,"
        f" api_key: '{SECRET}'}}\n"
        "  - {name: beta, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
        f"storage: {{url: '{url}'}}\n"
    )
    return path


@pytest.fixture
def stored(db_url: str, tmp_path: Path) -> tuple[Path, int]:
    """alpha and beta results over six hours, plus one alpha result with a known cost and
    the api key in its detail; returns the config and how many rows are stored."""
    engine = make_engine(db_url)
    items = generate_results(["alpha", "beta"], START, END, step_s=300)
    exact = ProbeResult(target="alpha", probe="stream", started_at=START + timedelta(minutes=1))
    exact.ok, exact.cost_usd, exact.location = True, 7.4e-06, "fra"
    exact.detail = f"echoed key {SECRET}"
    items.append((exact, False))
    store_results(engine, items)
    engine.dispose()
    return _config(tmp_path, db_url), len(items)


def _csv(stdout: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(stdout)))


def test_csv_exports_every_row_oldest_first_with_exact_floats(stored: tuple[Path, int]) -> None:
    config, n = stored
    res = run_cli("export", "-c", str(config))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == ",".join(RAW_FIELDS)
    rows = _csv(res.stdout)
    assert len(rows) == n
    starts = [r["started_at"] for r in rows]
    assert all(s.endswith("Z") for s in starts)
    assert starts == sorted(starts, key=lambda s: datetime.fromisoformat(s))
    exact = [r for r in rows if r["location"] == "fra"]
    assert len(exact) == 1
    assert exact[0]["cost_usd"] == "7.4e-06"
    assert float(exact[0]["cost_usd"]) == 7.4e-06
    assert {r["maintenance"] for r in rows} <= {"true", "false"}
    assert SECRET not in res.stdout


def test_jsonl_parses_and_filters_by_target_probe_and_since(stored: tuple[Path, int]) -> None:
    config, _ = stored
    full = run_cli("export", "-c", str(config), "--format", "jsonl")
    assert full.returncode == 0, full.stderr
    docs = [json.loads(line) for line in full.stdout.splitlines()]
    assert set(docs[0]) == set(RAW_FIELDS)
    assert any(d["cost_usd"] == 7.4e-06 for d in docs)
    assert SECRET not in full.stdout

    since = START + timedelta(hours=2)
    args = ["--target", "alpha", "--probe", "stream", "--since", since.isoformat()]
    res = run_cli("export", "-c", str(config), "--format", "jsonl", *args)
    assert res.returncode == 0, res.stderr
    got = [json.loads(line) for line in res.stdout.splitlines()]
    want = [
        d
        for d in docs
        if d["target"] == "alpha"
        and d["probe"] == "stream"
        and datetime.fromisoformat(d["started_at"]) >= since
    ]
    assert got == want and got

    both = run_cli("export", "-c", str(config), "--target", "alpha", "--target", "beta")
    assert len(_csv(both.stdout)) == len(docs)
    until = run_cli("export", "-c", str(config), "--until", START.date().isoformat())
    assert until.returncode == 0 and _csv(until.stdout) == []
    # A relative --since: everything stored is older than a day before now.
    recent = run_cli("export", "-c", str(config), "--since", "24h")
    assert recent.returncode == 0 and _csv(recent.stdout) == []


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--format", "xml"], "--format"),
        (["--since", "yesterday"], "--since"),
        (["--until", "5x"], "--until"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    stored: tuple[Path, int], args: list[str], option: str
) -> None:
    config, _ = stored
    res = run_cli("export", "-c", str(config), *args)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: expected"), res.stderr


def test_rollups_export_one_row_per_rollup_row(stored: tuple[Path, int], db_url: str) -> None:
    config, n = stored
    engine = make_engine(db_url)
    assert rollup_hours(engine, START, END, now=END + timedelta(hours=1)) == 6
    engine.dispose()
    res = run_cli("export", "-c", str(config), "--rollups")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == ",".join(ROLLUP_FIELDS)
    rows = _csv(res.stdout)
    assert sum(int(r["total"]) for r in rows) == n
    assert [r["hour"] for r in rows] == sorted(r["hour"] for r in rows)
    assert {r["hour"][:13] for r in rows} == {
        (START + timedelta(hours=h)).isoformat()[:13] for h in range(6)
    }
    jl = run_cli("export", "-c", str(config), "--rollups", "--format", "jsonl", "--target", "beta")
    docs = [json.loads(line) for line in jl.stdout.splitlines()]
    assert docs and {d["target"] for d in docs} == {"beta"}
    assert all(isinstance(d["errors"], dict) for d in docs)


_PEAK_RSS = """
import resource, runpy, sys
sys.argv = ["checker", *sys.argv[1:]]
try:
    runpy.run_module("checker.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def test_export_of_50k_rows_runs_in_flat_memory(tmp_path: Path) -> None:
    from checker.store import migrate

    def peak_kib(url: str) -> int:
        cmd = [sys.executable, "-c", _PEAK_RSS, "export", "-c", str(_config(tmp_path, url))]
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return int(res.stderr.strip().splitlines()[-1])

    small, big = f"sqlite:///{tmp_path / 'small.db'}", f"sqlite:///{tmp_path / 'big.db'}"
    for url, hours in ((small, 1), (big, 110)):
        migrate.upgrade(url)
        engine = make_engine(url)
        items = generate_results(["alpha", "beta"], END - timedelta(hours=hours), END, step_s=30)
        store_results(engine, items)
        engine.dispose()
    assert len(items) > 50_000
    # A whole-table read of 50k rows costs well over 50 MiB; streaming stays near baseline.
    grown = peak_kib(big) - peak_kib(small)
    print("peak RSS growth KiB", grown)
    assert grown < 30 * 1024
