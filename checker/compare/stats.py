"""The statistics behind route comparison (pure: no I/O, stdlib only).

Two routes to the same model are only "better" or "worse" than each other when the
difference is larger than the noise of a few dozen probes. This module gives the intervals
that say so: the Wilson score interval for an uptime proportion, the Hodges-Lehmann shift
between two latency samples with its distribution-free confidence interval, and a ranking
that treats routes whose uptime intervals overlap as equally available.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_PAIRWISE_DIFFERENCES",
    "Z_95",
    "Difference",
    "RouteFigures",
    "availability_tiers",
    "difference_interval",
    "indistinguishable_reason",
    "intervals_overlap",
    "median",
    "rank",
    "wilson_interval",
]

# The two-sided 95 % normal quantile, Φ⁻¹(0.975).
Z_95 = 1.959963984540054

# The pairwise-difference estimator needs all m*n differences in memory and sorted; above
# this many the samples are thinned to quantiles first (see `difference_interval`).
MAX_PAIRWISE_DIFFERENCES = 250_000


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval for the proportion successes/n; None when n == 0.

    Why Wilson and not the textbook p ± z·sqrt(p(1-p)/n): uptime sits near 1, where the
    textbook interval collapses to zero width at 100 % (it would claim certainty after ten
    good probes) and can leave [0, 1]. Wilson inverts the score test instead, stays inside
    [0, 1] and keeps close to its nominal coverage for small n and extreme p:

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) · sqrt(p(1-p)/n + z²/4n²)

    At successes == 0 the lower end is exactly 0.0 and at successes == n the upper end is
    exactly 1.0 (the formula gives those up to rounding; we pin them so "100 %" reads 1.0).
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return None
    p = successes / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def _check_finite(values: Sequence[float], what: str) -> None:
    # NaN sorts arbitrarily and would silently corrupt every order statistic below.
    if any(math.isnan(v) for v in values):
        raise ValueError(f"{what} contains NaN")


def median(values: Sequence[float]) -> float | None:
    """The sample median (mean of the two middle values for an even count); None if empty."""
    if not values:
        return None
    _check_finite(values, "values")
    return float(statistics.median(values))


@dataclass(frozen=True, slots=True)
class Difference:
    """The shift xs - ys: a point estimate and its confidence interval.

    `n_x` and `n_y` are the sizes of the samples as given (before any thinning).
    """

    estimate: float
    low: float
    high: float
    n_x: int
    n_y: int

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly on one side of zero: a real difference."""
        return self.low > 0 or self.high < 0


