"""checker.compare.stats: Wilson intervals, the Hodges-Lehmann shift and the ranking; the
expected numbers are worked by hand (in the comments) or counted from the exact U law."""

from __future__ import annotations

import math
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.compare.stats import (
    MAX_PAIRWISE_DIFFERENCES,
    Z_95,
    Difference,
    RouteFigures,
    _thinned_sizes,
    availability_tiers,
    difference_interval,
    indistinguishable_reason,
    intervals_overlap,
    median,
    rank,
    wilson_interval,
)

Z2 = Z_95 * Z_95

# --- Wilson --------------------------------------------------------------------------------


def test_wilson_empty_is_none() -> None:
    assert wilson_interval(0, 0) is None


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # p = 0: centre = half = (z²/2n)/(1+z²/n), so high = (z²/n)/(1+z²/n) = 0.27753.
        (0, 10, 0.0, (Z2 / 10) / (1 + Z2 / 10)),
        # p = 1 mirrors p = 0.
        (10, 10, 1 - (Z2 / 10) / (1 + Z2 / 10), 1.0),
        # n = 1, p = 1: low = n/(n+z²) = 1/4.84146 = 0.20655.
        (1, 1, 1 / (1 + Z2), 1.0),
        # The textbook example: 95/100 gives (0.8882, 0.9785).
        (95, 100, 0.8882, 0.9785),
        # p = 1/2: centre 1/2, half = 1.416·sqrt(0.025 + 0.0096) = 0.2634.
        (5, 10, 0.2366, 0.7634),
    ],
)
def test_wilson_values(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(successes, n)
    assert interval is not None
    assert interval[0] == pytest.approx(low, abs=1e-4)
    assert interval[1] == pytest.approx(high, abs=1e-4)
    # The ends at 0 and n are pinned exactly, not left to rounding.
    assert (interval[0] == 0.0) is (successes == 0)
    assert (interval[1] == 1.0) is (successes == n)


@pytest.mark.parametrize(("successes", "n"), [(-1, 10), (11, 10), (0, -1)])
def test_wilson_rejects_impossible_counts(successes: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(successes, n)


@settings(max_examples=300)
@given(
    st.integers(min_value=1, max_value=100_000).flatmap(
        lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
    )
)
def test_wilson_contains_the_proportion(counts: tuple[int, int]) -> None:
    successes, n = counts
    interval = wilson_interval(successes, n)
    assert interval is not None
    low, high = interval
    assert 0.0 <= low <= successes / n <= high <= 1.0


# --- median --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [([], None), ([3.0], 3.0), ([3.0, 1.0], 2.0), ([5.0, 1.0, 3.0], 3.0), ([1, 2, 3, 10], 2.5)],
)
def test_median(values: list[float], expected: float | None) -> None:
    assert median(values) == expected


def test_nan_and_reversed_intervals_are_rejected() -> None:
    # NaN would sort anywhere and silently corrupt every order statistic.
    for call in (lambda: median([1.0, math.nan]), lambda: difference_interval([math.nan], [1.0])):
        with pytest.raises(ValueError, match="NaN"):
            call()
    with pytest.raises(ValueError, match="low > high"):
        intervals_overlap((0.9, 0.8), (0.0, 1.0))


# --- difference_interval -------------------------------------------------------------------


def test_difference_of_empty_is_none() -> None:
    assert difference_interval([], [1.0]) is None
    assert difference_interval([1.0], []) is None


def test_difference_one_against_one() -> None:
    # k = floor(1/2 - z·sqrt(1·3/12)) = floor(-0.48) < 0: the full range, here one point.
    assert difference_interval([5.0], [3.0]) == Difference(2.0, 2.0, 2.0, 1, 1)


def test_difference_two_against_three() -> None:
    # Differences 7, 8, 9, 17, 18, 19: median (9+17)/2 = 13; k = floor(3 - z·sqrt(3)) < 0,
    # so the interval is the full range (7, 19).
    result = difference_interval([10.0, 20.0], [1.0, 2.0, 3.0])
    assert result == Difference(13.0, 7.0, 19.0, 2, 3)
    assert result.excludes_zero


def test_difference_of_shifted_samples() -> None:
    ys = [float(y) for y in range(50)]
    xs = [y + 80 for y in ys]
    result = difference_interval(xs, ys)
    assert result is not None
    # Differences are 80 + d with d = i - j; 50 - |d| pairs give each d, symmetric about 0.
    assert result.estimate == 80.0
    # k = floor(1250 - 1.96·sqrt(2500·101/12)) = floor(965.69) = 965. The count of pairs
    # with d <= -(50 - a) is a(a+1)/2: 946 at a = 43, 990 at a = 44, so D[965] has
    # d = -6 and the interval is (74, 86).
    assert (result.low, result.high) == (74.0, 86.0)
    assert result.excludes_zero
    assert (result.n_x, result.n_y) == (50, 50)


def test_difference_of_identical_samples_contains_zero() -> None:
    sample = [0.2, 0.25, 0.3, 0.31, 0.4, 0.45, 0.5, 0.9, 1.3, 2.0] * 4
    result = difference_interval(sample, list(reversed(sample)))
    assert result is not None
    assert result.estimate == 0.0
    assert result.low < 0.0 < result.high
    assert not result.excludes_zero


def test_difference_ignores_one_huge_outlier() -> None:
    ys = [float(y) for y in range(40)]
    xs = [y + 10 for y in ys]
    clean = difference_interval(xs, ys)
    spoiled = difference_interval([*xs[:-1], 30_000.0], ys)
    assert clean is not None and spoiled is not None
    assert abs(spoiled.estimate - clean.estimate) <= 1.0


def test_difference_confidence_widens_the_interval() -> None:
    ys = [float(y) for y in range(30)]
    xs = [y + 5 for y in ys]
    at_80 = difference_interval(xs, ys, confidence=0.80)
    at_99 = difference_interval(xs, ys, confidence=0.99)
    assert at_80 is not None and at_99 is not None
    assert at_99.low < at_80.low <= at_80.high < at_99.high


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5])
def test_difference_rejects_bad_confidence(confidence: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        difference_interval([1.0], [2.0], confidence=confidence)


@cache
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """How many of the C(m+n, m) orderings give each value of U (the null distribution)."""
    if m == 0 or n == 0:
        return (1,)
    counts = [0] * (m * n + 1)
    # The largest of the m+n values is an x (it then beats all n ys) or a y.
    for u, c in enumerate(_u_counts(m - 1, n)):
        counts[u + n] += c
    for u, c in enumerate(_u_counts(m, n - 1)):
        counts[u] += c
    return tuple(counts)


@pytest.mark.parametrize(("m", "n"), [(5, 5), (6, 8), (10, 10), (20, 20), (30, 30), (30, 60)])
def test_difference_coverage_is_near_nominal(m: int, n: int) -> None:
    # Spread xs so all m·n differences are distinct and their ranks can be read off.
    xs = [1000.0 * i for i in range(m)]
    ys = [float(j) for j in range(n)]
    diffs = sorted(x - y for x in xs for y in ys)
    result = difference_interval(xs, ys)
    assert result is not None
    k = diffs.index(result.low)
    assert diffs[m * n - 1 - k] == result.high
    # The interval misses the true shift on the low side when U <= k, on the high side
    # symmetrically; the exact coverage is then 1 - 2·P(U <= k).
    counts = _u_counts(m, n)
    coverage = 1 - 2 * sum(counts[: k + 1]) / sum(counts)
    assert 0.94 <= coverage <= 0.96


def test_difference_thins_large_samples() -> None:
    ys = [0.5 * i for i in range(1000)]
    xs = [y + 80 for y in ys]
    result = difference_interval(xs, ys)
    assert result is not None
    # Thinned to 500 x 500 quantiles, the same indices of both: still exactly symmetric.
    assert result.estimate == 80.0
    assert result.low < 80.0 < result.high
    assert result.excludes_zero
    assert (result.n_x, result.n_y) == (1000, 1000)


@pytest.mark.parametrize(
    ("m", "n", "expected"),
    [
        (100, 100, (100, 100)),
        (1000, 1000, (500, 500)),
        (1, 300_000, (1, 250_000)),
        (300_000, 2, (125_000, 2)),
        (400, 5000, (400, 625)),
    ],
)
def test_thinned_sizes(m: int, n: int, expected: tuple[int, int]) -> None:
    sizes = _thinned_sizes(m, n, MAX_PAIRWISE_DIFFERENCES)
    assert sizes == expected
    assert sizes[0] * sizes[1] <= MAX_PAIRWISE_DIFFERENCES


samples = st.lists(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=1, max_size=25
)


@settings(max_examples=200)
@given(samples, samples)
def test_difference_estimate_is_inside_its_interval(xs: list[float], ys: list[float]) -> None:
    result = difference_interval(xs, ys)
    assert result is not None
    assert result.low <= result.estimate <= result.high


@settings(max_examples=200)
@given(samples, samples, st.floats(min_value=-1e3, max_value=1e3, allow_nan=False))
def test_difference_shifts_with_xs(xs: list[float], ys: list[float], c: float) -> None:
    before = difference_interval(xs, ys)
    after = difference_interval([x + c for x in xs], ys)
    assert before is not None and after is not None
    assert after.estimate == pytest.approx(before.estimate + c, abs=1e-6)
    assert after.low == pytest.approx(before.low + c, abs=1e-6)
    assert after.high == pytest.approx(before.high + c, abs=1e-6)


# --- intervals and probe counts ------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0.9, 0.99), (0.95, 1.0), True),
        ((0.9, 0.95), (0.95, 1.0), True),  # touching counts
        ((0.8, 0.9), (0.91, 1.0), False),
        ((0.91, 1.0), (0.8, 0.9), False),
        ((0.5, 1.0), (0.6, 0.7), True),  # one inside the other
    ],
)
def test_intervals_overlap(a: tuple[float, float], b: tuple[float, float], expected: bool) -> None:
    assert intervals_overlap(a, b) is expected
    assert intervals_overlap(b, a) is expected


