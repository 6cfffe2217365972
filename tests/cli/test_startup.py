"""`checker run` that cannot open its storage says why in one line and exits 2: a server
that does not answer, a read-only file, a schema from a newer checker."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.tools import run_cli

TARGET = 'targets: [{name: t, kind: http, base_url: "http://127.0.0.1:9"}]\n'


def run_with(tmp_path: Path, url: str) -> tuple[int, str]:
    config = tmp_path / "c.yaml"
    config.write_text(TARGET + f'storage: {{url: "{url}"}}\n')
    res = run_cli("run", "-c", str(config))
    return res.returncode, res.stderr


def assert_one_line(code: int, stderr: str, *needles: str) -> None:
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: storage "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_postgresql_that_does_not_answer(tmp_path: Path) -> None:
    url = "postgresql+psycopg://checker:s3cret-pw@127.0.0.1:9/none?connect_timeout=2"
    code, stderr = run_with(tmp_path, url)
    assert_one_line(code, stderr, "checker:***@127.0.0.1:9", "does not answer", "storage.url")
    assert "s3cret-pw" not in stderr


def test_a_read_only_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "ro.db"
    sqlite3.connect(db).close()
    code, stderr = run_with(tmp_path, f"sqlite:///file:{db}?mode=ro&uri=true")
    assert_one_line(code, stderr, "read-only", "writable")


@pytest.mark.parametrize("newer", ["0099"])
def test_a_schema_newer_than_this_checker(tmp_path: Path, newer: str) -> None:
    db = tmp_path / "new.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES (?)", (newer,))
    code, stderr = run_with(tmp_path, f"sqlite:///{db}")
    assert_one_line(code, stderr, "newer than this checker", "upgrade checker")
