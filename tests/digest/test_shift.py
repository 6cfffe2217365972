"""The profile-shift rule (pure), and the digest section from a real SQLite database."""

from __future__ import annotations

import pytest

from checker.digest.shift import (
    MIN_PROBES_FOR_SHIFT,
    ProfileShift,
    Quartiles,
    profile_shift,
    quartiles,
)
from checker.store.sketch import Sketch

N = MIN_PROBES_FOR_SHIFT
DAY_BEFORE = Quartiles(p25=400.0, p50=500.0, p75=600.0, count=N)


# --- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize("p50", [400.0, 450.0, 500.0, 600.0])
def test_a_median_inside_the_previous_iqr_is_no_shift(p50: float) -> None:
    current = Quartiles(p50 - 50, p50, p50 + 50, N)
    assert profile_shift("r", "stream", "ttft", DAY_BEFORE, current) is None


@pytest.mark.parametrize(("p50", "direction"), [(399.0, "down"), (601.0, "up"), (1500.0, "up")])
def test_a_median_outside_the_previous_iqr_is_a_shift(p50: float, direction: str) -> None:
    current = Quartiles(p50 - 50, p50, p50 + 50, N + 5)
    found = profile_shift("r", "stream", "ttft", DAY_BEFORE, current)
    assert found == ProfileShift("r", "stream", "ttft", DAY_BEFORE, p50, N + 5, direction)  # type: ignore[arg-type]
    assert found is not None and found.label == "TTFT"


@pytest.mark.parametrize(("before", "now"), [(N - 1, N), (N, N - 1), (0, 0), (N - 1, 10 * N)])
def test_too_few_probes_on_either_day_is_no_shift(before: int, now: int) -> None:
    previous = Quartiles(400.0, 500.0, 600.0, before)
    current = Quartiles(1400.0, 1500.0, 1600.0, now)
    assert profile_shift("r", "stream", "tokens_per_s", previous, current) is None


def test_a_missing_day_is_no_shift() -> None:
    current = Quartiles(1400.0, 1500.0, 1600.0, N)
    assert profile_shift("r", "stream", "ttft", None, current) is None
    assert profile_shift("r", "stream", "ttft", DAY_BEFORE, None) is None


def test_quartiles_of_a_sketch_carry_its_count() -> None:
    assert quartiles(Sketch()) is None
    q = quartiles(Sketch(float(v) for v in range(1, 101)))
    assert q is not None and q.count == 100
    assert q.p25 == pytest.approx(25, rel=0.02)
    assert q.p50 == pytest.approx(50, rel=0.02)
    assert q.p75 == pytest.approx(75, rel=0.02)
