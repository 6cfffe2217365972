"""`checker init`: a commented starter config that validates as written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from checker.render import templates_dir

__all__ = ["PRESETS", "Preset", "starter", "write_starter"]

Preset = Literal["openai", "deepseek-relays", "anthropic", "vllm"]
PRESETS: tuple[str, ...] = get_args(Preset)


def starter(preset: str) -> str:
    """The starter file's text (templates/starters/PRESET.yaml, shipped in the wheel)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
    return (templates_dir() / "starters" / f"{preset}.yaml").read_text(encoding="utf-8")


def write_starter(path: Path, preset: str, force: bool) -> None:
    """Write the starter to `path`, readable by its owner only: once someone pastes a key
    inline, a world-readable file would leak it. FileExistsError unless `force`."""
    text = starter(preset)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
