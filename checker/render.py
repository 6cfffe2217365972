"""The one Jinja2 environment and every filter the templates use.

Every template in templates/ renders through `env()`: alert messages, the digest (HTML,
plain text, chat markdown), the status page and badges. Autoescaping follows the template's
suffix (`*.html.j2`, `*.svg.j2` escape; text and markdown do not), so one environment
serves both kinds without a second configuration drifting from the first.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2

from checker.units import format_duration

__all__ = [
    "env",
    "fmt_change",
    "fmt_local",
    "fmt_metric",
    "fmt_ms",
    "fmt_num",
    "fmt_pct",
    "fmt_tokens",
    "fmt_usd",
    "human_duration",
    "measured",
    "sparkline",
    "templates_dir",
    "when",
]

# Whole documents whose last line ends in a newline (a text/plain file should); the other
# templates never rendered it (alert parts are stripped by their caller, the status page and
# badges end at their closing tag). Kept per template so every output stays byte for byte.
_KEEP_TRAILING_NEWLINE = frozenset({"digest.html.j2", "digest.txt.j2", "digest_chat.md.j2"})
_AUTOESCAPE_SUFFIXES = ("html.j2", "svg.j2")


def templates_dir() -> Path:
    """The repo's templates/ (editable install), or the copy shipped inside the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "templates", here / "_templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("checker templates directory not found")


# --- alert filters ---------------------------------------------------------------------------


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


# --- digest filters --------------------------------------------------------------------------


class _Change(Protocol):
    """What `fmt_change` reads of a digest change (checker.digest sits above this module)."""

    @property
    def metric(self) -> str: ...
    @property
    def direction(self) -> str | None: ...
    @property
    def delta(self) -> float | None: ...
    @property
    def arrow(self) -> str: ...


def fmt_pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.2f} s" if value >= 10_000 else f"{value:.0f} ms"


def fmt_num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_usd(value: float | None, none: str = "no price") -> str:
    """Dollars with three significant digits for small sums (probes cost fractions of a cent)."""
    if value is None:
        return none
    if value == 0:
        return "$0.00"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    digits = min(2 - math.floor(math.log10(abs(value))), 10)
    return f"${value:.{digits}f}"


def fmt_tokens(value: int | None) -> str:
    if value is None:
        return "-"
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return str(value)


def fmt_change(change: _Change) -> str:
    """`▲ 12%`, `▼ 0.30 pp`, `=`; `-` when one side has no data."""
    if change.direction is None or change.delta is None:
        return "-"
    if change.direction == "same":
        return "="
    if change.metric == "uptime":
        return f"{change.arrow} {abs(change.delta) * 100:.2f} pp"
    if change.delta == float("inf"):
        return f"{change.arrow} new"
    return f"{change.arrow} {abs(change.delta) * 100:.0f}%"


def fmt_metric(value: float | None, metric: str) -> str:
    """A change row's current value in its own unit."""
    if metric == "uptime":
        return fmt_pct(value)
    if metric == "spend":
        return fmt_usd(value)
    if metric == "tokens/s":
        return fmt_num(value)
    return fmt_ms(value)


def fmt_local(at: datetime | None, timezone: str, pattern: str = "%Y-%m-%d %H:%M") -> str:
    return "-" if at is None else at.astimezone(ZoneInfo(timezone)).strftime(pattern)


def sparkline(values: Sequence[float | None]) -> str:
    """Text bars for the plain-text part: one block a value, '.' for no data."""
    blocks = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
    out = []
    for v in values:
        out.append("." if v is None else blocks[min(int(v * (len(blocks) - 1) + 0.5), 7)])
    return "".join(out)


_FILTERS: dict[str, Callable[..., str]] = {
    "duration": human_duration,
    "when": when,
    "measured": measured,
    "pct": fmt_pct,
    "ms": fmt_ms,
    "num": fmt_num,
    "usd": fmt_usd,
    "tokens": fmt_tokens,
    "change": fmt_change,
    "metric": fmt_metric,
    "local": fmt_local,
    "sparkline": sparkline,
}


# --- the environment -------------------------------------------------------------------------


class _Loader(jinja2.FileSystemLoader):
    """templates/, with one newline added to the documents that keep their last one: the
    lexer drops a single trailing newline (keep_trailing_newline=False), so those render
    exactly as under keep_trailing_newline=True and the rest exactly as before."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        if template in _KEEP_TRAILING_NEWLINE:
            source += "\n"
        return source, filename, uptodate


@functools.cache
def env() -> jinja2.Environment:
    """The one environment (built on first use: finding templates/ touches the disk)."""
    environment = jinja2.Environment(
        loader=_Loader(str(templates_dir())),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=_AUTOESCAPE_SUFFIXES, default_for_string=True, default=False
        ),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(_FILTERS)
    return environment
