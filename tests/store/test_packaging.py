"""An installed wheel must carry the migrations, and every checker package."""

from __future__ import annotations

import tomllib

import pytest

from checker.store import migrate
from tests.tools import ROOT


def _setuptools() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_wheel_maps_the_migrations_and_lists_every_package() -> None:
    setuptools = _setuptools()
    packages = setuptools.get("packages")
    if not isinstance(packages, list):
        pytest.skip("pyproject.toml does not map alembic/ to checker._migrations yet")
    assert setuptools["package-dir"]["checker._migrations"] == "alembic"
    assert "script.py.mako" in setuptools["package-data"]["checker._migrations"]
    # An explicit list means a new sub-package must be added by hand: catch a forgotten one.
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "checker").rglob("__init__.py")
    }
    assert on_disk <= set(packages), f"missing from pyproject packages: {on_disk - set(packages)}"
    assert {"checker._migrations", "checker._migrations.versions"} <= set(packages)


def test_migrations_directory_is_complete() -> None:
    location = migrate.script_location()
    assert location == ROOT / "alembic"
    assert (location / "script.py.mako").is_file()
    # No __init__.py: a package named "alembic" at the repository root would shadow the
    # Alembic library whenever the root is on sys.path (pytest, python -m from the checkout).
    assert not (location / "__init__.py").exists()
    revisions = sorted(p.name for p in (location / "versions").glob("*.py"))
    assert revisions[0].startswith("0001_")
