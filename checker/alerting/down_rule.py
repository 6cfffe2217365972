"""The `down` rule: per probe, N consecutive bad results mark it down, M good bring it back.

With `confirm`, the Nth failure asks for one more run of the probe (a `ConfirmRequest`,
once per streak) and the rule fires only if that result is bad too.
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

__all__ = ["down_status", "streaks"]


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
    for gone in set(state.down) - set(signals.recent):
        del state.down[gone]
    for probe in sorted(signals.recent):
        outcomes = signals.recent[probe]
        probe_state = state.down.setdefault(probe, ProbeDownState())
        if not outcomes:
            continue
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
    detail = latest_bad.detail if latest_bad else None
    # Failing probes first: they are what a notice is about.
    return RuleStatus("down", firing, (*failing, *passing), detail), confirmations
