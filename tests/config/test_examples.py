"""Every shipped example config is valid (with its environment variables set)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from checker.config import load as config
from tests.tools import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in set(re.findall(r"\$\{([A-Z0-9_]+)\}", path.read_text())):
        value = "https://hooks.example.com/x" if "URL" in var else f"sk-example-{var.lower()}"
        monkeypatch.setenv(var, value)
    cfg = config.load(path)
    assert cfg.targets, path
    for t in cfg.targets:
        assert t.probe_names


def test_examples_cover_the_promised_routes() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"openai", "deepseek", "openrouter", "anthropic", "vllm", "relay"} <= names
