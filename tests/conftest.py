"""Shared test wiring: each fixture family lives in its own module."""

pytest_plugins = ["tests.fixtures_sim", "tests.fixtures_db", "tests.fixtures_notify"]
