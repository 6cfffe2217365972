"""Fleet rounds (pure): how the SLO counts the results of several locations.

A round is one slot of a target's probe interval, per (target, probe): the whole seconds
since the UTC hour began, divided by the interval and rounded down. Slots restart every
hour, so an hour's rounds are the hour's own (the hourly rollups and a raw read of the same
hour count the same rounds; with an interval that divides an hour, slot = floor(epoch /
interval)). The store counts rounds in SQL (checker.store.fleet_counts); this module is
the rule it must agree with, and the tests hold it to that.

- A round in which one location reported counts as today: each of its results is one
  event (a confirmation re-probe in the same slot is one more event, as it always was),
  so a node that probes alone sees no change.
- A round in which several locations reported is ONE event, bad when the failing
  locations reach the quorum of the locations that reported in it (`alerts.down.quorum`,
  the down verdict's setting and meaning: default a majority). A location reported when
  it has a valid result in the slot, and failed when any of its valid results there is
  bad.

"Valid" is the SLO's own rule: outside maintenance, and, when rate limits do not count,
not a rate limit. Both settings are counted, so a rollup serves either.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from checker.config.schema import DownRule

__all__ = [
    "DEFAULT_INTERVAL_S",
    "Outcome",
    "RoundCounts",
    "RoundRule",
    "RoundShape",
    "count_rounds",
    "round_events",
    "slot_of",
]

RATE_LIMITED = "rate_limited"  # ErrorKind.rate_limited.value
# A target the database knows no interval of (results stored before migration 0011, or
# without a synced targets row): the config's default interval.
DEFAULT_INTERVAL_S = 60.0


@dataclass(frozen=True)
class RoundRule:
    """A target's round parameters: its probe interval and the down rule's quorum."""

    interval_s: float = DEFAULT_INTERVAL_S
    quorum: int | float | None = None  # DownRule.quorum: locations, a share, None: majority

    def needed(self, reporting: int) -> int:
        """Failing locations, of `reporting`, that make a round bad (DownRule.needed)."""
        # model_construct: the stored quorum was validated when the config was loaded.
        return DownRule.model_construct(quorum=self.quorum).needed(reporting)


@dataclass(frozen=True)
class Outcome:
    """One stored result, as rounds see it."""

    location: str
    at: datetime
    ok: bool
    maintenance: bool
    error: str | None

    def valid(self, count_rate_limited: bool) -> bool:
        if self.maintenance:
            return False
        return count_rate_limited or self.ok or self.error != RATE_LIMITED


@dataclass
class RoundCounts:
    """Valid and bad events in rounds, with rate limits counted (`valid`, `bad`) and left
    out (`valid_no_rl`, `bad_no_rl`)."""

    valid: int = 0
    bad: int = 0
    valid_no_rl: int = 0
    bad_no_rl: int = 0

    def add(self, other: RoundCounts) -> None:
        self.valid += other.valid
        self.bad += other.bad
        self.valid_no_rl += other.valid_no_rl
        self.bad_no_rl += other.bad_no_rl

    def add_values(self, values: Iterable[Any]) -> None:
        """Add (valid, bad, valid_no_rl, bad_no_rl) as SQL sums return them (None: 0)."""
        valid, bad, valid_no_rl, bad_no_rl = (int(v or 0) for v in values)
        self.add(RoundCounts(valid, bad, valid_no_rl, bad_no_rl))

    def of(self, count_rate_limited: bool) -> tuple[int, int]:
        """(valid, bad) under the SLO's rate-limit setting."""
        if count_rate_limited:
            return self.valid, self.bad
        return self.valid_no_rl, self.bad_no_rl

    def uptime(self, count_rate_limited: bool = True) -> float | None:
        """good / valid events; None without any."""
        valid, bad = self.of(count_rate_limited)
        return (valid - bad) / valid if valid > 0 else None

    @classmethod
    def per_result(
        cls, total: int, maintenance: int, sli_ok: int, sli_rate_limited: int
    ) -> RoundCounts:
        """Every result one event (one location: today's counts), from the rollup sums."""
        valid = total - maintenance
        no_rl = valid - sli_rate_limited
        return cls(valid, valid - sli_ok, no_rl, no_rl - sli_ok)


def slot_of(at: datetime, interval_s: float) -> tuple[datetime, int]:
    """(UTC hour start, slot number within that hour) of a result started at `at`."""
    at = at.astimezone(UTC)
    hour = at.replace(minute=0, second=0, microsecond=0)
    # floor(a / b), as SQL computes it (a // b can differ by one for floats).
    return hour, math.floor((at.minute * 60 + at.second) / interval_s)


@dataclass(frozen=True)
class RoundShape:
    """Rounds alike under one rate-limit setting: how many locations reported and failed
    in each, and the valid and bad results they hold together."""

    reporting: int
    failing: int
    rounds: int
    results: int
    bad_results: int


def round_events(shape: RoundShape, rule: RoundRule) -> tuple[int, int]:
    """(valid, bad) SLO events of the rounds of one shape."""
    if shape.reporting == 0:
        return 0, 0
    if shape.reporting == 1:  # one location: each of its results, as without a fleet
        return shape.results, shape.bad_results
    bad = shape.failing >= rule.needed(shape.reporting)
    return shape.rounds, shape.rounds if bad else 0


def _shape(by_location: dict[str, list[Outcome]], rl: bool) -> RoundShape:
    reporting = failing = results = bad_results = 0
    for outcomes in by_location.values():
        mine = [not o.ok for o in outcomes if o.valid(rl)]
        reporting += bool(mine)
        failing += any(mine)
        results += len(mine)
        bad_results += sum(mine)
    return RoundShape(reporting, failing, 1, results, bad_results)


def count_rounds(outcomes: Iterable[Outcome], rule: RoundRule) -> RoundCounts:
    """The round counts of one (target, probe)'s results (what the store counts in SQL)."""
    slots: dict[tuple[datetime, int], dict[str, list[Outcome]]] = {}
    for o in outcomes:
        slots.setdefault(slot_of(o.at, rule.interval_s), {}).setdefault(o.location, []).append(o)
    out = RoundCounts()
    for by_location in slots.values():
        valid, bad = round_events(_shape(by_location, True), rule)
        valid_no_rl, bad_no_rl = round_events(_shape(by_location, False), rule)
        out.add(RoundCounts(valid, bad, valid_no_rl, bad_no_rl))
    return out
