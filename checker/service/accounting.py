"""Spend caps and rate-limit holds: what the scheduler remembers about a target between probes.

Held in memory for the probe path, backed by the database where it must outlast the
process: today's spend is read back from the stored results at start, so a restart does
not reopen a target's daily budget; a Retry-After hold is written to `route_holds` and
read back by every node (`share_holds`, `sync_holds`), so another node and a restarted
one respect it too.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from checker.config.schema import Target

if TYPE_CHECKING:  # genai_prices loads in a thread at start
    from checker.cost.prices import PriceBook
from checker.cost.probe_usage import COST_ALERT_FACTOR
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.registry import is_free
from checker.service.clock import Clock
from checker.store.fleet import Hold, active_holds, save_hold
from checker.store.queries.counts import spend_since

__all__ = ["Accounting", "CostLimits", "TargetRuntime"]


@dataclass
class TargetRuntime:
    """A target's run-time memory between probes: its hold, today's spend, its last outcomes.

    Not alerting.rules.TargetState (the alert rules' persisted state of a target).
    """

    hold_until: float = 0.0  # monotonic; a 429 Retry-After holds the target until then
    hold_s: float = 0.0  # the length of that hold
    spend_day: str = ""
    spend_usd: float = 0.0
    last_ok: dict[str, bool] = field(default_factory=dict)


class Accounting:
    """Every target's spend today and Retry-After hold, and whether a probe may run now."""

    def __init__(self, clock: Clock, location: str = "local") -> None:
        self.clock = clock
        self.location = location
        self.runtimes: dict[str, TargetRuntime] = {}
        self._unshared: list[Hold] = []  # holds this node started, not yet in the database

    def runtime(self, name: str) -> TargetRuntime:
        return self.runtimes.setdefault(name, TargetRuntime())

    def why_not(self, target: Target, probe: str) -> str | None:
        """Why this probe must not run now ("retry_after", "spend_cap"), or None."""
        state = self.runtime(target.name)
        if self.clock.monotonic() < state.hold_until:
            return "retry_after"
        cap = target.spend_cap_usd_per_day
        if cap is not None and not is_free(target.kind, probe):
            self._roll_spend_day(state)
            if state.spend_usd >= cap:
                return "spend_cap"
        return None

    def charge(self, target: Target, result: ProbeResult, hold_max_s: float = 600.0) -> None:
        """Add the result's cost to today's spend; a 429 with Retry-After starts a hold of
        at most `hold_max_s` (retry_after_max): a route answering "come back tomorrow" is
        still probed, so the failures behind the 429 are seen."""
        state = self.runtime(target.name)
        if result.cost_usd:
            self._roll_spend_day(state)
            state.spend_usd += result.cost_usd
        if result.error == ErrorKind.rate_limited and result.retry_after_s:
            hold = min(result.retry_after_s, hold_max_s)
            state.hold_until = self.clock.monotonic() + hold
            state.hold_s = hold
            now = self.clock.now()
            self._unshared.append(
                Hold(target.name, now + timedelta(seconds=hold), hold, now, self.location)
            )

    @property
    def holds_to_share(self) -> bool:
        return bool(self._unshared)

    async def share_holds(self, engine: Engine) -> None:
        """Write the holds started here, so every node (and this one restarted) keeps them.
        A failed write keeps them for the next try."""
        pending, self._unshared = self._unshared, []
        try:
            for hold in pending:
                await asyncio.to_thread(save_hold, engine, hold)
        except Exception:
            self._unshared[:0] = pending
            raise

    async def sync_holds(self, engine: Engine) -> dict[str, Hold]:
        """Adopt the holds any node recorded (a longer local one stays); returns them."""
        now, mono = self.clock.now(), self.clock.monotonic()
        holds = await asyncio.to_thread(active_holds, engine, now)
        for hold in holds.values():
            state = self.runtime(hold.target)
            until = mono + (hold.held_until - now).total_seconds()
            if until > state.hold_until:
                state.hold_until, state.hold_s = until, hold.hold_s
        return holds

    def held_for(self, name: str) -> float:
        """The length of the target's current Retry-After hold; 0 when it is not held."""
        state = self.runtime(name)
        return state.hold_s if self.clock.monotonic() < state.hold_until else 0.0

    def spend_today(self, name: str) -> float | None:
        state = self.runtime(name)
        self._roll_spend_day(state)
        return state.spend_usd

    def _roll_spend_day(self, state: TargetRuntime) -> None:
        today = self.clock.now().date().isoformat()
        if state.spend_day != today:
            state.spend_day, state.spend_usd = today, 0.0

    async def load_spend_today(self, engine: Engine) -> None:
        """Spend caps survive restarts: start from what today's stored results cost."""
        midnight = self.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        spent = await asyncio.to_thread(spend_since, engine, midnight)
        today = midnight.date().isoformat()
        for name, usd in spent.items():
            state = self.runtime(name)
            state.spend_day, state.spend_usd = today, usd


class CostLimits:
    """The most one run of each probe may cost before `probe_cost` fires: the target's
    `probe_cost_max_usd`, else COST_ALERT_FACTOR x its expected cost. Prices change with
    the config (a reload makes a new CostLimits) or the catalogue, not per evaluation
    round: each is computed once per target, probe and day."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        # Today's limits only: the day is the cache's generation, so a long-running service
        # does not keep one entry per target, probe and day forever.
        self._day = ""
        self._known: dict[tuple[str, str], float | None] = {}

    def limit(self, target: Target | None, probe: str, prices: PriceBook) -> float | None:
        if target is None:
            return None
        if target.probe_cost_max_usd is not None:
            return target.probe_cost_max_usd
        now = self.clock.now()
        if (day := now.date().isoformat()) != self._day:
            self._day, self._known = day, {}
        key = (target.name, probe)
        if key not in self._known:
            expected = prices.expected_cost(target, probe, now)
            self._known[key] = None if expected is None else COST_ALERT_FACTOR * expected
        return self._known[key]
