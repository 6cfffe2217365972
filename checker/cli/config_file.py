"""Reading the config file for a command: its problems go to stderr, one line each."""

from __future__ import annotations

import sys
from pathlib import Path

from checker.config import load as config_mod
from checker.config.load import ConfigError
from checker.config.schema import Config

__all__ = ["load_or_report"]


def load_or_report(path: Path | str) -> Config | None:
    """The config, or None after printing each problem as an `error:` line (exit 2)."""
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return None
