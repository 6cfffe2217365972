"""The `down` verdict of a fleet: streaks per (probe, location), a quorum of the locations
that report, and `location_down` when fewer than the quorum fail. The pure machine, driven
round by round as nodes would feed it (state through JSON between rounds)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from checker.alerting.notification import Notification
from checker.alerting.rules import evaluate
from checker.alerting.signals import Policy, ProbeOutcome, Signals
from checker.alerting.state import AlertState
from checker.config.schema import Alerts, Slo

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Fleet:
    def __init__(self, locations: tuple[str, ...] = ("east", "west", "north"), **down: Any):
        alerts = Alerts.model_validate({"down": down, "burn": False, "budget_below": None})
        self.policy = Policy(alerts, Slo(), interval_s=60)
        self.locations = locations
        self.state = AlertState("api")
        self.now = T0
        self.results: list[ProbeOutcome] = []
        self.sent: list[Notification] = []

    def round(self, *failing: str, only: tuple[str, ...] | None = None) -> list[Notification]:
        """One interval: every location (or `only` these) probes; `failing` ones fail."""
        for i, loc in enumerate(only or self.locations):
            bad = loc in failing
            at = self.now + timedelta(milliseconds=10 * i)
            self.results.append(
                ProbeOutcome(at, bad, "server_error" if bad else None, "HTTP 503", loc)
            )
        signals = Signals(recent={"stream": self.results[-30:]})
        ev = evaluate(self.state, signals, self.policy, self.now)
        self.state = AlertState.from_json(json.loads(json.dumps(ev.state.to_json())))
        self.sent += ev.notifications
        self.now += timedelta(seconds=60)
        return ev.notifications

    def kinds(self) -> list[tuple[str, str]]:
        return [(n.kind, n.group) for n in self.sent]


def test_one_location_failing_never_pages_but_opens_a_location_ticket() -> None:
    fleet = Fleet()
    for _ in range(6):
        fleet.round("east")
    assert fleet.kinds() == [("opened", "location_down")]
    [ticket] = fleet.sent
    assert (
        ticket.detail is not None and "failing from east only (1 of 3 locations)" in ticket.detail
    )
    for _ in range(2):
        fleet.round()
    assert fleet.kinds()[-1] == ("resolved", "location_down")


def test_another_locations_successes_do_not_break_a_streak() -> None:
    # Interleaved results used to be one streak: east's failures were reset by west's
    # successes and a route failing 100% from east never paged or told anyone.
    fleet = Fleet(locations=("east", "west"), quorum=1)
    assert fleet.round("east") == [] and fleet.round("east") == []
    [page] = fleet.round("east")
    assert (page.kind, page.group) == ("opened", "page")
    assert page.detail is not None and page.detail.startswith("stream: failing from east only")


def test_a_majority_pages_once_and_resolves_once() -> None:
    fleet = Fleet()
    fleet.round("east", "west")
    fleet.round("east", "west")
    [page] = fleet.round("east", "west")
    assert (page.kind, page.group) == ("opened", "page")
    down = {m.name: m for m in page.measurements["down"]}["locations_down"]
    assert (down.value, down.threshold) == (2, 2)  # 2 of 3 down, a majority needs 2
    for _ in range(4):
        fleet.round("east", "west")
    assert fleet.round() == []  # one good round: recoveries is 2
    [resolved] = fleet.round()
    assert resolved.kind == "resolved" and resolved.group == "page"
    assert [k for k in fleet.kinds() if k[1] == "page"] == [
        ("opened", "page"),
        ("resolved", "page"),
    ]
    assert all(g != "location_down" for _, g in fleet.kinds())


def test_a_location_that_stopped_reporting_neither_pages_nor_vetoes() -> None:
    fleet = Fleet()
    fleet.round("east")  # north and west report once, fine...
    for _ in range(4):  # ...then stop: only east reports, and fails
        fleet.round("east", only=("east",))
    assert ("opened", "page") in fleet.kinds()  # east is the whole fleet that reports


def test_quorum_as_a_number_and_as_a_share() -> None:
    every = Fleet(quorum="100%")
    for _ in range(4):
        every.round("east", "west")
    assert ("opened", "page") not in every.kinds()  # north still answers
    one = Fleet(quorum=1)
    for _ in range(3):
        one.round("north")
    assert ("opened", "page") in one.kinds()


def test_the_location_ticket_can_be_switched_off() -> None:
    fleet = Fleet(location_ticket=False)
    for _ in range(5):
        fleet.round("east")
    assert fleet.sent == []


def test_state_written_before_fleets_still_loads() -> None:
    doc = AlertState("api").to_json()
    del doc["down_at"]
    assert AlertState.from_json(doc).down_at == {}
