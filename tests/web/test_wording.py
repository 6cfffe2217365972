"""How the status page words health and the error budget (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from checker.web.wording import budget_words, health


@dataclass(frozen=True)
class State:
    ok: bool | None


@dataclass(frozen=True)
class Incident:
    target: str
    severity: str
    rule_group: str = "down"


PAGE, TICKET = Incident("t", "page"), Incident("t", "ticket")


@pytest.mark.parametrize(
    ("ok", "incidents", "remaining", "expected"),
    [
        (None, [PAGE], -3.0, "unknown"),
        (False, [PAGE], 0.5, "down"),
        (False, [TICKET], 0.5, "failing"),
        (False, [], 0.5, "failing"),
        # The newest probe succeeded: a burn-rate page or an overspent budget is degraded.
        (True, [PAGE], -24.0, "degraded"),
        (True, [], -0.01, "degraded"),
        (True, [TICKET], 0.9, "degraded"),
        (True, [], 0.0, "up"),
        (True, [], None, "up"),
    ],
)
def test_health(
    ok: bool | None, incidents: list[Incident], remaining: float | None, expected: str
) -> None:
    assert health(State(ok), incidents, remaining) == expected


@pytest.mark.parametrize(
    ("remaining", "valid", "expected"),
    [
        (None, 0, "no data"),
        (0.5, 0, "no data"),
        (0.9886, 43200, "98.8% left · 43,200 probes"),
        (0.0004, 10, "0.0% left · 10 probes"),
        (0.0, 10, "0.0% left · 10 probes"),
        (-0.0001, 10, "budget overspent by 0.1% · 10 probes"),
        (-0.5, 10, "budget overspent by 50.0% · 10 probes"),
        (-1.0, 10, "budget 2x overspent · 10 probes"),
        (-1.99, 10, "budget 2.9x overspent · 10 probes"),
        (-24.0, 2880, "budget 25x overspent · 2,880 probes"),
        (-198.0, 2880, "budget 199x overspent · 2,880 probes"),
    ],
)
def test_budget_words(remaining: float | None, valid: int, expected: str) -> None:
    assert budget_words(remaining, valid) == expected
