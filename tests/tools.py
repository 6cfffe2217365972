"""External tools some tests need: skipped with a reason locally, required in CI."""

from __future__ import annotations

import os
import shutil

import pytest


def required_tool(name: str, install: str) -> str:
    """The tool's path; skip locally when it is missing, but CI must have it."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required in CI: {install}")
        pytest.skip(f"{name} not installed ({install})")
    return path
