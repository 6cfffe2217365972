"""Alert rules and incidents: a pure state machine from measurements to notifications.

The evaluator reads one target's signals from the store, calls `evaluate(state, signals,
policy, now)`, and writes the returned state, incidents and notifications in one
transaction. Nothing here reads a clock or does I/O; the state is plain data that
round-trips through JSON (`TargetState.to_json()` / `TargetState.from_json()`), so a
restart continues exactly where the last evaluation stopped.

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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from checker.alerting.slo import (
    WindowCounts,
    budget_remaining,
    burn_rate,
    burn_windows,
    evaluate_burn,
)
from checker.config.schema import Alerts, Config, DownRule, Slo, Target

Severity = Literal["page", "ticket"]
Kind = Literal["opened", "reminder", "resolved", "flapping", "flapping_over"]

PAGE_RULES: tuple[str, ...] = ("down", "burn_page")
TICKET_RULES: tuple[str, ...] = ("latency", "burn_ticket", "budget", "spend", "cert")
RULES: tuple[str, ...] = PAGE_RULES + TICKET_RULES
PAGE_GROUP = "page"
# Evaluation order: fixed, so that notifications come out in the same order every time.
GROUPS: tuple[str, ...] = (PAGE_GROUP, *TICKET_RULES)
FLAP_WINDOW = timedelta(hours=1)
STATE_VERSION = 1


def group_of(rule: str) -> str:
    return PAGE_GROUP if rule in PAGE_RULES else rule


def rules_of(group: str) -> tuple[str, ...]:
    return PAGE_RULES if group == PAGE_GROUP else (group,)


def severity_of(group: str) -> Severity:
    return "page" if group == PAGE_GROUP else "ticket"


def default_tags(rule: str) -> list[str]:
    return ["page"] if rule in PAGE_RULES else ["ticket"]


def route_tags(rules: Iterable[str], alerts: Alerts) -> list[str]:
    """Channel tags for a notice about these rules: the union of their routes, in order."""
    tags: list[str] = []
    for rule in rules:
        for tag in alerts.routes.get(rule, default_tags(rule)):
            if tag not in tags:
                tags.append(tag)
    return tags


def apprise_notify_type(kind: Kind, severity: Severity, still_open: bool = False) -> str:
    """Apprise NotifyType value: failure, warning, success or info."""
    if kind == "opened":
        return "failure" if severity == "page" else "warning"
    if kind == "resolved":
        return "success"
    if kind == "reminder":
        return "warning" if severity == "page" else "info"
    if kind == "flapping":
        return "warning"
    return "warning" if still_open else "success"  # flapping_over


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """One valid probe result, as the down rule sees it."""

    at: datetime
    bad: bool
    error: str | None = None
    detail: str | None = None  # short and secret-free (ProbeResult.detail)


@dataclass(frozen=True, slots=True)
class Signals:
    """What the evaluator measured for one target; None means "not measured this time".

    recent: per probe, its latest valid results, oldest first; include results during
        maintenance (state is tracked through it). At least max(failures + 1, recoveries)
        per probe. A probe missing from the mapping is no longer configured.
    latency_values: the last `alerts.latency.last` values of `alerts.latency.metric`.
    windows: counts per window length in seconds, for `slo.required_windows(slo)`,
        maintenance excluded.
    """

    recent: Mapping[str, Sequence[ProbeOutcome]] | None = None
    latency_values: Sequence[float] | None = None
    windows: Mapping[float, WindowCounts] | None = None
    spend_today_usd: float | None = None
    cert_days_left: float | None = None
    in_maintenance: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """The effective alert settings of one target."""

    alerts: Alerts
    slo: Slo
    spend_cap_usd_per_day: float | None = None

    @classmethod
    def for_target(cls, config: Config, target: Target) -> Policy:
        return cls(config.alerts(target), config.slo(target), target.spend_cap_usd_per_day)


# --- measurements and statuses ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurement:
    """A measured value against the threshold it is compared with, for messages."""

    name: str  # consecutive_failures, p95_ttft_ms, burn_rate, budget_remaining, ...
    value: float | str | None
    threshold: float | None = None
    op: str | None = None  # the firing comparison: value OP threshold
    unit: str = ""
    scope: str | None = None  # probe name or burn window name

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "threshold": self.threshold,
            "op": self.op,
            "unit": self.unit,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Measurement:
        return cls(d["name"], d["value"], d["threshold"], d["op"], d["unit"], d["scope"])


@dataclass(frozen=True, slots=True)
class RuleStatus:
    rule: str
    firing: bool | None  # None: no data, keep the previous state
    measurements: tuple[Measurement, ...] = ()
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ConfirmRequest:
    """Run this probe once more now; its result decides whether `down` fires."""

    target: str
    probe: str
    dedup_key: str


# --- state ---------------------------------------------------------------------------------------


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    return at.astimezone(UTC)


@dataclass(slots=True)
class ProbeDownState:
    down: bool = False
    # Time of the Nth failure a confirmation was asked for: ask once per streak.
    confirm_asked_for: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"down": self.down, "confirm_asked_for": _iso(self.confirm_asked_for)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ProbeDownState:
        return cls(d["down"], _parse(d["confirm_asked_for"]))


@dataclass(slots=True)
class Incident:
    id: str
    target: str
    group: str
    severity: Severity
    opened_at: datetime
    rules: list[str]  # firing now
    all_rules: list[str]  # every rule that took part, in order of joining
    notified: bool = False  # its opening was announced (opened, or flapping_over)
    reminders: int = 0
    last_notice_at: datetime | None = None
    resolved_at: datetime | None = None
    opened_in_maintenance: bool = False
    # Last known measurements per rule, so a reminder can show them when data is missing.
    measurements: dict[str, list[Measurement]] = field(default_factory=dict)
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "target": self.target,
            "group": self.group,
            "severity": self.severity,
            "opened_at": _iso(self.opened_at),
            "rules": list(self.rules),
            "all_rules": list(self.all_rules),
            "notified": self.notified,
            "reminders": self.reminders,
            "last_notice_at": _iso(self.last_notice_at),
            "resolved_at": _iso(self.resolved_at),
            "opened_in_maintenance": self.opened_in_maintenance,
            "measurements": {
                rule: [m.to_json() for m in ms] for rule, ms in self.measurements.items()
            },
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Incident:
        opened_at = _parse(d["opened_at"])
        assert opened_at is not None
        return cls(
            id=d["id"],
            target=d["target"],
            group=d["group"],
            severity=d["severity"],
            opened_at=opened_at,
            rules=list(d["rules"]),
            all_rules=list(d["all_rules"]),
            notified=d["notified"],
            reminders=d["reminders"],
            last_notice_at=_parse(d["last_notice_at"]),
            resolved_at=_parse(d["resolved_at"]),
            opened_in_maintenance=d["opened_in_maintenance"],
            measurements={
                rule: [Measurement.from_json(m) for m in ms]
                for rule, ms in d["measurements"].items()
            },
            detail=d["detail"],
        )


@dataclass(slots=True)
class GroupState:
    """One target x group: its open incident, flapping bookkeeping, deferred notices."""

    opened: int = 0  # incidents opened so far; the next one is number opened + 1
    incident: Incident | None = None
    recent_opens: list[datetime] = field(default_factory=list)  # unmuted, last hour
    last_change_at: datetime | None = None  # last open or resolve
    flapping_since: datetime | None = None
    flap_episodes: int = 0
    unsent_resolved: list[Incident] = field(default_factory=list)  # resolved while muted

    def to_json(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "incident": self.incident.to_json() if self.incident else None,
            "recent_opens": [_iso(t) for t in self.recent_opens],
            "last_change_at": _iso(self.last_change_at),
            "flapping_since": _iso(self.flapping_since),
            "flap_episodes": self.flap_episodes,
            "unsent_resolved": [i.to_json() for i in self.unsent_resolved],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GroupState:
        return cls(
            opened=d["opened"],
            incident=Incident.from_json(d["incident"]) if d["incident"] else None,
            recent_opens=[t for t in map(_parse, d["recent_opens"]) if t is not None],
            last_change_at=_parse(d["last_change_at"]),
            flapping_since=_parse(d["flapping_since"]),
            flap_episodes=d["flap_episodes"],
            unsent_resolved=[Incident.from_json(i) for i in d["unsent_resolved"]],
        )


@dataclass(slots=True)
class TargetState:
    """Everything the rules remember about one target between evaluations."""

    target: str
    down: dict[str, ProbeDownState] = field(default_factory=dict)
    groups: dict[str, GroupState] = field(default_factory=dict)
    muted: bool = False  # in maintenance at the last evaluation

    def group(self, name: str) -> GroupState:
        return self.groups.setdefault(name, GroupState())

    def open_incidents(self) -> list[Incident]:
        return [g.incident for _, g in sorted(self.groups.items()) if g.incident]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "target": self.target,
            "down": {probe: s.to_json() for probe, s in sorted(self.down.items())},
            "groups": {name: g.to_json() for name, g in sorted(self.groups.items())},
            "muted": self.muted,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TargetState:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"unknown rules state version {d.get('version')!r}")
        return cls(
            target=d["target"],
            down={p: ProbeDownState.from_json(s) for p, s in d["down"].items()},
            groups={n: GroupState.from_json(g) for n, g in d["groups"].items()},
            muted=d["muted"],
        )


# --- outputs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notification:
    """A notice to write to the outbox; `dedup_key` makes writing it twice harmless."""

    dedup_key: str
    kind: Kind
    severity: Severity
    target: str
    group: str
    incident_id: str | None  # None for a flapping_over that settled resolved
    rules: tuple[str, ...]  # every rule that took part
    firing: tuple[str, ...]  # rules firing at the time of the notice
    since: datetime  # incident opened (flapping: when flapping began)
    at: datetime  # evaluation time
    resolved_at: datetime | None
    duration_s: float | None  # resolved: how long the incident lasted
    # Per rule: the values measured now where there are any, else the last ones seen.
    measurements: dict[str, tuple[Measurement, ...]]
    detail: str | None
    tags: tuple[str, ...]
    still_open: bool
    note: str | None = None

    @property
    def notify_type(self) -> str:
        return apprise_notify_type(self.kind, self.severity, self.still_open)

    def to_json(self) -> dict[str, Any]:
        return {
            "dedup_key": self.dedup_key,
            "kind": self.kind,
            "severity": self.severity,
            "target": self.target,
            "group": self.group,
            "incident_id": self.incident_id,
            "rules": list(self.rules),
            "firing": list(self.firing),
            "since": _iso(self.since),
            "at": _iso(self.at),
            "resolved_at": _iso(self.resolved_at),
            "duration_s": self.duration_s,
            "measurements": {r: [m.to_json() for m in ms] for r, ms in self.measurements.items()},
            "detail": self.detail,
            "tags": list(self.tags),
            "still_open": self.still_open,
            "note": self.note,
            "notify_type": self.notify_type,
        }


@dataclass(frozen=True, slots=True)
class Evaluation:
    state: TargetState
    notifications: list[Notification]
    confirmations: list[ConfirmRequest]
    # Incidents opened, changed (rules joined or left, announced) or resolved in this run,
    # as they are now: upsert them by id into the incidents table.
    changed: list[Incident]
    statuses: dict[str, RuleStatus]


# --- rule statuses ------------------------------------------------------------------------------


def _streaks(outcomes: Sequence[ProbeOutcome]) -> tuple[int, int]:
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
        return ConfirmRequest(target, probe, f"{target}:{probe}:confirm:{_iso(last_at)}")
    return None


def _down_status(
    state: TargetState, signals: Signals, policy: Policy
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
        bad, good = _streaks(outcomes)
        ask = _step_probe(state.target, probe, probe_state, (bad, good), _utc(last.at), rule)
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


def _burn_statuses(state: TargetState, signals: Signals, policy: Policy) -> list[RuleStatus]:
    slo = policy.slo
    windows = burn_windows(slo.window)
    if not policy.alerts.burn or not windows:
        return [RuleStatus("burn_page", False), RuleStatus("burn_ticket", False)]
    counts = signals.windows
    needed = {length for w in windows for length in (w.long_s, w.short_s)}
    if counts is None or not needed <= set(counts):
        return [RuleStatus("burn_page", None), RuleStatus("burn_ticket", None)]
    alerts = evaluate_burn(counts, slo)
    per_severity: dict[str, list[Measurement]] = {"page": [], "ticket": []}
    for w in windows:
        for length, which in ((w.long_s, "long"), (w.short_s, "short")):
            rate = burn_rate(counts[length], slo.availability)
            per_severity[w.severity].append(
                Measurement(f"burn_rate_{which}", rate, w.factor, ">", "x", w.name)
            )
    page = any(a.severity == "page" for a in alerts)
    ticket = any(a.severity == "ticket" for a in alerts)
    ticket_open = state.group("burn_ticket").incident is not None
    return [
        RuleStatus("burn_page", page, tuple(per_severity["page"])),
        RuleStatus("burn_ticket", ticket or (page and ticket_open), tuple(per_severity["ticket"])),
    ]


def _p95(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(0.95 * len(ordered)) - 1]


def _latency_status(signals: Signals, policy: Policy) -> RuleStatus:
    rule = policy.alerts.latency
    if rule.p95_above_ms is None:
        return RuleStatus("latency", False)
    values = signals.latency_values
    if values is None or len(values) < rule.last:
        return RuleStatus("latency", None)
    p95 = _p95(list(values)[-rule.last :])
    m = Measurement(f"p95_{rule.metric}", p95, rule.p95_above_ms, ">", "ms", f"last {rule.last}")
    return RuleStatus("latency", p95 > rule.p95_above_ms, (m,))


def _budget_status(signals: Signals, policy: Policy) -> RuleStatus:
    level = policy.alerts.budget_below
    if level is None:
        return RuleStatus("budget", False)
    counts = None if signals.windows is None else signals.windows.get(policy.slo.window)
    remaining = None if counts is None else budget_remaining(counts, policy.slo.availability)
    if counts is None or remaining is None:
        return RuleStatus("budget", None)
    m = Measurement("budget_remaining", remaining, level, "<", "ratio")
    firing = remaining < level and counts.bad >= policy.slo.min_bad
    return RuleStatus("budget", firing, (m,))


def _spend_status(signals: Signals, policy: Policy) -> RuleStatus:
    cap = policy.spend_cap_usd_per_day
    if cap is None:
        return RuleStatus("spend", False)
    if signals.spend_today_usd is None:
        return RuleStatus("spend", None)
    m = Measurement("spend_today", signals.spend_today_usd, cap, ">=", "USD")
    return RuleStatus("spend", signals.spend_today_usd >= cap, (m,))


def _cert_status(signals: Signals, policy: Policy) -> RuleStatus:
    days = policy.alerts.cert_days
    if days is None:
        return RuleStatus("cert", False)
    if signals.cert_days_left is None:
        return RuleStatus("cert", None)
    m = Measurement("cert_days_left", signals.cert_days_left, days, "<=", "days")
    return RuleStatus("cert", signals.cert_days_left <= days, (m,))


def rule_statuses(
    state: TargetState, signals: Signals, policy: Policy
) -> tuple[dict[str, RuleStatus], list[ConfirmRequest]]:
    """Every rule's verdict for this evaluation (updates the down hysteresis in `state`)."""
    down, confirmations = _down_status(state, signals, policy)
    statuses = [
        down,
        *_burn_statuses(state, signals, policy),
        _latency_status(signals, policy),
        _budget_status(signals, policy),
        _spend_status(signals, policy),
        _cert_status(signals, policy),
    ]
    return {s.rule: s for s in statuses}, confirmations


