"""The `down` rule: per probe, N consecutive bad results mark it down, M good bring it back.

With `confirm`, the Nth failure asks for one more run of the probe (a `ConfirmRequest`,
once per streak) and the rule fires only if that result is bad too.

With results from several locations (a fleet), streaks are kept per (probe, location), so
one location's successes never break another's failure streak. A location counts towards
the verdict when its newest result is within three intervals of the newest result of any
location (relative to each other, so a node with a skewed clock is not dropped for it). The
probe is down for the fleet when at least `alerts.down.quorum` of the counted locations
(default: a majority) are down; fewer down locations open the `location_down` ticket
instead ("failing from east only"). Confirmation re-probes run where the leader is, so for a
fleet `confirm` asks for one more failure per location rather than an immediate re-probe.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from checker.alerting.signals import (
    ConfirmRequest,
    Measurement,
    Policy,
    ProbeOutcome,
    RuleStatus,
    Signals,
)
from checker.alerting.state import AlertState, ProbeDownState, as_utc, iso
from checker.config.schema import DownRule

__all__ = ["down_status", "location_status", "streaks"]

# A location whose newest result is older than this many intervals (behind the freshest
# location's) has stopped reporting: it neither pages nor vetoes.
REPORTING_INTERVALS = 3


def streaks(outcomes: Sequence[ProbeOutcome]) -> tuple[int, int]:
    """(trailing bad, trailing good) result counts."""
    bad = good = 0
    for outcome in reversed(outcomes):
        if outcome.bad and not good:
            bad += 1
        elif not outcome.bad and not bad:
            good += 1
        else:
            break
    return bad, good


def _step_probe(
    target: str,
    probe: str,
    probe_state: ProbeDownState,
    streaks: tuple[int, int],
    last_at: datetime,
    rule: DownRule,
) -> ConfirmRequest | None:
    """Advance one probe's down/up hysteresis; a confirmation request when one is due."""
    bad, good = streaks
    if probe_state.down:
        if good >= rule.recoveries:
            probe_state.down = False
    elif bad >= rule.failures + (1 if rule.confirm else 0):
        probe_state.down = True
        probe_state.confirm_asked_for = None
    elif rule.confirm and bad == rule.failures and probe_state.confirm_asked_for != last_at:
        probe_state.confirm_asked_for = last_at
        return ConfirmRequest(target, probe, f"{target}:{probe}:confirm:{iso(last_at)}")
    return None


def _by_location(outcomes: Sequence[ProbeOutcome]) -> dict[str, list[ProbeOutcome]]:
    groups: dict[str, list[ProbeOutcome]] = {}
    for o in outcomes:
        groups.setdefault(o.location, []).append(o)
    return groups


def _fleet_step(
    state: AlertState, probe: str, groups: dict[str, list[ProbeOutcome]], policy: Policy
) -> tuple[list[str], list[str], int]:
    """Advance each location's hysteresis and the fleet verdict of one probe: (locations
    down, locations counted, locations needed)."""
    rule = policy.alerts.down
    per_location = state.down_at.setdefault(probe, {})
    for gone in set(per_location) - set(groups):
        del per_location[gone]
    freshest = max(as_utc(outs[-1].at) for outs in groups.values())
    horizon = REPORTING_INTERVALS * policy.interval_s
    counted = sorted(
        loc
        for loc, outs in groups.items()
        if (freshest - as_utc(outs[-1].at)).total_seconds() <= horizon
    )
    threshold = rule.failures + (1 if rule.confirm else 0)
    for loc, outs in groups.items():
        loc_state = per_location.setdefault(loc, ProbeDownState())
        bad, good = streaks(outs)
        if loc_state.down and good >= rule.recoveries:
            loc_state.down = False
        elif not loc_state.down and bad >= threshold:
            loc_state.down = True
    down = [loc for loc in counted if per_location[loc].down]
    need = rule.needed(len(counted))
    state.down.setdefault(probe, ProbeDownState()).down = len(down) >= need
    return down, counted, need


def _where(down: Sequence[str], counted: Sequence[str]) -> str:
    names = ", ".join(loc or "(unlabelled)" for loc in down)
    if len(down) == 1:
        return f"failing from {names} only ({len(down)} of {len(counted)} locations)"
    return f"failing from {names} ({len(down)} of {len(counted)} locations)"


def down_status(
    state: AlertState, signals: Signals, policy: Policy
) -> tuple[RuleStatus, list[ConfirmRequest]]:
    if signals.recent is None:
        return RuleStatus("down", None), []
    rule = policy.alerts.down
    confirmations: list[ConfirmRequest] = []
    failing: list[Measurement] = []
    passing: list[Measurement] = []
    latest_bad: ProbeOutcome | None = None
    where: list[str] = []
    for gone in set(state.down) - set(signals.recent):
        del state.down[gone]
    for gone in set(state.down_at) - set(signals.recent):
        del state.down_at[gone]
    for probe in sorted(signals.recent):
        outcomes = signals.recent[probe]
        probe_state = state.down.setdefault(probe, ProbeDownState())
        if not outcomes:
            continue
        groups = _by_location(outcomes)
        if len(groups) > 1:
            down, counted, need = _fleet_step(state, probe, groups, policy)
            m = Measurement("locations_down", len(down), need, ">=", "", probe)
            (failing if down else passing).append(m)
            if down:
                where.append(f"{probe}: {_where(down, counted)}")
                bad_now = [outs[-1] for loc, outs in groups.items() if loc in down]
                newest = max(bad_now, key=lambda o: o.at)
                if newest.error:
                    failing.append(Measurement("last_error", newest.error, scope=probe))
                if newest.detail and (latest_bad is None or newest.at > latest_bad.at):
                    latest_bad = newest
            continue
        state.down_at.pop(probe, None)  # one location again: the plain streak decides
        last = outcomes[-1]
        bad, good = streaks(outcomes)
        ask = _step_probe(state.target, probe, probe_state, (bad, good), as_utc(last.at), rule)
        if ask:
            confirmations.append(ask)
        if bad:
            failing.append(Measurement("consecutive_failures", bad, rule.failures, ">=", "", probe))
            if last.error:
                failing.append(Measurement("last_error", last.error, scope=probe))
            if last.detail and (latest_bad is None or last.at > latest_bad.at):
                latest_bad = last
        else:
            passing.append(
                Measurement("consecutive_successes", good, rule.recoveries, ">=", "", probe)
            )
    firing = any(s.down for s in state.down.values())
    detail = "; ".join([*where, *([latest_bad.detail] if latest_bad and latest_bad.detail else [])])
    # Failing probes first: they are what a notice is about.
    return RuleStatus("down", firing, (*failing, *passing), detail or None), confirmations


def location_status(state: AlertState, signals: Signals, policy: Policy) -> RuleStatus:
    """`location_down` (ticket): some location finds a probe down while the fleet does not
    (run after down_status, which keeps the per-location state)."""
    if not policy.alerts.down.location_ticket:
        return RuleStatus("location_down", False)
    if signals.recent is None:
        return RuleStatus("location_down", None)
    measurements: list[Measurement] = []
    details: list[str] = []
    for probe, by_loc in sorted(state.down_at.items()):
        fleet_down = state.down.get(probe, ProbeDownState()).down
        down = sorted(loc for loc, s in by_loc.items() if s.down)
        if down and not fleet_down:
            measurements.append(Measurement("locations_down", ", ".join(down), scope=probe))
            details.append(f"{probe}: {_where(down, sorted(by_loc))}")
    return RuleStatus(
        "location_down", bool(measurements), tuple(measurements), "; ".join(details) or None
    )
