"""The CLI's text tables: alignment, literal cell text, and `checker status` / `check` output."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from checker.cli.table import Cell, Column, render, wrap_text
from checker.cli.width import table_width
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


def test_a_narrow_table_drops_whole_columns_and_wraps_only_the_last() -> None:
    columns = [
        Column("name"),
        Column("p50", right=True, group="latency ms"),
        Column("p95", right=True, group="latency ms", drop=2),
        Column("p99", right=True, group="latency ms", drop=3),
        Column("n", right=True),
        Column("errors"),
    ]
    row = ["alpha", "12", "345", "6789", "60", "rate_limited 3, server_error 12, timeout 1"]
    wide = render(columns, [row], width=200).plain.splitlines()
    assert wide[0] == "         latency ms"  # centred over p50 p95 p99
    assert wide[3] == "alpha   12  345  6789  60  " + row[-1]
    narrow = render(columns, [row], width=40).plain.splitlines()
    assert narrow[1].split() == ["name", "p50", "p95", "n", "errors"]  # p99 went whole
    assert max(len(line) for line in narrow) <= 40
    start = narrow[1].index("errors")
    # Wrapped at spaces, never between an error kind and its count.
    assert [line[start:] for line in narrow[3:]] == [
        "rate_limited 3,",
        "server_error 12,",
        "timeout 1",
    ]
    assert all(not line[:start].strip() for line in narrow[4:])
    # A word wider than the line is cut; "HTTP 503" stays whole.
    assert wrap_text("HTTP 503 server_error: try later", 9) == [
        "HTTP 503",
        "server_er",
        "ror: try",
        "later",
    ]


def test_status_fits_the_width_with_a_row_per_target_then_per_probe(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    url = f"sqlite:///{db}"
    migrate.upgrade(url)
    engine = make_engine(url)
    now = datetime.now(UTC)
    names = ["alpha", "a-much-longer-target-name"]
    items = generate_results(names, now - timedelta(hours=3), now, step_s=60)
    store_results(engine, items)
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
    stored = Counter((r.target, r.probe) for r, _ in items)

    def status_at(width: int) -> subprocess.CompletedProcess[str]:
        return run_cli("status", "-c", str(config), env={**os.environ, "COLUMNS": str(width)})

    with ThreadPoolExecutor(2) as pool:  # two interpreters starting at once, not in turn
        runs = dict(zip((80, 200), pool.map(status_at, (80, 200)), strict=True))
    for width, res in runs.items():
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert max(len(line) for line in lines) <= width, res.stdout
        # Units in the headers: a group line over the header line.
        assert lines[0].split()[:3] == ["uptime", "%", "latency"], lines[0]
        assert lines[1].split()[:4] == ["target", "/", "probe", "1h"], lines[1]
        assert lines[2].startswith("---")
        probes_end = lines[1].index("probes") + len("probes")
        rows = [line for line in lines[3:] if line[:1] != " " or line[:3].strip()]
        shown = [(line.split()[0], line[:probes_end].split()[-1]) for line in rows[:-2]]
        # Each target's row, then its probes' rows (the primary first, marked), indented;
        # each row with its own probe count, the target's the sum of its probes'.
        assert [name for name, _ in shown] == [
            "alpha", "stream", "models", "a-much-longer-target-name", "stream", "models"
        ]  # fmt: skip
        assert [line[:2] for line in rows[:6]] == ["al", "  ", "  ", "a-", "  ", "  "]
        assert rows[1].split()[:2] == ["stream", "*"]
        for target_row, target in ((0, "alpha"), (3, "a-much-longer-target-name")):
            counts = [int(shown[target_row + k][1]) for k in range(3)]
            assert counts[1:] == [stored[target, "stream"], stored[target, "models"]]
            assert counts[0] == counts[1] + counts[2]
            assert "last: " in rows[target_row]
        # Right-aligned numbers: every probe row has a figure ending under "24h".
        end = lines[1].index("24h") + len("24h")
        for line in (rows[1], rows[2], rows[4], rows[5]):
            assert line[end - 1].isdigit() and line[end] == " ", line
        if width == 200:  # room for every column: the tail percentiles too
            assert "p99" in lines[1] and "30d" in lines[1] and "tok/s" in lines[0]
        else:  # narrow: the least useful columns went, never a number cut in two
            assert "p99" not in lines[1] and "30d" not in lines[1]


def test_check_table_shows_tokens_cost_errors_and_brackets_literally(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.set("down", status=503, error_message="[busy] try later")
    config = tmp_path / "c.yaml"
    config.write_text(
        "targets:\n"
        + "".join(
            f"  - {{name: {route}, kind: openai, base_url: '{sim.url(route)}',"
            " model: sim-small, probes: [stream, chat],"
            " pricing: {input_per_mtok: 1.0, output_per_mtok: 2.0}}\n"
            for route in ("up", "down")
        )
    )
    res = run_cli("check", "-c", str(config), env={**os.environ, "COLUMNS": "200"})
    assert res.returncode == 1, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ms", "tokens"]  # the units, over their columns
    header = lines[1]
    assert header.split()[:3] == ["target", "probe", "result"]

    def cell(line: str, name: str) -> str:  # a right-aligned column's figure
        return line[: header.index(name) + len(name)].split()[-1]

    rows = {(line.split()[0], line.split()[1]): line for line in lines[3:]}
    for probe in ("stream", "chat"):
        up = rows["up", probe]
        assert up.split()[2] == "ok"
        tokens_in, tokens_out = int(cell(up, " in")), int(cell(up, "out"))
        assert tokens_in > 0 and tokens_out > 0, up
        # Priced by checker/cost at the configured $1 / $2 per million tokens.
        assert cell(up, "cost $") == f"{(tokens_in * 1.0 + tokens_out * 2.0) / 1e6:.6f}", up
        down = rows["down", probe]
        assert down.split()[2] == "server_error"
        assert "[busy] try later" in down
        assert cell(down, " in") == "-" and cell(down, "cost $") == "-"


def test_the_width_is_columns_else_the_tty_else_unlimited() -> None:
    assert table_width({"COLUMNS": "80"}, 120) == 80
    assert table_width({"COLUMNS": "wide"}, 120) == 120
    assert table_width({"COLUMNS": "0"}, None) is None
    assert table_width({}, None) is None  # piped: a file has no edge to fit
