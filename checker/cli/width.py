"""How wide the tables may be: COLUMNS, else the terminal's width, else no limit.

Piped output (CI logs, `make demo`, grep) is not cut to any width unless COLUMNS asks for
one: a file has no edge to fit, and a dropped column is a lost figure.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping

__all__ = ["output_width", "table_width"]


def table_width(environ: Mapping[str, str], tty_columns: int | None) -> int | None:
    """COLUMNS when it is a positive number, else the tty's width (None: not a tty)."""
    value = environ.get("COLUMNS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return tty_columns


def output_width() -> int | None:
    """table_width for this process's stdout."""
    tty = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
    return table_width(os.environ, tty)
