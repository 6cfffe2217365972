"""Fail when a module in checker/ grows past the size a person can hold in their head.

Over 400 lines needs a reason (a module that is one job and reads best whole): it is listed
in WHOLE with that reason. Nothing may pass 600 lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

SOFT, HARD = 400, 600
# path -> why it stays whole (also in the README's layout section).
WHOLE: dict[str, str] = {
    "checker/cli/__init__.py": "the command table: each verb maps options to its stage",
    "checker/config/schema.py": "the config file's models, one per section: the format's reference",
    "checker/cost/prices.py": "the price book: catalogue lookup, overrides and month projection",
    "checker/store/models.py": "every table of the database in one place, as Alembic sees them",
}


def main() -> int:
    root = Path(__file__).resolve().parent.parent / "checker"
    problems = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > HARD:
            problems.append(f"{rel}: {lines} lines; at most {HARD}")
        elif lines > SOFT and rel not in WHOLE:
            problems.append(f"{rel}: {lines} lines; split it or list it in WHOLE with a reason")
    for rel in WHOLE:
        if not (root.parent / rel).exists():
            problems.append(f".ci/file_sizes.py: WHOLE names {rel}, which does not exist")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
