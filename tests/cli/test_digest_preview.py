"""`checker digest --preview FILE` through the real entry point: a period without any
result reads "No data yet" instead of empty tables, and a suffix it cannot write is one
error line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.cli.digest import digest_command
from tests.cli.test_operator import write
from tests.tools import run_cli


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """One route (ds) over an empty, migrated SQLite database."""
    return write(tmp_path)


def test_an_unknown_suffix_is_one_error_line_and_exit_2(config: Path, tmp_path: Path) -> None:
    target = tmp_path / "digest.pdf"
    out = run_cli("digest", "-c", str(config), "--preview", str(target))
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"error: --preview {target}: unknown suffix '.pdf'; expected .html, .txt or .md"
    ]
    assert out.stdout == "" and not target.exists()


def test_a_period_without_data_says_no_data_yet(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process: the command the entry point runs (above), without another interpreter.
    html = tmp_path / "digest.html"
    assert digest_command(config, html, False, None) == 0
    wrote = capsys.readouterr().out.strip()
    assert wrote == f"wrote {html}: No data yet: no route has a result in this period."
    page = html.read_text()
    assert '<div class="empty-banner"' in page and ">No data yet</div>" in page
    assert "route has a stored result in this period: ds" in page
    # No empty tables or charts: neither the summary, nor a route's card, nor its charts.
    assert "<table" not in page and "Uptime per hour" not in page
    # The text part and the chat summary say the same.
    for name, banner in (("digest.txt", "*** No data yet ***"), ("digest.md", "**No data yet**")):
        assert digest_command(config, tmp_path / name, False, None) == 0
        text = (tmp_path / name).read_text()
        assert banner in text and "route has a stored result in this period: ds" in text
        assert "uptime" not in text.lower()
