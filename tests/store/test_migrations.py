"""Models and migrations agree on both databases; migrations go up and down cleanly."""

from __future__ import annotations

import sqlalchemy as sa

from checker.store import migrate
from checker.store.db import make_engine


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
