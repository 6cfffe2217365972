"""Alert rules -> incidents -> notifications: exhaustive transitions of the pure machine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from checker.alerting.notification import Notification, apprise_notify_type, route_tags
from checker.alerting.rules import Evaluation, evaluate
from checker.alerting.signals import Policy, ProbeOutcome, Signals
from checker.alerting.slo import WindowCounts, required_windows
from checker.alerting.state import AlertState
from checker.config.schema import Alerts, Config, Slo

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MIN = 60.0
HOUR = 3600.0
DAY = 86400.0


def policy(slo: Slo | None = None, spend_cap: float | None = None, **alerts: Any) -> Policy:
    return Policy(Alerts.model_validate(alerts), slo or Slo(availability=0.999), spend_cap)


def healthy_windows(slo: Slo) -> dict[float, WindowCounts]:
    return {w: WindowCounts(int(w // MIN), 0) for w in required_windows(slo)}


def burning_windows(slo: Slo, bad: int = 10) -> dict[float, WindowCounts]:
    """A fast burn: `bad` failures in the last 5 minutes (pages at 99.9%)."""
    return {w: WindowCounts(int(w // MIN), min(bad, int(w // MIN))) for w in required_windows(slo)}


def ticket_windows(slo: Slo) -> dict[float, WindowCounts]:
    """A slow burn at 99.9%: only the 3d/6h pair exceeds its factor (burn 1.2 and 1.4)."""
    bad = {6 * HOUR: 1, 3 * DAY: 5, DAY: 1, 2 * HOUR: 1}
    counts = {w: WindowCounts(int(w // MIN), bad.get(w, 0)) for w in required_windows(slo)}
    counts[5 * MIN] = WindowCounts(5, 0)
    counts[HOUR] = WindowCounts(60, 0)
    counts[30 * MIN] = WindowCounts(30, 0)
    return counts


class Sim:
    """Drives the machine like the evaluator: state through JSON text between every step."""

    def __init__(self, pol: Policy, target: str = "api", roundtrip: bool = True) -> None:
        self.policy = pol
        self.state = AlertState(target)
        self.now = T0
        self.roundtrip = roundtrip
        self.results: dict[str, list[ProbeOutcome]] = {"stream": []}
        self.sent: list[Notification] = []
        self.keys: set[str] = set()
        self.last: Evaluation | None = None
        self.maintenance = False
        self.extra: dict[str, Any] = {}

    def probe(self, bad: bool, probe: str = "stream", error: str = "timeout") -> list[Notification]:
        self.results.setdefault(probe, []).append(
            ProbeOutcome(
                self.now, bad, error if bad else None, f"{error} after 30s" if bad else None
            )
        )
        out = self.evaluate()
        self.now += timedelta(seconds=60)
        return out

    def probes(self, pattern: str) -> list[Notification]:
        """'xxx..' = three bad then two good results."""
        out: list[Notification] = []
        for ch in pattern:
            out += self.probe(ch == "x")
        return out

    def evaluate(self, **signals: Any) -> list[Notification]:
        recent = {p: list(r[-10:]) for p, r in self.results.items()}
        merged = {"recent": recent, "in_maintenance": self.maintenance, **self.extra, **signals}
        ev = evaluate(self.state, Signals(**merged), self.policy, self.now)
        self.last = ev
        for n in ev.notifications:
            assert n.dedup_key not in self.keys, f"sent twice: {n.dedup_key}"
            self.keys.add(n.dedup_key)
            json.dumps(n.to_json())  # the outbox stores it as JSON
        self.sent += ev.notifications
        if self.roundtrip:
            self.state = AlertState.from_json(json.loads(json.dumps(ev.state.to_json())))
        else:
            self.state = ev.state
        return ev.notifications

    def wait(self, seconds: float, **signals: Any) -> list[Notification]:
        self.now += timedelta(seconds=seconds)
        return self.evaluate(**signals)

    def kinds(self) -> list[tuple[str, str]]:
        return [(n.kind, n.group) for n in self.sent]


# --- down -------------------------------------------------------------------------------------


def test_down_opens_after_exactly_n_failures_not_n_minus_1() -> None:
    sim = Sim(policy())
    assert sim.probes("xx") == []
    assert sim.state.open_incidents() == []
    [page] = sim.probe(True)
    assert (page.kind, page.severity, page.group, page.rules) == (
        "opened",
        "page",
        "page",
        ("down",),
    )
    assert page.notify_type == "failure"
    assert page.tags == ("page",)
    assert page.since == T0 + timedelta(minutes=2)
    assert page.detail == "timeout after 30s"
    failures = page.measurements["down"][0]
    assert (failures.name, failures.value, failures.threshold, failures.scope) == (
        "consecutive_failures",
        3,
        3,
        "stream",
    )
    assert page.dedup_key == "api:page:1:opened:0"


def test_configured_failure_count() -> None:
    sim = Sim(policy(down={"failures": 5}))
    assert sim.probes("xxxx") == []
    assert [n.kind for n in sim.probe(True)] == ["opened"]


def test_more_failures_do_not_page_again() -> None:
    sim = Sim(policy())
    sim.probes("xxx")
    assert sim.probes("x" * 30) == []
    assert sim.kinds() == [("opened", "page")]


def test_resolves_after_m_successes_with_the_duration() -> None:
    sim = Sim(policy())
    sim.probes("xxx")
    assert sim.probe(False) == []
    [resolved] = sim.probe(False)
    assert resolved.kind == "resolved" and resolved.notify_type == "success"
    assert resolved.duration_s == 2 * 60  # opened at minute 2, resolved at minute 4
    recovered = resolved.measurements["down"][0]
    assert (recovered.name, recovered.value, recovered.threshold) == ("consecutive_successes", 2, 2)
    assert resolved.still_open is False
    assert resolved.dedup_key == "api:page:1:resolved:0"
    assert sim.state.open_incidents() == []


def test_configured_recovery_count_and_hysteresis() -> None:
    sim = Sim(policy(down={"recoveries": 3}))
    sim.probes("xxx")
    # Alternating results neither resolve nor re-open.
    assert sim.probes(".x.x..x") == []
    assert len(sim.state.open_incidents()) == 1
    assert [n.kind for n in sim.probes("...")] == ["resolved"]


def test_good_results_between_failures_reset_the_streak() -> None:
    sim = Sim(policy())
    assert sim.probes("xx.xx.xx.") == []
    assert sim.state.open_incidents() == []


def test_down_is_per_probe() -> None:
    sim = Sim(policy())
    out: list[Notification] = []
    for _ in range(3):  # models keeps working, stream keeps failing
        out += sim.probe(False, probe="models")
        out += sim.probe(True, probe="stream")
    assert [n.kind for n in out] == ["opened"]
    assert out[0].measurements["down"][0].scope == "stream"


def test_a_probe_removed_from_the_config_stops_counting() -> None:
    sim = Sim(policy())
    sim.probes("xxx")
    del sim.results["stream"]
    sim.results["models"] = []
    assert [n.kind for n in sim.wait(30)] == ["resolved"]


def test_missing_results_keep_the_incident() -> None:
    sim = Sim(policy())
    sim.probes("xxx")
    assert sim.wait(30, recent=None) == []
    assert len(sim.state.open_incidents()) == 1


def test_confirmation_asked_once_then_fires_when_it_fails_too() -> None:
    sim = Sim(policy(down={"confirm": True}))
    sim.probes("xx")
    assert sim.probe(True) == []
    assert sim.last is not None
    [ask] = sim.last.confirmations
    assert (ask.target, ask.probe) == ("api", "stream")
    assert sim.wait(5) == []  # a second evaluation does not ask again
    assert sim.last.confirmations == []
    assert [n.kind for n in sim.probe(True)] == ["opened"]


def test_a_passing_confirmation_prevents_the_page() -> None:
    sim = Sim(policy(down={"confirm": True}))
    sim.probes("xxx")
    assert sim.probe(False) == []
    assert sim.state.open_incidents() == []
    sim.probes("xx")
    assert sim.probe(True) == []  # a new streak asks again
    assert sim.last is not None and len(sim.last.confirmations) == 1
    assert sim.last.confirmations[0].dedup_key != ""


# --- grouping ---------------------------------------------------------------------------------


def test_burn_page_while_down_joins_the_same_incident() -> None:
    pol = policy()
    sim = Sim(pol)
    sim.extra["windows"] = healthy_windows(pol.slo)
    sim.probes("xxx")
    sim.extra["windows"] = burning_windows(pol.slo)
    assert sim.probe(True) == []  # no second page
    [incident] = sim.state.open_incidents()
    assert incident.rules == ["down", "burn_page"]
    assert sim.probes("..") == []  # down clears; burn_page still fires: still open
    assert sim.state.open_incidents()[0].rules == ["burn_page"]
    sim.extra["windows"] = healthy_windows(pol.slo)
    [resolved] = sim.wait(30)
    assert resolved.kind == "resolved"
    assert resolved.rules == ("down", "burn_page")
    assert sim.kinds() == [("opened", "page"), ("resolved", "page")]


def test_down_joining_a_burn_page_does_not_page_again() -> None:
    pol = policy()
    sim = Sim(pol)
    sim.extra["windows"] = burning_windows(pol.slo)
    [page] = sim.wait(0)
    assert page.rules == ("burn_page",)
    burn = {m.scope for m in page.measurements["burn_page"]}
    assert burn == {"page-1h", "page-6h"}
    assert sim.probes("xxxx") == []
    [incident] = sim.state.open_incidents()
    assert incident.all_rules == ["burn_page", "down"]  # in order of joining
    assert incident.rules == ["down", "burn_page"]


def test_reminders_name_every_rule_that_joined() -> None:
    pol = policy(renotify="1h")
    sim = Sim(pol)
    sim.extra["windows"] = healthy_windows(pol.slo)
    sim.probes("xxx")
    sim.extra["windows"] = burning_windows(pol.slo)
    [reminder] = sim.wait(HOUR)
    assert reminder.kind == "reminder"
    assert reminder.rules == ("down", "burn_page")
    assert set(reminder.measurements) == {"down", "burn_page"}


def test_ticket_rules_are_incidents_of_their_own() -> None:
    pol = policy(latency={"p95_above_ms": 1000, "last": 5})
    sim = Sim(pol)
    sim.extra["latency_values"] = [1500.0] * 5
    out = sim.probes("xxx")
    assert [(n.kind, n.group, n.severity) for n in out] == [
        ("opened", "latency", "ticket"),
        ("opened", "page", "page"),
    ]
    ticket = out[0]
    assert ticket.tags == ("ticket",) and ticket.notify_type == "warning"
    assert ticket.measurements["latency"][0].value == 1500.0
    assert ticket.incident_id != out[1].incident_id
    sim.extra["latency_values"] = [100.0] * 5
    [resolved] = sim.wait(30)
    assert (resolved.kind, resolved.group) == ("resolved", "latency")
    assert len(sim.state.open_incidents()) == 1  # the page stays open


def test_latency_p95_is_nearest_rank_over_the_last_k() -> None:
    pol = policy(latency={"p95_above_ms": 1000, "last": 20})
    sim = Sim(pol)
    # 1 slow of 20: p95 is the 19th value = 100 ms.
    assert sim.wait(0, latency_values=[5000.0] * 30 + [100.0] * 19 + [5000.0]) == []
    # 2 slow of 20: the 19th value is 5000 ms.
    [opened] = sim.wait(30, latency_values=[100.0] * 18 + [5000.0] * 2)
    assert opened.measurements["latency"][0].value == 5000.0
    # Fewer than K values is "no data": the incident stays open.
    assert sim.wait(30, latency_values=[100.0] * 19) == []
    assert len(sim.state.open_incidents()) == 1


def test_burn_ticket_then_escalation_keeps_the_ticket_open() -> None:
    pol = policy()
    sim = Sim(pol)
    [ticket] = sim.wait(0, windows=ticket_windows(pol.slo))
    assert (ticket.kind, ticket.group, ticket.tags) == ("opened", "burn_ticket", ("ticket",))
    [page] = sim.wait(30, windows=burning_windows(pol.slo))
    assert (page.kind, page.group) == ("opened", "page")
    assert {i.group for i in sim.state.open_incidents()} == {"page", "burn_ticket"}
    out = sim.wait(30, windows=healthy_windows(pol.slo))
    assert sorted((n.kind, n.group) for n in out) == [
        ("resolved", "burn_ticket"),
        ("resolved", "page"),
    ]


def test_a_page_suppresses_a_new_burn_ticket() -> None:
    pol = policy(budget_below=None)
    sim = Sim(pol)
    sim.wait(0, windows=burning_windows(pol.slo, bad=300))
    assert {i.group for i in sim.state.open_incidents()} == {"page"}


def test_budget_rule_needs_min_bad() -> None:
    slo = Slo(availability=0.999, min_bad=3)
    pol = policy(slo, budget_below="25%", burn=False)
    sim = Sim(pol)
    windows = healthy_windows(slo)
    # 30d at 1/min holds 43 200: budget 43.2 failures. Two tiny windows with 1-2 bad:
    few = windows | {30 * DAY: WindowCounts(1000, 2)}  # remaining -1, but only 2 bad
    assert sim.wait(0, windows=few) == []
    [opened] = sim.wait(30, windows=windows | {30 * DAY: WindowCounts(43_200, 40)})
    m = opened.measurements["budget"][0]
    assert opened.group == "budget" and m.value == pytest.approx(1 - 40 / 43.2)
    assert (m.threshold, m.op) == (0.25, "<")
    [resolved] = sim.wait(30, windows=windows | {30 * DAY: WindowCounts(43_200, 20)})
    assert resolved.kind == "resolved"


def test_spend_rule_fires_when_the_cap_is_reached() -> None:
    sim = Sim(policy(spend_cap=1.0))
    assert sim.wait(0, spend_today_usd=0.99) == []
    [opened] = sim.wait(30, spend_today_usd=1.0)
    assert opened.group == "spend" and opened.measurements["spend"][0].unit == "USD"
    assert sim.wait(30, spend_today_usd=None) == []  # unknown keeps it open
    assert [n.kind for n in sim.wait(30, spend_today_usd=0.0)] == ["resolved"]


def test_cert_rule_and_switching_a_rule_off_resolves() -> None:
    sim = Sim(policy(cert_days=14))
    assert sim.wait(0, cert_days_left=15.0) == []
    [opened] = sim.wait(30, cert_days_left=14.0)
    assert opened.group == "cert" and opened.notify_type == "warning"
    sim.policy = policy(cert_days=None)
    assert [n.kind for n in sim.wait(30, cert_days_left=3.0)] == ["resolved"]


# --- reminders --------------------------------------------------------------------------------


def test_renotify_timing() -> None:
    sim = Sim(policy(renotify="1h"))
    sim.probes("xxx")  # opened at minute 2; the clock is now at minute 3
    opened_at = T0 + timedelta(minutes=2)
    sim.now = opened_at + timedelta(seconds=HOUR - 1)
    assert sim.evaluate() == []
    sim.now = opened_at + timedelta(seconds=HOUR)
    [first] = sim.evaluate()
    assert (first.kind, first.dedup_key, first.notify_type) == (
        "reminder",
        "api:page:1:reminder:1",
        "warning",
    )
    assert first.since == opened_at
    assert sim.wait(HOUR - 1) == []
    [second] = sim.wait(1)
    assert second.dedup_key == "api:page:1:reminder:2"


def test_default_renotify_is_four_hours() -> None:
    sim = Sim(policy())
    sim.probes("xxx")
    assert sim.wait(4 * HOUR - 61) == []
    assert [n.kind for n in sim.wait(1)] == ["reminder"]


# --- flapping ---------------------------------------------------------------------------------


def test_flapping_is_reported_once_then_over_when_stable() -> None:
    sim = Sim(policy(down={"failures": 1, "recoveries": 1}, flapping_opens_per_hour=2))
    for _ in range(2):  # two opens an hour are allowed
        sim.probes("x.")
    assert [k for k, _ in sim.kinds()] == ["opened", "resolved", "opened", "resolved"]
    [flap] = sim.probe(True)
    assert (flap.kind, flap.notify_type, flap.still_open) == ("flapping", "warning", True)
    assert sim.probes(".x.x.x.x.") == []  # no further open or resolve notices
    assert sim.wait(HOUR - 61) == []  # not stable for an hour yet
    [over] = sim.wait(1)
    assert (over.kind, over.still_open, over.notify_type) == ("flapping_over", False, "success")
    assert sim.state.open_incidents() == []
    assert len(sim.sent) == 6
    # Normal service after that.
    assert [n.kind for n in sim.probes("x.")] == ["opened", "resolved"]


def test_flapping_that_settles_failing_is_announced_and_later_resolved() -> None:
    sim = Sim(policy(down={"failures": 1, "recoveries": 1}, flapping_opens_per_hour=2))
    sim.probes("x.x.x")
    assert sim.sent[-1].kind == "flapping"
    sim.now += timedelta(seconds=HOUR)
    [over] = sim.probe(True)
    assert (over.kind, over.still_open, over.notify_type) == ("flapping_over", True, "warning")
    assert over.firing == ("down",)
    [resolved] = sim.probe(False)
    assert resolved.kind == "resolved"


def test_opens_spread_over_more_than_an_hour_are_not_flapping() -> None:
    sim = Sim(policy(down={"failures": 1, "recoveries": 1}, flapping_opens_per_hour=2))
    for _ in range(4):
        sim.probes("x.")
        sim.now += timedelta(minutes=31)
    assert [k for k, _ in sim.kinds()] == ["opened", "resolved"] * 4


# --- maintenance --------------------------------------------------------------------------------


def test_maintenance_mutes_and_notifies_at_its_end_if_still_failing() -> None:
    sim = Sim(policy())
    sim.maintenance = True
    assert sim.probes("xxxxx") == []
    [incident] = sim.state.open_incidents()  # tracked, not sent
    assert incident.notified is False
    sim.maintenance = False
    [opened] = sim.probe(True)
    assert (opened.kind, opened.note) == ("opened", "opened during maintenance")
    assert opened.since == incident.opened_at
    assert [n.kind for n in sim.probes("..")] == ["resolved"]


def test_an_outage_inside_maintenance_is_never_sent() -> None:
    sim = Sim(policy())
    sim.maintenance = True
    assert sim.probes("xxxx..") == []
    sim.maintenance = False
    assert sim.probes("...") == []
    assert sim.sent == []


def test_maintenance_does_not_count_towards_flapping() -> None:
    sim = Sim(policy(down={"failures": 1, "recoveries": 1}, flapping_opens_per_hour=2))
    sim.maintenance = True
    sim.probes("x.x.x.x.")
    sim.maintenance = False
    assert [n.kind for n in sim.probes("x.")] == ["opened", "resolved"]


def test_a_resolution_during_maintenance_is_sent_when_it_ends() -> None:
    sim = Sim(policy())
    sim.probes("xxx")
    sim.maintenance = True
    assert sim.probes("..") == []
    sim.maintenance = False
    [resolved] = sim.wait(30)
    assert (resolved.kind, resolved.note) == ("resolved", "resolved during maintenance")
    assert resolved.duration_s == 2 * 60


def test_an_announced_incident_still_failing_after_maintenance_is_reminded() -> None:
    sim = Sim(policy())
    sim.probes("xxx")
    sim.maintenance = True
    assert sim.probes("xxx") == []
    sim.maintenance = False
    [reminder] = sim.probe(True)
    assert (reminder.kind, reminder.note) == ("reminder", "still failing after maintenance")
    assert sim.probe(True) == []


# --- persistence and idempotence ----------------------------------------------------------------


def _scenario(sim: Sim, rebuild_at: set[int]) -> list[dict[str, Any]]:
    slo = sim.policy.slo

    def maintenance(on: bool) -> list[Notification]:
        sim.maintenance = on
        return []

    steps = [
        lambda: sim.probes("x"),  # page opens
        lambda: sim.wait(30, windows=burning_windows(slo)),  # burn joins
        lambda: sim.wait(HOUR, windows=burning_windows(slo)),  # reminder
        lambda: sim.probes("."),  # down clears, burn (no data now) keeps it open
        lambda: sim.wait(30, windows=healthy_windows(slo), latency_values=[3000.0] * 5),
        lambda: sim.probes("x.x.x."),  # a third open within the hour: flapping
        lambda: sim.wait(HOUR, latency_values=[10.0] * 5),  # flapping over, latency resolved
        lambda: maintenance(True),
        lambda: sim.probes("x"),  # muted open
        lambda: maintenance(False),
        lambda: sim.probes("x."),  # announced after maintenance, then resolved
    ]
    for i, step in enumerate(steps):
        if i in rebuild_at:  # a restart: only the JSON text survives
            text = json.dumps(sim.state.to_json())
            sim.state = AlertState.from_json(json.loads(text))
        step()
    return [n.to_json() for n in sim.sent]


def test_restart_from_json_behaves_identically() -> None:
    pol = policy(
        renotify="1h",
        down={"failures": 1, "recoveries": 1},
        latency={"p95_above_ms": 1000, "last": 5},
        flapping_opens_per_hour=2,
    )
    in_memory = _scenario(Sim(pol, roundtrip=False), rebuild_at=set())
    restarted = _scenario(Sim(pol, roundtrip=False), rebuild_at=set(range(1, 11)))
    assert in_memory == restarted
    kinds = [(n["kind"], n["group"]) for n in in_memory]
    assert kinds == [
        ("opened", "page"),
        ("reminder", "page"),
        ("resolved", "page"),
        ("opened", "latency"),
        ("opened", "page"),
        ("resolved", "page"),
        ("opened", "page"),
        ("resolved", "page"),
        ("flapping", "page"),
        ("flapping_over", "page"),
        ("resolved", "latency"),
        ("opened", "page"),
        ("resolved", "page"),
    ]
    assert in_memory[-2]["note"] == "opened during maintenance"


def test_evaluating_the_same_state_twice_gives_the_same_keys() -> None:
    sim = Sim(policy())
    sim.probes("xx")
    before = json.dumps(sim.state.to_json())
    sim.results["stream"].append(ProbeOutcome(sim.now, True, "timeout"))
    signals = Signals(recent={"stream": sim.results["stream"]})
    first = evaluate(sim.state, signals, sim.policy, sim.now)
    second = evaluate(sim.state, signals, sim.policy, sim.now + timedelta(seconds=3))
    assert json.dumps(sim.state.to_json()) == before  # the input state is not modified
    assert [n.dedup_key for n in first.notifications] == ["api:page:1:opened:0"]
    assert [n.dedup_key for n in second.notifications] == ["api:page:1:opened:0"]
    # Evaluating on from the new state sends nothing more.
    third = evaluate(first.state, signals, sim.policy, sim.now + timedelta(seconds=30))
    assert third.notifications == []


def test_changed_lists_incidents_to_upsert() -> None:
    sim = Sim(policy())
    sim.probes("xx")
    assert sim.last is not None and sim.last.changed == []
    sim.probe(True)
    [opened] = sim.last.changed
    assert (opened.id, opened.resolved_at) == ("api:page:1", None)
    sim.probe(True)
    assert sim.last.changed == []
    sim.probes("..")
    [resolved] = sim.last.changed
    assert resolved.id == "api:page:1" and resolved.resolved_at is not None


def test_incident_ids_keep_counting_across_incidents() -> None:
    sim = Sim(policy())
    sim.probes("xxx..")
    sim.now += timedelta(hours=2)
    sim.probes("xxx..")
    assert [n.dedup_key for n in sim.sent] == [
        "api:page:1:opened:0",
        "api:page:1:resolved:0",
        "api:page:2:opened:0",
        "api:page:2:resolved:0",
    ]


def test_unknown_state_version_is_refused() -> None:
    data = AlertState("api").to_json()
    assert AlertState.from_json(data).target == "api"
    with pytest.raises(ValueError, match="version"):
        AlertState.from_json(data | {"version": 99})


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        evaluate(AlertState("api"), Signals(), policy(), datetime(2024, 5, 1))


# --- routing ------------------------------------------------------------------------------------


def test_default_routes_and_overrides() -> None:
    alerts = Alerts()
    assert route_tags(["down"], alerts) == ["page"]
    assert route_tags(["burn_page"], alerts) == ["page"]
    for rule in ("latency", "burn_ticket", "budget", "spend", "cert"):
        assert route_tags([rule], alerts) == ["ticket"]
    custom = Alerts(routes={"down": ["sms", "page"], "cert": ["ops"]})
    assert route_tags(["down", "burn_page"], custom) == ["sms", "page"]
    assert route_tags(["cert"], custom) == ["ops"]


def test_routes_apply_to_notifications() -> None:
    sim = Sim(policy(routes={"down": ["oncall"]}))
    [page] = sim.probes("xxx")
    assert page.tags == ("oncall",)


@pytest.mark.parametrize(
    ("kind", "severity", "still_open", "expected"),
    [
        ("opened", "page", True, "failure"),
        ("opened", "ticket", True, "warning"),
        ("resolved", "page", False, "success"),
        ("resolved", "ticket", False, "success"),
        ("reminder", "page", True, "warning"),
        ("reminder", "ticket", True, "info"),
        ("flapping", "page", True, "warning"),
        ("flapping_over", "page", True, "warning"),
        ("flapping_over", "page", False, "success"),
    ],
)
def test_apprise_notify_types(kind: Any, severity: Any, still_open: bool, expected: str) -> None:
    assert apprise_notify_type(kind, severity, still_open) == expected


def test_policy_for_target_uses_effective_settings() -> None:
    cfg = Config.model_validate(
        {
            "defaults": {"alerts": {"renotify": "2h"}, "slo": {"availability": "99%"}},
            "targets": [
                {"name": "a", "kind": "http", "base_url": "http://x", "spend_cap_usd_per_day": 2},
                {
                    "name": "b",
                    "kind": "http",
                    "base_url": "http://x",
                    "alerts": {"renotify": "10m"},
                },
            ],
        }
    )
    a, b = (Policy.for_target(cfg, t) for t in cfg.targets)
    assert (a.alerts.renotify, a.slo.availability, a.spend_cap_usd_per_day) == (7200, 0.99, 2)
    assert (b.alerts.renotify, b.spend_cap_usd_per_day) == (600, None)
