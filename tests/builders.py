"""Configs for tests, built from dicts: one target() and one config() for every test file.

Tests whose point is the YAML text itself (errors by line, `${VAR}`) keep their YAML inline.
"""

from __future__ import annotations

from typing import Any

import yaml

from checker.config.load import parse
from checker.config.schema import Config

__all__ = ["config", "target"]

CHAT_PROBES = ["models", "chat", "stream", "known_answer"]


def target(base_url: str, name: str = "t", kind: str = "openai", **fields: Any) -> dict[str, Any]:
    """One target's mapping; LLM kinds get the simulator's small model and every chat probe."""
    spec: dict[str, Any] = {"name": name, "kind": kind, "base_url": base_url}
    if kind != "http":
        spec |= {"model": "sim-small", "probes": list(CHAT_PROBES)}
    return spec | fields


def config(*targets: dict[str, Any], **sections: Any) -> Config:
    """A validated Config, through the same parser as a file on disk."""
    return parse(yaml.safe_dump({"targets": list(targets), **sections}))
