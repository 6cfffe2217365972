"""`checker status`: any window up to the rollup retention, figures per probe."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from checker.store import migrate
from checker.store.db import make_engine
from tests.fixtures_db import generate_results, store_results
from tests.tools import run_cli


def stored_config(tmp_path: Path) -> tuple[Path, list]:  # type: ignore[type-arg]
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    items = generate_results(["alpha"], now - timedelta(hours=30), now, step_s=300)
    store_results(engine, items)
    engine.dispose()
    config = tmp_path / "c.yaml"
    config.write_text(
        "targets:\n"
        "  - {name: alpha, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
        f"storage: {{url: '{url}'}}\n"
    )
    return config, items


def test_any_window_up_to_the_retention(tmp_path: Path) -> None:
    config, items = stored_config(tmp_path)
    now = datetime.now(UTC)
    for window, hours in (("12h", 12.0), ("90d", 90 * 24.0), ("1h30m", 1.5), ("soon", None)):
        res = run_cli("status", "-c", str(config), "--window", window, "--json")
        if hours is None:  # not a duration this tool reads: one line, exit 2
            assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
            assert "--window" in res.stderr and "soon" in res.stderr
            continue
        assert res.returncode == 0, res.stderr
        (row,) = json.loads(res.stdout)
        assert row["primary_probe"] == "stream"
        # Counted per probe: the headline is the stream probe's results only.
        since = now - timedelta(hours=hours)
        for probe, figures in row["probes"].items():
            # A result written in the second the command started may fall on either side.
            expected = sum(1 for r, _ in items if r.probe == probe and r.started_at >= since)
            assert abs(figures["results"] - expected) <= 1, (window, probe)
        assert row["results"] == row["probes"]["stream"]["results"]
    res = run_cli("status", "-c", str(config), "--window", "500d")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]
    assert "rollup retention" in res.stderr and "Traceback" not in res.stderr