@pytest.mark.parametrize(
    ("n", "min_n", "expected"),
    [(12, 30, "not enough probes: n=12"), (30, 30, None), (0, 1, "not enough probes: n=0")],
)
def test_indistinguishable_reason(n: int, min_n: int, expected: str | None) -> None:
    assert indistinguishable_reason(n, min_n) == expected


# --- ranking -------------------------------------------------------------------------------


def route(
    name: str,
    ci: tuple[float, float] | None,
    ttft: float | None = 0.5,
    price: float | None = 1.0,
    flagged: bool = False,
) -> RouteFigures:
    return RouteFigures(name, ci, ttft, price, flagged)


def test_overlapping_uptime_ties_and_ttft_decides() -> None:
    routes = [route("a", (0.95, 0.99), ttft=0.5), route("b", (0.93, 0.98), ttft=0.3)]
    assert availability_tiers(routes) == [["b", "a"]]
    assert rank(routes) == {"b": 1, "a": 2}


def test_flagged_route_goes_below_unflagged_in_its_tier() -> None:
    routes = [
        route("fast-but-flagged", (0.95, 0.99), ttft=0.1, price=0.1, flagged=True),
        route("honest", (0.94, 0.99), ttft=0.4, price=2.0),
    ]
    assert rank(routes) == {"honest": 1, "fast-but-flagged": 2}


