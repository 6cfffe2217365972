"""Alert rules and incidents: a pure state machine from measurements to notifications.

The evaluator reads one target's signals from the store, calls `evaluate(state, signals,
policy, now)`, and writes the returned state, incidents and notifications in one
transaction. Nothing here reads a clock or does I/O; the state is plain data that
round-trips through JSON (`AlertState.to_json()` / `AlertState.from_json()`), so a
restart continues exactly where the last evaluation stopped.

Where things live: rule names, signals and verdicts in `signals`; the remembered state in
`state`; the `down` rule in `down_rule`; burn, latency, budget, spend and cert in
`threshold_rules`; the incident lifecycle (open, remind, flap, unmute) in `incidents`; the
typed notice and its routing in `notification`. This module runs one evaluation.

Rules
-----
- `down` (page): per probe of the target, N consecutive bad results (`alerts.down.failures`,
  default 3) mark the probe down; M consecutive good results (`recoveries`, default 2)
  bring it back. The rule fires while any probe is down. With `confirm`, the Nth failure
  returns a `ConfirmRequest` (once per streak) instead of firing, and the rule fires when
  the confirmation result (the next result of that probe) is bad too.
- `burn_page` (page) / `burn_ticket` (ticket): the multiwindow burn-rate alerts of
  `slo.evaluate_burn`. A page suppresses a new burn ticket, but an open burn ticket stays
  open while the burn escalates to a page (escalation is not recovery).
- `latency` (ticket): the nearest-rank p95 of the last K values (`alerts.latency.last`) of
  the latency metric is above `p95_above_ms`; needs K values; off unless the threshold is set.
- `budget` (ticket): error budget remaining over the SLO window is below `budget_below`
  and the window holds at least `slo.min_bad` bad probes.
- `spend` (ticket): today's probe spend has reached `spend_cap_usd_per_day`.
- `cert` (ticket): the TLS certificate expires within `cert_days` days (days left <= D).
- `billing` (ticket): the median reported / counted output tokens is outside the band.
- `rate_limited_hold` (ticket): a Retry-After holds the route longer than `down` would take.
- `drift` (ticket): the route's system fingerprint, returned model or identity signature
  differs from its baseline or its reference route's (see `drift_rule`).
- `probe_cost` (ticket): a probe run cost more than `probe_cost_max_usd` (default 10x
  its expected cost, cost.probe_usage).
- `location_down` (ticket): with several locations, some find a probe down but fewer than
  the quorum the fleet verdict needs (see `down_rule`).
A rule without data this time (its signal is None) keeps its previous state: missing data
neither opens nor resolves anything. A rule switched off in the config resolves.

Incidents and grouping
----------------------
- Page-severity rules (`down`, `burn_page`) of one target share ONE incident: it opens when
  the first of them fires (one `opened` page), later page rules join it silently (they are
  named in reminders and in the resolved notice), and it resolves when the last of them
  clears (one `resolved` notice, with the duration and every rule that took part).
- Each ticket-severity rule (`latency`, `burn_ticket`, `budget`, `spend`, `cert`) has its
  own incidents, one per target and rule.
- While an incident is open and announced, a `reminder` goes out every `alerts.renotify`
  (default 4h) after the last notice.
- Flapping: when a target's group (the page group, or one ticket rule) opens more than
  `alerts.flapping_opens_per_hour` incidents within an hour, the open that crosses the line
  sends one `flapping` notice instead of its `opened`. Until the group has had no open or
  resolve for a full hour, nothing else is sent for it (opens, resolves, reminders). Then
  one `flapping_over` notice tells whether it settled resolved or still failing; a still
  open incident counts as announced from then on (reminders, then a resolved notice).
- Maintenance (`Signals.in_maintenance`) mutes, it does not pause: rules and incidents keep
  being tracked, but nothing is sent, and opens during maintenance do not count towards
  flapping. When maintenance ends, the net effect is sent at once: an incident that opened
  during maintenance and is still open gets its `opened` notice then; an announced incident
  that resolved during maintenance gets its `resolved` notice then; an announced incident
  still open gets a `reminder` ("still failing after maintenance"). Incidents that opened
  and resolved within maintenance are never sent.
- Idempotence: incident ids are `{target}:{group}:{n}` with n counted in the state, and
  every notice carries `dedup_key = {incident id}:{kind}:{seq}` (seq numbers reminders;
  flapping notices use `{target}:{group}:flap-{n}`). Evaluating the same state twice, on
  one node or two, yields the same keys, so the outbox can insert-or-ignore.

Routing: a notice goes to the tags of every rule in its incident (`alerts.routes`, default
`page` for `down`/`burn_page`, `ticket` for the rest); `apprise_notify_type` maps it to
Apprise's notify types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from checker.alerting.down_rule import down_status, location_status
from checker.alerting.drift_rule import drift_status
from checker.alerting.incidents import IncidentRun
from checker.alerting.notification import Notification
from checker.alerting.signals import GROUPS, ConfirmRequest, Policy, RuleStatus, Signals
from checker.alerting.state import AlertState, Incident, as_utc
from checker.alerting.threshold_rules import (
    billing_status,
    budget_status,
    burn_statuses,
    cert_status,
    hold_status,
    latency_status,
    probe_cost_status,
    spend_status,
)

__all__ = ["Evaluation", "evaluate", "rule_statuses"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    state: AlertState
    notifications: list[Notification]
    confirmations: list[ConfirmRequest]
    # Incidents opened, changed (rules joined or left, announced) or resolved in this run,
    # as they are now: upsert them by id into the incidents table.
    changed: list[Incident]
    statuses: dict[str, RuleStatus]


def rule_statuses(
    state: AlertState, signals: Signals, policy: Policy
) -> tuple[dict[str, RuleStatus], list[ConfirmRequest]]:
    """Every rule's verdict for this evaluation (updates the down hysteresis in `state`)."""
    down, confirmations = down_status(state, signals, policy)
    statuses = [
        down,
        *burn_statuses(state, signals, policy),
        latency_status(signals, policy),
        budget_status(signals, policy),
        spend_status(signals, policy),
        cert_status(signals, policy),
        billing_status(signals, policy),
        hold_status(signals, policy),
        location_status(state, signals, policy),
        drift_status(signals.identity, policy.alerts.drift),
        probe_cost_status(signals),
    ]
    return {s.rule: s for s in statuses}, confirmations


def evaluate(state: AlertState, signals: Signals, policy: Policy, now: datetime) -> Evaluation:
    """One evaluation of one target. The given state is not modified; use the returned one."""
    now = as_utc(now)
    # Working on a JSON copy keeps the caller's state intact and proves that everything the
    # machine depends on survives persistence.
    state = AlertState.from_json(state.to_json())
    statuses, confirmations = rule_statuses(state, signals, policy)
    run = IncidentRun(state, statuses, policy, now, signals.in_maintenance)
    for name in GROUPS:
        run.step(name)
    state.muted = signals.in_maintenance
    return Evaluation(state, run.notifications, confirmations, list(run.changed.values()), statuses)
