"""How the status page words a target's health and its error budget (pure).

"Down" is kept for what a user would see as down: the newest probe failed and an incident
pages. A route whose newest probe succeeded is at worst "Degraded", even while a burn-rate
page is open or its budget is overspent: it answers now, it has been failing too often.
A budget overspent by less than itself reads as a share ("budget overspent by 12.5%");
beyond that as a multiple of the budget ("budget 25x overspent"), not "overspent by 2400%".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

__all__ = [
    "HEALTH_WORDS",
    "Health",
    "IncidentLike",
    "StateLike",
    "budget_words",
    "health",
    "overspent_multiple",
]

Health = Literal["up", "degraded", "failing", "down", "unknown"]
HEALTH_WORDS: dict[Health, str] = {
    "up": "Operational",
    "degraded": "Degraded",
    "failing": "Failing",
    "down": "Down",
    "unknown": "No data",
}


class StateLike(Protocol):
    """The current state of a target (store.queries.page.CurrentState)."""

    @property
    def ok(self) -> bool | None: ...


class IncidentLike(Protocol):
    """An incident (store.queries.page.IncidentView)."""

    @property
    def target(self) -> str: ...

    @property
    def severity(self) -> str: ...

    @property
    def rule_group(self) -> str: ...


def health(
    state: StateLike, open_incidents: Sequence[IncidentLike], budget_remaining: float | None
) -> Health:
    """unknown: no result yet; down: the newest probe failed and an incident pages;
    failing: it failed, nothing pages (yet); degraded: it succeeded, but an incident is
    open or the budget is overspent; up: otherwise."""
    if state.ok is None:
        return "unknown"
    if not state.ok:
        return "down" if any(i.severity == "page" for i in open_incidents) else "failing"
    if open_incidents or (budget_remaining is not None and budget_remaining < 0):
        return "degraded"
    return "up"


def overspent_multiple(remaining: float) -> float:
    """How many budgets were spent: remaining 0 is one budget, -24 is 25."""
    return 1.0 - remaining


def _multiple(x: float) -> str:
    # Truncated, so 2.99 budgets never read as 3 (but 100 computed as 99.999... is 100).
    x += 1e-9
    return f"{math.floor(x * 10) / 10:g}" if x < 10 else f"{math.floor(x):,}"


def budget_words(remaining: float | None, valid: int) -> str:
    """`98.8% left of 43,200 probes`, `budget 25x overspent (43,200 probes)`, `no data`."""
    if remaining is None or valid == 0:
        return "no data"
    if remaining >= 0:
        # Truncated: 0.04% left is not 0.1% left.
        return f"{int(remaining * 1000) / 10:.1f}% left · {valid:,} probes"
    spent = overspent_multiple(remaining)
    if spent < 2:
        # Rounded up: a sliver over the budget is never "0.0%".
        share = max(math.ceil(-remaining * 1000) / 10, 0.1)
        return f"budget overspent by {share:.1f}% · {valid:,} probes"
    return f"budget {_multiple(spent)}x overspent · {valid:,} probes"