def test_flag_does_not_cross_tiers() -> None:
    # A flagged route still ranks above a clearly less available unflagged one.
    routes = [
        route("flagged", (0.97, 0.999), flagged=True),
        route("down-a-lot", (0.60, 0.75)),
    ]
    assert rank(routes) == {"flagged": 1, "down-a-lot": 2}


def test_clearly_less_available_ranks_below_a_slower_route() -> None:
    routes = [route("fast", (0.80, 0.90), ttft=0.1), route("slow", (0.97, 0.995), ttft=1.0)]
    assert availability_tiers(routes) == [["slow"], ["fast"]]
    assert rank(routes) == {"slow": 1, "fast": 2}


def test_tier_membership_is_against_the_tier_best_not_a_chain() -> None:
    # b overlaps a; c overlaps b but not a, so c starts the next tier.
    routes = [
        route("c", (0.80, 0.89), ttft=0.1),
        route("b", (0.85, 0.95), ttft=0.9),
        route("a", (0.90, 1.00), ttft=0.5),
    ]
    assert availability_tiers(routes) == [["a", "b"], ["c"]]
    assert rank(routes) == {"a": 1, "b": 2, "c": 3}


def test_price_then_name_break_ttft_ties() -> None:
    routes = [
        route("z", (0.9, 1.0), ttft=0.3, price=1.0),
        route("y", (0.9, 1.0), ttft=0.3, price=2.0),
        route("x", (0.9, 1.0), ttft=0.3, price=1.0),
    ]
    assert rank(routes) == {"x": 1, "z": 2, "y": 3}


