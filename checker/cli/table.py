"""Aligned text tables for the CLI, fitted to the terminal's width.

rich's Table measures, wraps and pads every cell as a renderable: ~1.2 million Python
calls and about a second of CPU for the 200 rows x 13 columns of `checker status` at 200
targets, more than the database query. These tables only need aligned columns and a
colour for some cells, which one pass over the strings gives.

Fitting a width never wraps a number: columns are dropped whole, least useful first (each
column says how dispensable it is), and only the last column, when it is text, wraps onto
continuation lines, at spaces but never before a number, so "server_error 3" stays whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text

__all__ = ["GAP", "Cell", "Column", "fmt", "render", "wrap_text"]

GAP = "  "
# The narrowest a wrapping last column is squeezed to before more columns are dropped.
FLEX_MIN = 16


def fmt(value: float | None, digits: int = 0) -> str:
    """A table number: "-" when not measured."""
    return "-" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # right-align (numbers)
    # A label over a run of neighbouring columns that share it ("latency ms" over p50 p95).
    group: str = ""
    # 0: always shown; otherwise, when the table is too wide, the highest goes first.
    drop: int = 0


@dataclass(frozen=True)
class Cell:
    """A cell with a rich style (e.g. "red"); plain cells are just strings."""

    text: str
    style: str = ""


# A count after its word ("server_error 3", "6,") is glued to it: never a line of its own.
_NUMBER = re.compile(r"^[\d.]+[,;:%)]*$")


def wrap_text(text: str, width: int) -> list[str]:
    """Lines of at most `width` characters, broken at spaces but never before a number,
    and inside a word only when the word alone is wider than the line."""
    if len(text) <= width:
        return [text]
    glued: list[str] = []
    for word in text.split(" "):
        if glued and _NUMBER.match(word):
            glued[-1] += " " + word
        else:
            glued.append(word)
    # A glued pair wider than the line comes apart again rather than be cut mid-word.
    words = [w for g in glued for w in (g.split(" ") if len(g) > width else [g])]
    lines: list[str] = []
    line = ""
    for word in words:
        candidate = f"{line} {word}" if line else word
        if len(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        pieces = [word[i : i + width] for i in range(0, len(word), width)] or [""]
        lines.extend(pieces[:-1])
        line = pieces[-1]
    lines.append(line)
    return lines


def _group_runs(columns: Sequence[Column]) -> list[tuple[str, int, int]]:
    """(label, first, last) for each run of neighbouring columns sharing a group label."""
    runs: list[tuple[str, int, int]] = []
    for i, col in enumerate(columns):
        if col.group and runs and runs[-1][0] == col.group and runs[-1][2] == i - 1:
            runs[-1] = (col.group, runs[-1][1], i)
        elif col.group:
            runs.append((col.group, i, i))
    return runs


def _widths(columns: Sequence[Column], natural: Sequence[int]) -> list[int]:
    """Natural widths, widened where a group's label is longer than its columns."""
    widths = list(natural)
    for label, first, last in _group_runs(columns):
        span = sum(widths[first : last + 1]) + len(GAP) * (last - first)
        widths[last] += max(0, len(label) - span)
    return widths


def _flexible(columns: Sequence[Column]) -> bool:
    return bool(columns) and not columns[-1].right


def _total(columns: Sequence[Column], natural: Sequence[int], keep: Sequence[int]) -> int:
    """The width of the kept columns, a wrapping last column counted at FLEX_MIN."""
    cols = [columns[i] for i in keep]
    widths = _widths(cols, [natural[i] for i in keep])
    if _flexible(cols):
        widths[-1] = min(widths[-1], max(FLEX_MIN, len(cols[-1].header)))
    return sum(widths) + len(GAP) * (len(widths) - 1)


def _fit(columns: Sequence[Column], natural: Sequence[int], width: int) -> list[int]:
    """The indexes of the columns kept: the most dispensable dropped (of equals, the
    rightmost) until the table fits; then each dropped one, the most useful first, comes
    back if it still fits (a p95 under a group label wider than p50 alone costs nothing)."""
    keep = list(range(len(columns)))
    dropped: list[int] = []
    while _total(columns, natural, keep) > width:
        droppable = [i for i in keep if columns[i].drop]
        if not droppable:
            break
        dropped.append(max(droppable, key=lambda i: (columns[i].drop, i)))
        keep.remove(dropped[-1])
    for i in reversed(dropped):
        trial = sorted([*keep, i])
        if _total(columns, natural, trial) <= width:
            keep = trial
    return keep


def _group_line(columns: Sequence[Column], widths: Sequence[int]) -> str:
    starts = [sum(widths[:i]) + len(GAP) * i for i in range(len(widths))]
    line = [" "] * (starts[-1] + widths[-1])
    for label, first, last in _group_runs(columns):
        span = starts[last] + widths[last] - starts[first]
        line[starts[first] : starts[first] + span] = label.center(span)
    return "".join(line).rstrip()


def render(
    columns: Sequence[Column], rows: Iterable[Sequence[str | Cell]], width: int | None = None
) -> Text:
    """The table as one Text: group labels (when any column has one), a bold header, a
    rule, one line per row. Cell text is taken literally (no markup), so a provider's
    "[...]" in an error detail prints as is. With `width`, columns are dropped and the
    last one wrapped so that no line is longer, as far as the kept columns allow."""
    cells = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} cells for {len(columns)} columns")
    natural = [len(col.header) for col in columns]
    for row in cells:
        for i, cell in enumerate(row):
            natural[i] = max(natural[i], len(cell.text))
    keep = list(range(len(columns))) if width is None else _fit(columns, natural, width)
    cols = [columns[i] for i in keep]
    cells = [[row[i] for i in keep] for row in cells]
    widths = _widths(cols, [natural[i] for i in keep])
    last = len(cols) - 1
    indent = sum(widths[:last]) + len(GAP) * last
    if width is not None and _flexible(cols) and indent + widths[last] > width:
        widths[last] = max(width - indent, min(widths[last], len(cols[last].header), FLEX_MIN))

    def pad(text: str, i: int) -> str:
        if cols[i].right:
            return text.rjust(widths[i])
        return text if i == last else text.ljust(widths[i])

    out = Text()
    if any(col.group for col in cols):
        out.append(_group_line(cols, widths) + "\n", style="bold")
    out.append(GAP.join(pad(col.header, i) for i, col in enumerate(cols)), style="bold")
    out.append("\n" + GAP.join("-" * w for w in widths))
    for row in cells:
        out.append("\n")
        tail = row[last]
        for i, cell in enumerate(row[:last]):
            out.append(pad(cell.text, i), style=cell.style or None)
            if i < last - 1 or tail.text or cols[last].right:
                out.append(GAP)
        lines = wrap_text(tail.text, widths[last]) if _flexible(cols) else [tail.text]
        for n, line in enumerate(lines):
            if n:
                out.append("\n" + " " * indent)
            out.append(pad(line, last), style=tail.style or None)
    return out
