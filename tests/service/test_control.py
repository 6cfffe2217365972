"""The service's control surface: SIGHUP reloads, Retry-After, the spend cap, its logs.

Process behaviour (signals, log output) runs `checker run` as a subprocess; the scheduling
policies run the Service in this process against the simulator over loopback, which lets
them read the service's counters too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
import sqlalchemy as sa
from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from sqlmodel import SQLModel

from checker.config import load as config_mod
from checker.service.clock import SYSTEM_CLOCK, Clock, OffsetClock
from checker.service.wiring import Service
from checker.sim.server import SimServer
from checker.store.db import make_engine
from tests.fixtures_sim import SIM_API_KEY
from tests.service.test_service import (
    config_yaml,
    count_per_job,
    running_service,
    sqlite_url,
    stored_rows,
    target_yaml,
)
from tests.waiting import abecomes_true, becomes_true


def requests(sim: SimServer, route: str, endpoint: str = "models") -> int:
    return sim.stats(route)["requests"].get(endpoint, 0)


def received(sim: SimServer, route: str, after: float = 0.0) -> list[float]:
    """perf_counter() times at which the simulator received the route's requests."""
    return sorted(t.received for t in sim.timings(route) if t.received > after)


@contextlib.asynccontextmanager
async def service_in_process(text: str, clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[Service]:
    service = Service(None, config_mod.parse(text), clock=clock)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture(autouse=True)
def _no_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


WINDOW_S = 2.1


# --- SIGHUP ------------------------------------------------------------------------------------


def test_sighup_applies_a_changed_config_and_keeps_the_old_one_when_broken(
    sim: SimServer, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "checker.db")
    config = tmp_path / "config.yaml"

    def write(*targets: str) -> None:
        config.write_text(config_yaml(url, list(targets)))

    models = ("models",)
    write(
        target_yaml("kept", sim.url("kept"), probes=models),
        target_yaml("dropped", sim.url("dropped"), probes=models),
    )
    with running_service(config, tmp_path / "service.log") as service:
        assert becomes_true(
            lambda: requests(sim, "kept") >= 3 and requests(sim, "dropped") >= 3, 15
        )

        # Add one target, remove one, slow one down from 200ms to 700ms.
        write(
            target_yaml("kept", sim.url("kept"), probes=models, interval="700ms"),
            target_yaml("added", sim.url("added"), probes=models),
        )
        service.send(signal.SIGHUP)
        service.wait_for_log("config reloaded: 1 jobs added, 1 changed, 1 removed", 15)
        reloaded = time.perf_counter()
        dropped_at_reload = requests(sim, "dropped")
        assert becomes_true(lambda: count_per_job(stored_rows(url))["added", "models"] >= 3, 10)
        time.sleep(max(0.0, reloaded + WINDOW_S - time.perf_counter()))
        assert requests(sim, "dropped") == dropped_at_reload
        # The new interval: at most 4 runs fit in 2.1 s at 700ms (one more for a late run),
        # where the old 200ms would have made about 10.
        kept = [t for t in received(sim, "kept", reloaded) if t <= reloaded + WINDOW_S]
        assert 2 <= len(kept) <= 5, kept

        # A broken config is rejected with its problem logged; the running one stays.
        config.write_text(config.read_text().replace("interval: 700ms", "interval: soon"))
        service.send(signal.SIGHUP)
        service.wait_for_log("reload rejected, keeping the running config", 15)
        rejected = time.perf_counter()
        assert becomes_true(lambda: len(received(sim, "added", rejected)) >= 3, 10)
        assert becomes_true(lambda: len(received(sim, "kept", rejected)) >= 1, 10)
        assert service.running()
        assert requests(sim, "dropped") == dropped_at_reload
        assert service.terminate() == 0, service.log()

    rejection = [ln for ln in service.log().splitlines() if "reload rejected" in ln]
    assert len(rejection) == 1 and "ERROR" in rejection[0], rejection
    # The rejection is the run's only error: a reload or a stop must not cause others.
    assert [ln for ln in service.log().splitlines() if " ERROR " in ln] == rejection
    assert "config.yaml" in rejection[0] and "interval" in rejection[0], rejection
    assert count_per_job(stored_rows(url))["dropped", "models"] == dropped_at_reload


# --- scheduling policies -----------------------------------------------------------------------


async def test_retry_after_holds_the_target_and_the_429_is_recorded(
    sim: SimServer, tmp_path: Path
) -> None:
    sim.set("limited", status=429, retry_after="2")
    url = sqlite_url(tmp_path / "checker.db")
    text = config_yaml(
        url,
        [
            target_yaml("limited", sim.url("limited"), probes=("models",)),
            target_yaml("unlimited", sim.url("unlimited"), probes=("models",)),
        ],
    )
    clock = OffsetClock()
    async with service_in_process(text, clock) as service:
        # Let the 200ms runs inside the 2 s hold be skipped for a while, then move the
        # service's clock to the hold's end instead of sleeping out the rest of it.
        assert await abecomes_true(lambda: service.skipped["retry_after"] >= 7, 8)
        advanced_at = time.perf_counter()
        hold_until = service.accounting.runtime("limited").hold_until
        clock.advance(max(0.0, hold_until - clock.monotonic()))
        assert await abecomes_true(lambda: requests(sim, "limited") >= 2, 8)
        held = service.skipped["retry_after"]

    limited = received(sim, "limited")
    # The gaps as the service's clock saw them: the advance counts as time that passed.
    on_clock = [t + (clock.offset if t > advanced_at else 0.0) for t in limited]
    gaps = [b - a for a, b in pairwise(on_clock)]
    assert gaps and min(gaps) >= 2.0, gaps  # never before Retry-After ran out
    assert max(gaps) < 3.0, gaps  # and probed again soon after (interval 200ms)
    assert held >= 5  # the 200ms runs inside the hold were skipped, not queued
    # The hold is per target: the other one kept its 200ms pace meanwhile.
    assert len(received(sim, "unlimited", after=limited[0])) >= 6

    rows = [r for r in stored_rows(url) if r.target == "limited"]
    assert len(rows) == requests(sim, "limited")
    assert {(r.ok, r.error, r.status, r.retry_after_s) for r in rows} == {
        (False, "rate_limited", 429, 2.0)
    }


@pytest.mark.parametrize("retry_after", ["86400", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_a_retry_after_of_a_day_holds_at_most_retry_after_max(
    sim: SimServer, tmp_path: Path, retry_after: str
) -> None:
    # "Come back tomorrow" (or in year 9999) must not silence a route: the hold is capped
    # and the failures behind the 429 are seen.
    sim.set("limited", status=429, retry_after=retry_after)
    url = sqlite_url(tmp_path / "checker.db")
    text = config_yaml(url, [target_yaml("limited", sim.url("limited"), probes=("models",))])
    text += "defaults: {retry_after_max: 1s}\n"
    async with service_in_process(text) as service:
        assert await abecomes_true(lambda: requests(sim, "limited") >= 1, 8)
        sim.set("limited", status=500)  # the outage behind the rate limit
        assert await abecomes_true(lambda: requests(sim, "limited") >= 2, 4)
        skipped = service.metrics.registry.get_sample_value(
            "checker_probe_skipped_total", {"reason": "retry_after"}
        )
        assert skipped is not None and skipped >= 1
        assert skipped == service.skipped["retry_after"]
    errors = [r.error for r in stored_rows(url) if r.target == "limited"]
    assert errors[:2] == ["rate_limited", "server_error"]


def test_a_hold_longer_than_400_days_is_rejected() -> None:
    from checker.config.load import ConfigError

    text = "targets: [{name: t, kind: http, base_url: 'http://127.0.0.1:9'}]\n"
    with pytest.raises(ConfigError) as err:
        config_mod.parse(text + "defaults: {interval: 99999999999999999999999d}\n")
    assert "at most 400d" in str(err.value)


async def test_a_reached_spend_cap_falls_back_to_the_free_probe_across_restarts(
    sim: SimServer, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "checker.db")
    # A stream probe uses 12 prompt + 10 completion tokens (the simulator's defaults): at
    # $1000 per million tokens each costs $0.022, so a $0.05 cap allows exactly three.
    paid = """
pricing: {input_per_mtok: 1000, output_per_mtok: 1000}
spend_cap_usd_per_day: 0.05
"""
    text = config_yaml(url, [target_yaml("paid", sim.url("paid"), extra=paid)])

    async with service_in_process(text) as service:
        assert await abecomes_true(lambda: requests(sim, "paid", "chat") >= 3, 8)
        models_at_cap = requests(sim, "paid")
        # About a second of the free probe's 200ms pace, with no paid probe in it.
        assert await abecomes_true(lambda: requests(sim, "paid") >= models_at_cap + 5, 5)
        assert requests(sim, "paid", "chat") == 3
        assert service.skipped["spend_cap"] >= 3

    rows = stored_rows(url)
    costs = [r.cost_usd for r in rows if r.probe == "stream"]
    assert costs == [pytest.approx(0.022)] * 3
    assert count_per_job(rows)["paid", "models"] == requests(sim, "paid")

    # Today's spend is read back from the database: a restart does not reopen the budget.
    async with service_in_process(text):
        models_at_restart = requests(sim, "paid")
        assert await abecomes_true(lambda: requests(sim, "paid") >= models_at_restart + 4, 5)
    assert requests(sim, "paid", "chat") == 3


async def test_a_stop_during_an_evaluation_round_lets_the_round_finish(
    sim: SimServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = sqlite_url(tmp_path / "checker.db")
    text = config_yaml(url, [target_yaml("one", sim.url("one"), probes=("models",))])
    service = Service(None, config_mod.parse(text))
    await service.start()
    submitted = asyncio.Event()

    def on_submit(event: JobSubmissionEvent) -> None:
        if event.job_id == "leader:evaluate":
            submitted.set()

    service.scheduler.add_listener(on_submit, EVENT_JOB_SUBMITTED)
    service.scheduler.modify_job("leader:evaluate", next_run_time=datetime.now(UTC))
    try:
        await asyncio.wait_for(submitted.wait(), 5)
    finally:
        await service.stop()
    # Cancelled jobs are logged by APScheduler as failed: a clean stop must not cause one.
    failed = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert failed == []


# --- logs --------------------------------------------------------------------------------------

# Deliberately not token-shaped (no sk- prefix): only the redaction of configured secrets,
# not the generic token pattern, can catch it where it appears without "Bearer".
WRONG_KEY = "wrong-key-4242424242424242"


def all_stored_text(url: str) -> str:
    """Every value of every table, as text: where a leaked secret would be found."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return "\n".join(
                repr(tuple(row))
                for table in SQLModel.metadata.sorted_tables
                for row in conn.execute(sa.select(table))
            )
    finally:
        engine.dispose()


def test_logs_are_one_json_line_per_state_change_and_never_hold_the_key(
    sim_with_key: SimServer, tmp_path: Path
) -> None:
    sim = sim_with_key
    database = tmp_path / "checker.db"
    url = sqlite_url(database)
    config = tmp_path / "config.yaml"
    config.write_text(
        config_yaml(
            url,
            [
                target_yaml(
                    "good",
                    sim.url("good"),
                    probes=("models",),
                    extra="api_key: ${CHECKER_TEST_GOOD_KEY}",
                ),
                target_yaml(
                    "wrong-key",
                    sim.url("wrong-key"),
                    extra="api_key: ${CHECKER_TEST_WRONG_KEY}",
                ),
            ],
        )
    )
    keys = {"CHECKER_TEST_GOOD_KEY": SIM_API_KEY, "CHECKER_TEST_WRONG_KEY": WRONG_KEY}
    with running_service(
        config, tmp_path / "service.log", args=["--log-format", "json"], env=keys
    ) as service:
        assert becomes_true(lambda: requests(sim, "good") >= 3, 15), service.log()
        # The good route fails for a while, then heals. Its 500 echoes the key it was sent,
        # and its message quotes the other target's key bare, as a careless relay might.
        sim.set("good", status=500, error_message=f"upstream rejected the key {WRONG_KEY}")
        failing_from = requests(sim, "good")
        assert becomes_true(lambda: requests(sim, "good") >= failing_from + 4, 10)
        sim.set("good")
        healthy_from = requests(sim, "good")
        assert becomes_true(lambda: requests(sim, "good") >= healthy_from + 4, 10)
        assert service.terminate() == 0, service.log()

    text = service.log()
    events = [json.loads(line) for line in text.splitlines()]  # every line is one JSON event
    assert all({"ts", "level", "logger", "msg"} <= set(e) for e in events)
    messages = [e["msg"] for e in events]

    # Many probes, a handful of lines: each probe's state changes once each, nothing else.
    probes = len(stored_rows(url))
    assert probes >= 20
    per_probe = [
        (e["level"], e["msg"].split(" (")[0])
        for e in events
        if e["logger"] == "checker.service" and e["msg"].startswith(("good ", "wrong-key "))
    ]
    assert sorted(per_probe) == [
        ("info", "good models: recovered"),
        ("warning", "good models: failing: server_error"),
        ("warning", "wrong-key models: failing: auth"),
        ("warning", "wrong-key stream: failing: auth"),
    ]
    assert not [m for m in messages if "HTTP Request" in m]  # no per-request library lines
    assert {e["level"] for e in events} <= {"info", "warning"}  # a clean run, a clean stop
    assert len(events) < probes, messages

    # The keys went out in every request and came back in error bodies; none was kept.
    stored_text = all_stored_text(url)
    assert "***" in stored_text  # the keys did come back, and were masked
    for key in (SIM_API_KEY, WRONG_KEY):
        assert key not in text
        assert key not in stored_text
        for path in tmp_path.glob("checker.db*"):  # the file, and a WAL if one is left
            assert key.encode() not in path.read_bytes()
    details = [r.detail or "" for r in stored_rows(url) if r.target == "wrong-key"]
    assert details and all("***" in d for d in details), details[:3]


async def test_stop_waits_for_probes_in_flight_and_stores_them(
    sim: SimServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # SIGTERM (stop) while a 1.5 s stream is in flight: within shutdown_grace it finishes
    # and is stored; nothing is logged as an error.
    sim.set("slow", ttft_ms=1500)
    url = sqlite_url(tmp_path / "checker.db")
    text = config_yaml(url, [target_yaml("slow", sim.url("slow"), probes=("stream",))])
    caplog.set_level(logging.INFO)
    async with service_in_process(text) as service:
        assert await abecomes_true(lambda: len(service.inflight) == 1, 5)
        assert stored_rows(url) == []  # nothing finished yet: the first stream takes 1.5 s
    # service_in_process stopped the service: the probe in flight was waited for.
    rows = [r for r in stored_rows(url) if r.target == "slow"]
    assert len(rows) == 1
    assert rows[-1].ok
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