def test_missing_figures_go_last() -> None:
    routes = [
        route("no-uptime", None, ttft=0.01, price=0.01),
        route("no-ttft", (0.9, 1.0), ttft=None, price=0.5),
        route("no-price", (0.9, 1.0), ttft=0.4, price=None),
        route("full", (0.9, 1.0), ttft=0.4, price=3.0),
        route("no-uptime-flagged", None, ttft=0.001, flagged=True),
    ]
    tiers = [["full", "no-price", "no-ttft"], ["no-uptime", "no-uptime-flagged"]]
    assert availability_tiers(routes) == tiers
    assert rank(routes) == {name: i for i, name in enumerate(tiers[0] + tiers[1], start=1)}


def test_ranking_does_not_depend_on_input_order() -> None:
    routes = [
        route("a", (0.9, 1.0), ttft=0.3),
        route("b", (0.9, 1.0), ttft=0.3),
        route("c", (0.5, 0.6)),
        route("d", None),
    ]
    assert rank(routes) == rank(list(reversed(routes))) == {"a": 1, "b": 2, "c": 3, "d": 4}


def test_ranking_empty_and_duplicates() -> None:
    assert rank([]) == {}
    assert availability_tiers([]) == []
    with pytest.raises(ValueError, match="unique"):
        rank([route("a", (0.9, 1.0)), route("a", None)])


intervals = st.tuples(st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=1)).map(
    lambda pair: (min(pair), max(pair))
)

route_lists = st.lists(
    st.builds(
        RouteFigures,
        name=st.text(min_size=1, max_size=5),
        uptime_ci=st.none() | intervals,
        ttft_p50=st.none() | st.floats(min_value=0, max_value=10),
        real_price=st.none() | st.floats(min_value=0, max_value=10),
        flagged=st.booleans(),
    ),
    max_size=8,
    unique_by=lambda r: r.name,
)


@settings(max_examples=200)
@given(route_lists)
def test_rank_is_a_permutation_and_flags_stay_below(routes: list[RouteFigures]) -> None:
    ranks = rank(routes)
    assert sorted(ranks.values()) == list(range(1, len(routes) + 1))
    by_name = {r.name: r for r in routes}
    for tier in availability_tiers(routes):
        flags = [by_name[name].flagged for name in tier]
        assert flags == sorted(flags)  # unflagged (False) before flagged (True)
        assert [ranks[name] for name in tier] == sorted(ranks[name] for name in tier)
