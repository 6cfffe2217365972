"""A notification: the typed notice the rules emit, and how it is routed and classed.

It travels as this frozen dataclass from the rules through the evaluator to the outbox
(`checker.alerting.messages` renders it); `to_json()` is its stored and templated form.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from checker.alerting.signals import PAGE_RULES, Measurement, Severity
from checker.alerting.state import iso
from checker.config.schema import Alerts

__all__ = ["Kind", "Notification", "apprise_notify_type", "default_tags", "route_tags"]

Kind = Literal["opened", "reminder", "resolved", "flapping", "flapping_over"]


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
            "since": iso(self.since),
            "at": iso(self.at),
            "resolved_at": iso(self.resolved_at),
            "duration_s": self.duration_s,
            "measurements": {r: [m.to_json() for m in ms] for r, ms in self.measurements.items()},
            "detail": self.detail,
            "tags": list(self.tags),
            "still_open": self.still_open,
            "note": self.note,
            "notify_type": self.notify_type,
        }