def _quantile_subsample(sorted_values: Sequence[float], size: int) -> list[float]:
    """`size` evenly spaced order statistics (the midpoints of `size` equal-count bins)."""
    n = len(sorted_values)
    if size >= n:
        return list(sorted_values)
    return [sorted_values[((2 * i + 1) * n) // (2 * size)] for i in range(size)]


def _thinned_sizes(m: int, n: int, budget: int) -> tuple[int, int]:
    """Sample sizes with product <= budget, as balanced as the smaller sample allows.

    For a fixed product m*n the variance of the shift estimate goes with 1/m + 1/n, which
    is least when m == n; so the smaller sample is kept whole if it fits under sqrt(budget)
    and the larger one is cut to the rest of the budget.
    """
    if m * n <= budget:
        return m, n
    side = math.isqrt(budget)
    if m <= n:
        small = min(m, side)
        return small, min(n, budget // small)
    small = min(n, side)
    return min(m, budget // small), small


def difference_interval(
    xs: Sequence[float], ys: Sequence[float], confidence: float = 0.95
) -> Difference | None:
    """The Hodges-Lehmann shift xs - ys with its distribution-free confidence interval.

    Method. Take all m*n pairwise differences D = x_i - y_j, sorted. The estimate is their
    median. The interval comes from the Mann-Whitney U distribution: the number of
    differences below the true shift has U's null distribution, mean mn/2 and variance
    mn(m+n+1)/12. With the normal approximation, the rank

        k = floor(mn/2 - z·sqrt(mn(m+n+1)/12)),   z = Φ⁻¹((1 + confidence)/2)

    gives the interval (D[k], D[mn-1-k]) (0-based). Checked against the exact U
    distribution, the coverage is within about half a point of nominal for m = n = 5..50.

    Why this and not a t-interval on the difference of means: latencies are skewed with
    heavy tails; one 30 s timeout moves a mean but not this estimate, and the interval
    assumes no distribution, only that the two samples differ by a shift.

    Small samples. When k would be negative (e.g. 2 probes against 3) the interval is the
    full range (min D, max D): the data are too few for any narrower claim, which in
    practice means the routes cannot be told apart yet. Its confidence is then below the
    nominal one (1 - 2/C(m+n, m): 0 for 1 against 1, where the "interval" is one point and
    excludes zero), so callers gate on `indistinguishable_reason` before trusting it.

    Large samples. To keep memory bounded, when m*n > MAX_PAIRWISE_DIFFERENCES (250 000)
    each sorted sample is first replaced by evenly spaced quantiles of itself so that the
    product fits; the interval is then computed for the thinned sizes, which makes it a
    little wider (more cautious), never narrower. `n_x`/`n_y` report the original sizes.

    Returns None when either sample is empty.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if not xs or not ys:
        return None
    _check_finite(xs, "xs")
    _check_finite(ys, "ys")
    sorted_x = sorted(xs)
    sorted_y = sorted(ys)
    m, n = _thinned_sizes(len(sorted_x), len(sorted_y), MAX_PAIRWISE_DIFFERENCES)
    sorted_x = _quantile_subsample(sorted_x, m)
    sorted_y = _quantile_subsample(sorted_y, n)

    diffs = sorted(x - y for x in sorted_x for y in sorted_y)
    mn = m * n
    middle = mn // 2
    estimate = diffs[middle] if mn % 2 else (diffs[middle - 1] + diffs[middle]) / 2.0

    z = statistics.NormalDist().inv_cdf((1.0 + confidence) / 2.0)
    k = math.floor(mn / 2.0 - z * math.sqrt(mn * (m + n + 1) / 12.0))
    # Clamp below: too few data for the nominal level gives the full range. Clamp above
    # against rounding at tiny z, so the interval never turns inside out.
    k = min(max(k, 0), (mn - 1) // 2)
    return Difference(
        estimate=float(estimate),
        low=float(diffs[k]),
        high=float(diffs[mn - 1 - k]),
        n_x=len(xs),
        n_y=len(ys),
    )


def intervals_overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True when the closed intervals a and b share a point (touching counts)."""
    for low, high in (a, b):
        if low > high:
            raise ValueError(f"interval ({low}, {high}) has low > high")
    return a[0] <= b[1] and b[0] <= a[1]


@dataclass(frozen=True, slots=True)
class RouteFigures:
    """What the ranking needs to know about one route over the window."""

    name: str
    uptime_ci: tuple[float, float] | None  # the Wilson interval of uptime; None: no probes
    ttft_p50: float | None  # seconds
    real_price: float | None  # the observed cost per request (any unit, the same for all)
    flagged: bool  # something looks dishonest (wrong model served, tokens inflated, ...)


def _midpoint(interval: tuple[float, float]) -> float:
    return (interval[0] + interval[1]) / 2.0


def _within_tier_key(route: RouteFigures) -> tuple[bool, bool, float, bool, float, str]:
    # Flagged first in the key: a flagged route never goes above an unflagged one of the
    # same tier, however fast or cheap it looks. Missing figures sort after known ones.
    return (
        route.flagged,
        route.ttft_p50 is None,
        route.ttft_p50 if route.ttft_p50 is not None else 0.0,
        route.real_price is None,
        route.real_price if route.real_price is not None else 0.0,
        route.name,
    )


def _tiers(routes: Sequence[RouteFigures]) -> list[list[RouteFigures]]:
    names = [route.name for route in routes]
    if len(set(names)) != len(names):
        raise ValueError(f"route names must be unique, got {sorted(names)}")
    known = [(route, route.uptime_ci) for route in routes if route.uptime_ci is not None]
    unknown = [route for route in routes if route.uptime_ci is None]
    # Best availability first; the name breaks exact ties so the tiers do not depend on
    # the order the routes came in.
    known.sort(key=lambda pair: (-_midpoint(pair[1]), pair[0].name))

    tiers: list[list[RouteFigures]] = []
    best: tuple[float, float] | None = None  # the interval of the current tier's first route
    for route, interval in known:
        # Compare with the tier's best route, not its last: chaining overlaps would let a
        # long run of slightly-worse routes drag a clearly worse one into the top tier.
        if best is not None and intervals_overlap(interval, best):
            tiers[-1].append(route)
        else:
            tiers.append([route])
            best = interval
    if unknown:
        tiers.append(unknown)
    return [sorted(tier, key=_within_tier_key) for tier in tiers]


def availability_tiers(routes: Sequence[RouteFigures]) -> list[list[str]]:
    """Route names grouped into availability tiers, best tier first.

    Routes are sorted by the midpoint of their uptime interval, highest first; a route
    joins the current tier when its interval overlaps that of the tier's first (best)
    route, otherwise it starts a new tier. Routes in one tier cannot be told apart on
    availability with the probes so far. Routes without an uptime interval form a last
    tier of their own. Within a tier names are in ranking order (see `rank`).
    """
    return [[route.name for route in tier] for tier in _tiers(routes)]


def rank(routes: Sequence[RouteFigures]) -> dict[str, int]:
    """Rank routes 1..N: availability tier first, then within a tier, in order,
    unflagged before flagged, TTFT p50 ascending, real price ascending (missing values
    last), name.

    Why availability decides only by tier: a route at 99.1 % over 40 probes is not more
    available than one at 98.9 %; ranking on the raw figure would reorder routes on noise
    at every refresh. Within a tier speed decides, then price. The ranks are positions,
    dense and without ties: equal routes get distinct ranks by the order above.
    """
    ordered = [route for tier in _tiers(routes) for route in tier]
    return {route.name: position for position, route in enumerate(ordered, start=1)}


def indistinguishable_reason(n: int, min_n: int = 30) -> str | None:
    """Why a route cannot be compared yet ("not enough probes: n=12"), or None if it can.

    Below about 30 probes the intervals above are so wide that every route ties with every
    other; saying so plainly beats showing a ranking that is noise.
    """
    if n < min_n:
        return f"not enough probes: n={n}"
    return None
