"""Jinja2 rendering of alert messages (autoescaped HTML, markdown for chat)."""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2

from checker.units import format_duration


def templates_dir() -> Path:
    """The repo's templates/ (editable install), or the copy shipped inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates", here / "_templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("checker templates directory not found")


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{s:02d}s" if s else f"{minutes}m"
    hours, m = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{m:02d}m" if m else f"{hours}h"
    return format_duration(hours * 3600)


def when(value: str | datetime | None) -> str:
    if value is None:
        return "-"
    at = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else value
    return at.strftime("%Y-%m-%d %H:%M UTC")


def measured(m: dict[str, Any]) -> str:
    """`burn_rate 15.2 > 14.4`, `budget_remaining 12% < 25%`."""
    name = str(m["name"]).replace("_", " ")
    unit = m.get("unit") or ""

    def fmt(v: Any) -> str:
        if v is None:
            return "n/a"
        if unit == "ratio" and isinstance(v, int | float):
            return f"{v:.1%}"
        if isinstance(v, float):
            return f"{v:.4g}{(' ' + unit) if unit else ''}"
        return f"{v}{(' ' + unit) if unit and unit != 'ratio' else ''}"

    text = f"{name} {fmt(m['value'])}"
    if m.get("threshold") is not None:
        text += f" (threshold {m.get('op') or ''} {fmt(m['threshold'])})".replace("  ", " ")
    return text


@functools.cache
def _env(path: str, autoescape: bool) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(path),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(duration=human_duration, when=when, measured=measured)
    return env


def env(autoescape: bool = True) -> jinja2.Environment:
    return _env(str(templates_dir()), autoescape)