# --- incidents ----------------------------------------------------------------------------------


class _Run:
    """One evaluation of one target: walks every group and collects the outcome."""

    def __init__(
        self,
        state: TargetState,
        statuses: dict[str, RuleStatus],
        policy: Policy,
        now: datetime,
        muted: bool,
    ) -> None:
        self.state = state
        self.statuses = statuses
        self.policy = policy
        self.now = now
        self.muted = muted
        self.maintenance_ended = state.muted and not muted
        self.notifications: list[Notification] = []
        self.changed: dict[str, Incident] = {}

    def step(self, name: str) -> None:
        group = self.state.group(name)
        opened_now = self._transition(name, group)
        if self.muted:
            return
        self._flush_deferred_resolved(group)
        if group.flapping_since is not None:
            self._maybe_end_flapping(name, group)
            return
        incident = group.incident
        if incident is None or opened_now:
            return
        if not incident.notified:
            note = "opened during maintenance" if incident.opened_in_maintenance else None
            self._announce(incident, note)
        elif self.maintenance_ended or self._reminder_due(incident):
            incident.reminders += 1
            incident.last_notice_at = self.now
            note = "still failing after maintenance" if self.maintenance_ended else None
            self._emit(incident, "reminder", incident.reminders, note=note)

    # transitions

    def _transition(self, name: str, group: GroupState) -> bool:
        """Open, update or resolve the group's incident; True if it opened now."""
        incident = group.incident
        active = self._active_rules(name, incident)
        if incident is None and active:
            self._open(name, group, active)
            return True
        if incident is not None and active:
            if active != incident.rules:
                incident.rules = active
                incident.all_rules += [r for r in active if r not in incident.all_rules]
                self.changed[incident.id] = incident
            self._remember(incident)
        elif incident is not None:
            self._resolve(group, incident)
        return False

    def _active_rules(self, name: str, incident: Incident | None) -> list[str]:
        active = []
        for rule in rules_of(name):
            firing = self.statuses[rule].firing
            if firing is None:  # no data: keep what it was
                firing = incident is not None and rule in incident.rules
            if firing:
                active.append(rule)
        return active

    def _open(self, name: str, group: GroupState, active: list[str]) -> None:
        group.opened += 1
        incident = Incident(
            id=f"{self.state.target}:{name}:{group.opened}",
            target=self.state.target,
            group=name,
            severity=severity_of(name),
            opened_at=self.now,
            rules=list(active),
            all_rules=list(active),
            opened_in_maintenance=self.muted,
        )
        self._remember(incident)
        group.incident = incident
        group.last_change_at = self.now
        self.changed[incident.id] = incident
        if self.muted:
            return
        group.recent_opens = [t for t in group.recent_opens if self.now - t < FLAP_WINDOW]
        group.recent_opens.append(self.now)
        too_many = len(group.recent_opens) > self.policy.alerts.flapping_opens_per_hour
        if group.flapping_since is None and too_many:
            group.flapping_since = self.now
            group.flap_episodes += 1
            self._emit_flapping(name, group, "flapping")
        elif group.flapping_since is None:
            self._announce(incident, None)

    def _resolve(self, group: GroupState, incident: Incident) -> None:
        incident.rules = []
        incident.resolved_at = self.now
        group.incident = None
        group.last_change_at = self.now
        self.changed[incident.id] = incident
        if not incident.notified or group.flapping_since is not None:
            return
        if self.muted:
            group.unsent_resolved.append(incident)
        else:
            self._emit(incident, "resolved", 0)

    def _remember(self, incident: Incident) -> None:
        for rule in incident.all_rules:
            status = self.statuses[rule]
            if status.firing is not None and status.measurements:
                incident.measurements[rule] = list(status.measurements)
            if status.detail:
                incident.detail = status.detail

    # notices

    def _announce(self, incident: Incident, note: str | None) -> None:
        incident.notified = True
        incident.last_notice_at = self.now
        self.changed[incident.id] = incident
        self._emit(incident, "opened", 0, note=note)

    def _reminder_due(self, incident: Incident) -> bool:
        last = incident.last_notice_at or incident.opened_at
        return (self.now - last).total_seconds() >= self.policy.alerts.renotify

    def _flush_deferred_resolved(self, group: GroupState) -> None:
        for incident in group.unsent_resolved:
            self._emit(incident, "resolved", 0, note="resolved during maintenance")
        group.unsent_resolved = []

    def _maybe_end_flapping(self, name: str, group: GroupState) -> None:
        assert group.last_change_at is not None
        if self.now - group.last_change_at < FLAP_WINDOW:
            return
        self._emit_flapping(name, group, "flapping_over")
        group.flapping_since = None
        group.recent_opens = []
        if group.incident is not None:
            group.incident.notified = True
            group.incident.last_notice_at = self.now
            self.changed[group.incident.id] = group.incident

    def _measurements(self, incident: Incident) -> dict[str, tuple[Measurement, ...]]:
        out: dict[str, tuple[Measurement, ...]] = {}
        for rule in incident.all_rules:
            status = self.statuses[rule]
            known = status.measurements if status.firing is not None else ()
            out[rule] = tuple(known or incident.measurements.get(rule, ()))
        return out

    def _emit(self, incident: Incident, kind: Kind, seq: int, note: str | None = None) -> None:
        resolved = incident.resolved_at
        self.notifications.append(
            Notification(
                dedup_key=f"{incident.id}:{kind}:{seq}",
                kind=kind,
                severity=incident.severity,
                target=incident.target,
                group=incident.group,
                incident_id=incident.id,
                rules=tuple(incident.all_rules),
                firing=tuple(incident.rules),
                since=incident.opened_at,
                at=self.now,
                resolved_at=resolved,
                duration_s=None
                if resolved is None
                else (resolved - incident.opened_at).total_seconds(),
                measurements=self._measurements(incident),
                detail=incident.detail,
                tags=tuple(route_tags(incident.all_rules, self.policy.alerts)),
                still_open=resolved is None,
                note=note,
            )
        )

    def _emit_flapping(self, name: str, group: GroupState, kind: Kind) -> None:
        incident = group.incident
        rules = incident.all_rules if incident else list(rules_of(name))
        flap_id = f"{self.state.target}:{name}:flap-{group.flap_episodes}"
        assert group.flapping_since is not None
        since = group.flapping_since
        if incident is not None and kind == "flapping_over":
            since = incident.opened_at
        opens = len(group.recent_opens)
        note = (
            f"{opens} incidents opened within an hour; quiet until stable for an hour"
            if kind == "flapping"
            else ("stable for an hour, still failing" if incident else "stable for an hour")
        )
        self.notifications.append(
            Notification(
                dedup_key=f"{flap_id}:{kind}:0",
                kind=kind,
                severity=severity_of(name),
                target=self.state.target,
                group=name,
                incident_id=incident.id if incident else None,
                rules=tuple(rules),
                firing=tuple(incident.rules) if incident else (),
                since=since,
                at=self.now,
                resolved_at=None,
                duration_s=None,
                measurements=self._measurements(incident) if incident else {},
                detail=incident.detail if incident else None,
                tags=tuple(route_tags(rules, self.policy.alerts)),
                still_open=incident is not None,
                note=note,
            )
        )


def evaluate(state: TargetState, signals: Signals, policy: Policy, now: datetime) -> Evaluation:
    """One evaluation of one target. The given state is not modified; use the returned one."""
    now = _utc(now)
    # Working on a JSON copy keeps the caller's state intact and proves that everything the
    # machine depends on survives persistence.
    state = TargetState.from_json(state.to_json())
    statuses, confirmations = rule_statuses(state, signals, policy)
    run = _Run(state, statuses, policy, now, signals.in_maintenance)
    for name in GROUPS:
        run.step(name)
    state.muted = signals.in_maintenance
    return Evaluation(state, run.notifications, confirmations, list(run.changed.values()), statuses)
