"""The incident lifecycle of one evaluation: open, join, resolve, remind, flap, unmute.

`IncidentRun` walks a target's rule groups with the rules' verdicts and collects the
notifications and changed incidents; the policy it implements is described in
`checker.alerting.rules`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from checker.alerting.notification import Kind, Notification, route_tags
from checker.alerting.signals import Measurement, Policy, RuleStatus, rules_of, severity_of
from checker.alerting.state import AlertState, GroupState, Incident

__all__ = ["FLAP_WINDOW", "IncidentRun"]

FLAP_WINDOW = timedelta(hours=1)


class IncidentRun:
    """One evaluation of one target: walks every group and collects the outcome."""

    def __init__(
        self,
        state: AlertState,
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
