"""What the rules remember about a target between evaluations, as JSON-round-trippable data.

`AlertState` holds each probe's down/up hysteresis and, per rule group, the open
`Incident` and the flapping bookkeeping. The evaluator stores `AlertState.to_json()` and
reads it back with `AlertState.from_json()`, so a restart continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from checker.alerting.signals import Measurement, Severity

__all__ = [
    "STATE_VERSION",
    "AlertState",
    "GroupState",
    "Incident",
    "ProbeDownState",
    "as_utc",
    "iso",
    "parse_iso",
]

STATE_VERSION = 1


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat()


def parse_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def as_utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    return at.astimezone(UTC)


@dataclass(slots=True)
class ProbeDownState:
    down: bool = False
    # Time of the Nth failure a confirmation was asked for: ask once per streak.
    confirm_asked_for: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"down": self.down, "confirm_asked_for": iso(self.confirm_asked_for)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ProbeDownState:
        return cls(d["down"], parse_iso(d["confirm_asked_for"]))


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
            "opened_at": iso(self.opened_at),
            "rules": list(self.rules),
            "all_rules": list(self.all_rules),
            "notified": self.notified,
            "reminders": self.reminders,
            "last_notice_at": iso(self.last_notice_at),
            "resolved_at": iso(self.resolved_at),
            "opened_in_maintenance": self.opened_in_maintenance,
            "measurements": {
                rule: [m.to_json() for m in ms] for rule, ms in self.measurements.items()
            },
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Incident:
        opened_at = parse_iso(d["opened_at"])
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
            last_notice_at=parse_iso(d["last_notice_at"]),
            resolved_at=parse_iso(d["resolved_at"]),
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
            "recent_opens": [iso(t) for t in self.recent_opens],
            "last_change_at": iso(self.last_change_at),
            "flapping_since": iso(self.flapping_since),
            "flap_episodes": self.flap_episodes,
            "unsent_resolved": [i.to_json() for i in self.unsent_resolved],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GroupState:
        return cls(
            opened=d["opened"],
            incident=Incident.from_json(d["incident"]) if d["incident"] else None,
            recent_opens=[t for t in map(parse_iso, d["recent_opens"]) if t is not None],
            last_change_at=parse_iso(d["last_change_at"]),
            flapping_since=parse_iso(d["flapping_since"]),
            flap_episodes=d["flap_episodes"],
            unsent_resolved=[Incident.from_json(i) for i in d["unsent_resolved"]],
        )


@dataclass(slots=True)
class AlertState:
    """Everything the rules remember about one target between evaluations."""

    target: str
    # Per probe: the verdict (of the fleet, when results come from several locations).
    down: dict[str, ProbeDownState] = field(default_factory=dict)
    groups: dict[str, GroupState] = field(default_factory=dict)
    muted: bool = False  # in maintenance at the last evaluation
    # Per probe and location, each location's own hysteresis (several locations only).
    down_at: dict[str, dict[str, ProbeDownState]] = field(default_factory=dict)

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
            "down_at": {
                probe: {loc: s.to_json() for loc, s in sorted(by_loc.items())}
                for probe, by_loc in sorted(self.down_at.items())
            },
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AlertState:
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"unknown rules state version {d.get('version')!r}")
        return cls(
            target=d["target"],
            down={p: ProbeDownState.from_json(s) for p, s in d["down"].items()},
            groups={n: GroupState.from_json(g) for n, g in d["groups"].items()},
            muted=d["muted"],
            # Absent in states written before fleets were judged per location.
            down_at={
                probe: {loc: ProbeDownState.from_json(s) for loc, s in by_loc.items()}
                for probe, by_loc in d.get("down_at", {}).items()
            },
        )
