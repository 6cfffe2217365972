"""Reading the config file for a command: its problems go to stderr, one line each."""

from __future__ import annotations

import sys
from pathlib import Path

from checker.config import load as config_mod
from checker.config.load import ConfigError, SecretsMode
from checker.config.schema import Config

__all__ = ["load_or_report"]


def load_or_report(path: Path | str, secrets: SecretsMode = "storage") -> Config | None:
    """The config, or None after printing each problem as an `error:` line (exit 2).
    The commands that use this read the store: they need storage secrets, not API keys."""
    try:
        return config_mod.load(path, secrets)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return None
