"""SLO arithmetic: SLIs, error budgets and multiwindow multi-burn-rate alerts (pure).

Definitions (Google SRE workbook, "Alerting on SLOs"; DESIGN.md "SLO math"):

- A probe result is a *valid event* unless it is excluded: a `rate_limited` result when the
  SLO does not count rate limits, and (decided by the caller) any result inside a
  maintenance window. A valid event is *bad* when the probe failed, *good* otherwise.
- SLI (uptime) over a window = good / valid; error rate = bad / valid. Both are None when
  the window holds no valid event: no data is not 100 %.
- Burn rate = error rate / (1 - objective): 1 spends the budget exactly over the SLO
  period, 1000 (a full outage of a 99.9 % SLO) spends a 30-day budget in 43.2 minutes.
- Error budget remaining = 1 - bad / (valid x (1 - objective)) over the SLO window. It is a
  fraction of the budget: 1 untouched, 0 spent, *negative* once the SLO is missed (-1 means
  twice the allowed failures). Early in a window, with few valid events, one failure moves
  it a lot: it is relative to the traffic seen so far, as in the workbook.
- Burn alerts: four long/short window pairs; a pair fires when both windows burn faster
  than its factor (strictly greater, with a 1e-9 relative tolerance so that float noise in
  `1 - objective` never decides an exact tie) and the long window holds at least
  `slo.min_bad` bad probes (probes are a low-traffic SLI: one failure in 60 probes is
  already a 1.7 % error rate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from checker.config.schema import Slo
from checker.probes.base import ErrorKind
from checker.units import format_duration

Severity = Literal["page", "ticket"]

__all__ = [
    "DAY",
    "HOUR",
    "BurnAlert",
    "BurnWindow",
    "WindowCounts",
    "budget_remaining",
    "burn_rate",
    "burn_windows",
    "count_events",
    "detection_time_s",
    "error_rate",
    "evaluate_burn",
    "exceeds",
    "explain_page_sensitivity",
    "fewest_bad_to_page",
    "is_bad",
    "latency_sli",
    "required_windows",
    "single_failure_pages",
    "sli",
    "time_to_exhaust_s",
]

HOUR = 3600.0
DAY = 86400.0
# The workbook's table for a 30-day period: (severity, budget fraction, long, short window).
# Windows stay fixed for other periods; only the factor follows the period.
_WORKBOOK_TABLE: tuple[tuple[Severity, float, float, float], ...] = (
    ("page", 0.02, 1 * HOUR, 5 * 60.0),
    ("page", 0.05, 6 * HOUR, 30 * 60.0),
    ("ticket", 0.10, 1 * DAY, 2 * HOUR),
    ("ticket", 0.10, 3 * DAY, 6 * HOUR),
)
_REL_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """Valid and bad probe counts over one window."""

    valid: int
    bad: int

    def __post_init__(self) -> None:
        if self.valid < 0 or not 0 <= self.bad <= self.valid:
            raise ValueError(f"need 0 <= bad <= valid (got valid={self.valid}, bad={self.bad})")

    @property
    def good(self) -> int:
        return self.valid - self.bad

    def __add__(self, other: WindowCounts) -> WindowCounts:
        return WindowCounts(self.valid + other.valid, self.bad + other.bad)


@dataclass(frozen=True, slots=True)
class BurnWindow:
    name: str  # e.g. "page-1h": severity and long window
    severity: Severity
    long_s: float
    short_s: float
    budget_fraction: float  # share of the period's budget spent in long_s at `factor`
    factor: float  # burn-rate threshold = budget_fraction x period / long_s


@dataclass(frozen=True, slots=True)
class BurnAlert:
    window: BurnWindow
    long_burn: float
    short_burn: float
    long_counts: WindowCounts
    short_counts: WindowCounts

    @property
    def severity(self) -> Severity:
        return self.window.severity


# --- events and windows -----------------------------------------------------------------------


def is_bad(error_kind: ErrorKind | str | None, ok: bool, slo: Slo) -> bool | None:
    """True: bad event; False: good event; None: not a valid event (leave it out of counts).

    Maintenance is not decided here: the caller drops results inside maintenance windows.
    """
    if ok:
        return False
    if error_kind == ErrorKind.rate_limited and not slo.count_rate_limited:
        return None
    return True


def count_events(events: Iterable[tuple[ErrorKind | str | None, bool]], slo: Slo) -> WindowCounts:
    """Counts from (error_kind, ok) pairs, skipping events that are not valid."""
    valid = bad = 0
    for error_kind, ok in events:
        verdict = is_bad(error_kind, ok, slo)
        if verdict is None:
            continue
        valid += 1
        bad += verdict
    return WindowCounts(valid, bad)


def error_rate(counts: WindowCounts) -> float | None:
    return counts.bad / counts.valid if counts.valid else None


def sli(counts: WindowCounts) -> float | None:
    """Good / valid: the uptime of the window, None without valid events."""
    return counts.good / counts.valid if counts.valid else None


uptime = sli


def burn_rate(counts: WindowCounts, objective: float) -> float | None:
    rate = error_rate(counts)
    return None if rate is None else rate / (1.0 - objective)


def budget_remaining(counts: WindowCounts, objective: float) -> float | None:
    """1 - bad / (valid x (1 - objective)) over the SLO window; negative once overspent."""
    if not counts.valid:
        return None
    return 1.0 - counts.bad / (counts.valid * (1.0 - objective))


def time_to_exhaust_s(burn: float, period_s: float, remaining: float = 1.0) -> float | None:
    """Seconds until `remaining` of the budget is gone at a constant burn rate."""
    if burn <= 0:
        return None
    return max(remaining, 0.0) * period_s / burn


def detection_time_s(error_ratio: float, long_s: float, factor: float, objective: float) -> float:
    """How long an error ratio must last before a window of `long_s` reaches `factor`.

    The workbook's "(1 - SLO) / error ratio x window x burn rate"; for a 100 % outage of a
    99.9 % SLO and the 1h/14.4 window, 51.84 seconds. With probes, round up to whole probes.
    """
    return (1.0 - objective) / error_ratio * long_s * factor


def latency_sli(values: Iterable[float | None], threshold_ms: float) -> float | None:
    """Fraction of measured values <= threshold; probes without the metric are not counted."""
    measured = [v for v in values if v is not None]
    if not measured:
        return None
    return sum(1 for v in measured if v <= threshold_ms) / len(measured)


# --- multiwindow, multi-burn-rate alerts ------------------------------------------------------


def burn_windows(period_s: float) -> list[BurnWindow]:
    """The workbook's four window pairs, with factors derived from the SLO period.

    For 30 days the factors are 14.4, 6, 3 and 1. Pairs whose long window is longer than the
    period itself are dropped (a 3-day window says nothing about a 1-day SLO).
    """
    windows = []
    for severity, fraction, long_s, short_s in _WORKBOOK_TABLE:
        if long_s > period_s:
            continue
        windows.append(
            BurnWindow(
                name=f"{severity}-{format_duration(long_s)}",
                severity=severity,
                long_s=long_s,
                short_s=short_s,
                budget_fraction=fraction,
                factor=fraction * period_s / long_s,
            )
        )
    return windows


def required_windows(slo: Slo) -> list[float]:
    """Every window length (seconds) the evaluator must count for this SLO, sorted.

    The burn windows plus the SLO window itself (for the budget).
    """
    lengths = {slo.window}
    for w in burn_windows(slo.window):
        lengths.update((w.long_s, w.short_s))
    return sorted(lengths)


def exceeds(burn: float, factor: float) -> bool:
    """Strictly greater, but an exact tie lost to float rounding stays a tie."""
    return burn > factor and not math.isclose(burn, factor, rel_tol=_REL_TOL)


def evaluate_burn(windows_counts: Mapping[float, WindowCounts], slo: Slo) -> list[BurnAlert]:
    """Firing window pairs, page ones only when any page fires (higher severity suppresses).

    `windows_counts` maps window length in seconds to its counts; every length from
    `required_windows(slo)` except the SLO window must be present (KeyError otherwise: a
    missing window is a wiring bug, not "no alert").
    """
    firing: list[BurnAlert] = []
    for window in burn_windows(slo.window):
        try:
            long_counts = windows_counts[window.long_s]
            short_counts = windows_counts[window.short_s]
        except KeyError as exc:
            raise KeyError(f"no counts for the {format_duration(exc.args[0])} window") from None
        long_burn = burn_rate(long_counts, slo.availability)
        short_burn = burn_rate(short_counts, slo.availability)
        if long_burn is None or short_burn is None:
            continue
        if long_counts.bad < slo.min_bad:
            continue
        if exceeds(long_burn, window.factor) and exceeds(short_burn, window.factor):
            firing.append(BurnAlert(window, long_burn, short_burn, long_counts, short_counts))
    if any(a.severity == "page" for a in firing):
        return [a for a in firing if a.severity == "page"]
    return firing


# --- the low-traffic warning for `checker validate` --------------------------------------------


def _probes_in(window_s: float, interval_s: float, probes_per_interval: int) -> int:
    # A window shorter than the interval still holds the one probe that failed.
    return max(1, math.floor(window_s / interval_s + 1e-9)) * probes_per_interval


def _fewest_exceeding(n: int, budget: float, factor: float) -> int | None:
    """Smallest k <= n with k/n/budget above the factor."""
    for k in range(1, n + 1):
        if exceeds(k / n / budget, factor):
            return k
    return None


def fewest_bad_to_page(interval_s: float, slo: Slo, probes_per_interval: int = 1) -> int | None:
    """Fewest bad probes that fire a page window; None if no number of failures can.

    With a steady probe every `interval_s` (times `probes_per_interval`): the long window
    needs enough bad probes to exceed the factor and at least `min_bad`; the short window
    needs enough of them among its own (fewer) probes. The failures that fill the short
    window count in the long window too, so the answer is the largest of the three needs.
    """
    best: int | None = None
    budget = 1.0 - slo.availability
    for window in burn_windows(slo.window):
        if window.severity != "page":
            continue
        n_long = _probes_in(window.long_s, interval_s, probes_per_interval)
        n_short = min(_probes_in(window.short_s, interval_s, probes_per_interval), n_long)
        need_long = _fewest_exceeding(n_long, budget, window.factor)
        need_short = _fewest_exceeding(n_short, budget, window.factor)
        if need_long is None or need_short is None or slo.min_bad > n_long:
            continue
        k = max(need_long, need_short, slo.min_bad)
        best = k if best is None else min(best, k)
    return best


def single_failure_pages(interval_s: float, slo: Slo, probes_per_interval: int = 1) -> bool:
    """Would ONE failed probe fire a page burn alert with this interval and SLO?"""
    return fewest_bad_to_page(interval_s, slo, probes_per_interval) == 1


def explain_page_sensitivity(interval_s: float, slo: Slo, probes_per_interval: int = 1) -> str:
    """One sentence for `checker validate`: how many failed probes page, and why."""
    pages = [w for w in burn_windows(slo.window) if w.severity == "page"]
    every = format_duration(interval_s)
    objective = f"{slo.availability * 100:g}%"
    if not pages:
        return f"no page burn window fits an SLO period of {format_duration(slo.window)}"
    first = pages[0]
    n_long = _probes_in(first.long_s, interval_s, probes_per_interval)
    one_burn = 1 / n_long / (1.0 - slo.availability)
    k = fewest_bad_to_page(interval_s, slo, probes_per_interval)
    base = (
        f"with a probe every {every} and a {objective} objective, one failure in the "
        f"{format_duration(first.long_s)} window ({n_long} probes) burns "
        f"{one_burn:.3g}x against a page factor of {first.factor:.3g}x"
    )
    if k is None:
        return f"{base}; no number of failures can page (the windows hold too few probes)"
    if k == 1:
        return f"{base}: a single failed probe pages (raise min_bad or lower the objective)"
    guard = " (min_bad)" if k == slo.min_bad else ""
    return f"{base}; it takes {k} failed probes{guard} to page"
