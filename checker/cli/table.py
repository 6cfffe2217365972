"""Aligned text tables for the CLI.

rich's Table measures, wraps and pads every cell as a renderable: ~1.2 million Python
calls and about a second of CPU for the 200 rows x 13 columns of `checker status` at 200
targets, more than the database query. These tables only need aligned columns and a
colour for some cells, which one pass over the strings gives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.text import Text

GAP = "  "


def fmt(value: float | None, digits: int = 0) -> str:
    """A table number: "-" when not measured."""
    return "-" if value is None else f"{value:.{digits}f}"


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # right-align (numbers)


@dataclass(frozen=True)
class Cell:
    """A cell with a rich style (e.g. "red"); plain cells are just strings."""

    text: str
    style: str = ""


def render(columns: Sequence[Column], rows: Iterable[Sequence[str | Cell]]) -> Text:
    """The table as one Text: a bold header, a rule, one line per row. Cell text is taken
    literally (no markup), so a provider's "[...]" in an error detail prints as is."""
    cells = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
    for row in cells:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} cells for {len(columns)} columns")
    widths = [len(col.header) for col in columns]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell.text))
    last = len(columns) - 1

    def pad(text: str, i: int) -> str:
        if columns[i].right:
            return text.rjust(widths[i])
        return text if i == last else text.ljust(widths[i])

    out = Text()
    out.append(GAP.join(pad(col.header, i) for i, col in enumerate(columns)), style="bold")
    out.append("\n" + GAP.join("-" * w for w in widths))
    for row in cells:
        out.append("\n")
        for i, cell in enumerate(row):
            if i:
                out.append(GAP)
            out.append(pad(cell.text, i), style=cell.style or None)
    return out
