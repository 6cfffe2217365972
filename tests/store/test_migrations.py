"""Models and migrations agree on both databases; migrations go up and down cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from checker.store import migrate, schema_version
from checker.store.db import make_engine
from tests.tools import ROOT


def test_models_and_migrations_agree(empty_db_url: str) -> None:
    before = migrate.check(empty_db_url)
    assert before[0] == ("revision", None, migrate.head_revision())
    assert any(diff[0] == "add_table" for diff in before)

    migrate.upgrade(empty_db_url)
    assert migrate.check(empty_db_url) == []
    assert migrate.current_revision(empty_db_url) == migrate.head_revision()


def test_upgrade_is_idempotent_and_downgrade_reverses(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    migrate.upgrade(empty_db_url)  # a restart upgrades again: must be a no-op
    assert migrate.check(empty_db_url) == []

    migrate.downgrade(empty_db_url, "base")
    engine = make_engine(empty_db_url)
    try:
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()

    migrate.upgrade(empty_db_url)
    assert migrate.check(empty_db_url) == []


def test_check_reports_a_drifted_schema(db_url: str) -> None:
    # The agreement test is only meaningful if check() sees real differences.
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_rollups_target_hour_counts"))
    finally:
        engine.dispose()
    diffs = migrate.check(db_url)
    assert [d[0] for d in diffs] == ["add_index"]
    assert diffs[0][1].name == "ix_rollups_target_hour_counts"


def test_migrations_are_found_and_need_no_ini() -> None:
    location = migrate.script_location()
    assert (location / "env.py").is_file()
    assert any((location / "versions").glob("*.py"))
    assert migrate.head_revision() is not None


def test_head_read_from_the_files_is_alembics_head(tmp_path: Path) -> None:
    assert schema_version.head_from_files() == migrate.head_revision()
    # Two heads (a branched history) is not a question the files answer: ask Alembic.
    versions = tmp_path / "versions"
    versions.mkdir()
    for rev, parent in (("a", None), ("b", '"a"'), ("c", '"a"')):
        (versions / f"{rev}.py").write_text(
            f'revision: str = "{rev}"\ndown_revision: str | None = {parent or "None"}\n'
        )
    assert schema_version.head_from_files(versions) is None


def test_a_restart_at_head_does_not_import_alembic(empty_db_url: str) -> None:
    # The first start migrates; the next one finds the schema current and leaves Alembic
    # (11 MB, 60 ms) unloaded. Each in a fresh interpreter, as the service starts.
    code = (
        "import sys; from checker.store.startup import at_head, upgrade_or_explain; "
        "before = at_head(sys.argv[1]); upgrade_or_explain(sys.argv[1]); "
        "print(before, at_head(sys.argv[1]), 'alembic' in sys.modules)"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, empty_db_url], capture_output=True, text=True, cwd=ROOT
        )
        for _ in range(2)
    ]
    assert [r.stdout.split() for r in runs] == [
        ["False", "True", "True"],
        ["True", "True", "False"],
    ], [r.stderr for r in runs]


def test_0011_keeps_rollups_and_targets_across_upgrade_and_downgrade(empty_db_url: str) -> None:
    # Rows from before 0011 survive it with NULL round counts (read as per-result counts)
    # and survive its downgrade; the new columns come and go.
    migrate.upgrade(empty_db_url, "0010")
    engine = make_engine(empty_db_url)
    hour = "2026-12-07 10:00:00"
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO rollups (hour, target, probe, location, total, ok_count,"
                    " maintenance_count, sli_ok_count, sli_rate_limited_count, errors,"
                    " latency_sketch, ttft_sketch, tokens_per_s_sketch, cost_usd, cost_count,"
                    " prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens)"
                    " VALUES (:hour, 'a', 'models', 'east', 60, 59, 0, 59, 0, '{}', '{}', '{}',"
                    " '{}', 0, 0, 0, 0, 0, 0)"
                ),
                {"hour": hour},
            )
        migrate.upgrade(empty_db_url)
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT total, fleet_valid FROM rollups")).one()
            assert tuple(row) == (60, None)
            columns = {c["name"] for c in sa.inspect(conn).get_columns("targets")}
            assert {"interval_s", "quorum_locations", "quorum_share"} <= columns
        migrate.downgrade(empty_db_url, "0010")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT total FROM rollups")).scalar_one() == 60
            columns = {c["name"] for c in sa.inspect(conn).get_columns("rollups")}
            assert "fleet_valid" not in columns
    finally:
        engine.dispose()
