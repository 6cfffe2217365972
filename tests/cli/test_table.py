"""The CLI's text tables: alignment, literal cell text, and `checker status` / `check` output."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from checker.cli.table import Cell, Column, render
from checker.sim.server import SimServer
from checker.store import migrate
from checker.store.db import make_engine
from tests.fixtures_db import generate_results, store_results
from tests.tools import run_cli


def test_columns_align_and_numbers_right_justify() -> None:
    text = render(
        [Column("name"), Column("ms", right=True), Column("note")],
        [["a", "5", "x"], ["longer-name", "12345", Cell("bad", "red")]],
    )
    lines = text.plain.splitlines()
    assert lines[0] == "name            ms  note"
    assert lines[1] == "-----------  -----  ----"
    assert lines[2] == "a                5  x"
    assert lines[3] == "longer-name  12345  bad"
    styled = [span for span in text.spans if span.style == "red"]
    assert [text.plain[s.start : s.end] for s in styled] == ["bad"]


def test_cell_text_is_literal_not_markup() -> None:
    text = render([Column("detail")], [["[red]not markup[/] \\[x]"]])
    assert text.plain.splitlines()[2] == "[red]not markup[/] \\[x]"


def test_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 1 columns"):
        render([Column("a")], [["x", "y"]])


def test_status_table_has_one_aligned_row_per_probe(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    names = ["alpha", "a-much-longer-target-name"]
    store_results(engine, generate_results(names, now - timedelta(hours=3), now, step_s=60))
    engine.dispose()
    config = tmp_path / "c.yaml"
    config.write_text(
        "targets:\n"
        + "".join(
            f"  - {{name: {n}, kind: openai, base_url: 'http://127.0.0.1:9/v1', model: m}}\n"
            for n in names
        )
        + f"storage: {{url: '{url}'}}\n"
    )
    res = run_cli("status", "-c", str(config))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:6] == ["target", "probe", "up", "1h", "up", "24h"]
    body = [line for line in lines[2:] if line.strip() and not line.startswith("*")]
    # Each target: its primary probe's row carries the name, then its other probes' rows.
    assert [line.split()[:3] for line in body[0::2]] == [
        ["alpha", "stream", "*"],
        ["a-much-longer-target-name", "stream", "*"],
    ]
    assert [line.split()[0] for line in body[1::2]] == ["models", "models"]
    # Right-aligned: the 24h uptime column ends at the same place on every line.
    end = lines[0].index("up 24h") + len("up 24h")
    for line in body:
        assert line[end - 1] == "%", line
        assert line[end] == " "


def test_check_table_shows_errors_and_brackets_literally(sim: SimServer, tmp_path: Path) -> None:
    sim.set("down", status=503, error_message="[busy] try later")
    config = tmp_path / "c.yaml"
    config.write_text(
        "targets:\n"
        + "".join(
            f"  - {{name: {route}, kind: openai, base_url: '{sim.url(route)}',"
            " model: sim-small, probes: [stream]}\n"
            for route in ("up", "down")
        )
    )
    res = run_cli("check", "-c", str(config))
    assert res.returncode == 1, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split()[:3] == ["target", "probe", "result"]
    by_target = {line.split()[0]: line for line in lines[2:]}
    assert by_target["up"].split()[2] == "ok"
    assert by_target["down"].split()[2] == "server_error"
    assert "[busy] try later" in by_target["down"]
