"""The service keeps what it built at start out of the garbage collector's full passes."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from checker.config import load as config_mod
from checker.service import gc_policy, gc_stats
from checker.service.wiring import Service
from checker.sim.server import SimServer
from tests.service.test_service import config_yaml, sqlite_url, target_yaml
from tests.waiting import abecomes_true


async def test_startup_objects_are_frozen_while_running_and_released_at_stop(
    sim: SimServer, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "checker.db")
    text = config_yaml(url, [target_yaml("one", sim.url("one"), probes=("models",))])
    service = Service(None, config_mod.parse(text))
    target = service.cfg.targets[0]
    await service.start()
    try:
        assert gc.get_freeze_count() > 0
        # Frozen objects are no longer tracked by the collector's generations.
        assert not any(o is target for o in gc.get_objects())
    finally:
        await service.stop()
    assert gc.get_freeze_count() == 0
    assert any(o is target for o in gc.get_objects())


async def test_gc_stats_env_writes_the_pauses_of_each_generation_at_stop(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "gc.json"
    monkeypatch.setenv(gc_stats.ENV_VAR, str(out))
    url = sqlite_url(tmp_path / "checker.db")
    text = config_yaml(url, [target_yaml("one", sim.url("one"), probes=("models",))])
    service = Service(None, config_mod.parse(text))
    await service.start()
    try:
        gc.collect()  # one full collection while the service runs
    finally:
        await service.stop()
    report = json.loads(out.read_text())
    full = report["generations"]["2"]
    assert full["collections"] >= 1
    assert 0 < full["p50_ms"] <= full["p99_ms"] <= full["max_ms"]
    assert report["cpu"]["2"]["collections"] == full["collections"]
    assert len(report["full"]) == full["collections"]  # each with when, wall and CPU time
    assert report["frozen"] > 0


def test_gc_pause_summary_uses_nearest_rank() -> None:
    pauses = {2: [i / 1000 for i in range(1, 101)], 0: []}
    summary = gc_stats.summarize(pauses)
    assert summary == {
        "2": {
            "collections": 100,
            "p50_ms": 50.0,
            "p99_ms": 99.0,
            "max_ms": 100.0,
            "total_ms": 5050.0,
        }
    }


async def test_objects_of_the_first_round_and_of_a_reload_are_frozen_too(
    sim: SimServer, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path / "checker.db")
    path = tmp_path / "checker.yaml"
    one = target_yaml("one", sim.url("one"), probes=("models",), extra="timeout: 300ms")
    path.write_text(config_yaml(url, [one]))
    service = Service(path, config_mod.load(path))
    await service.start()
    try:
        at_start = gc.get_freeze_count()
        # The warm-up freeze: one interval (200 ms) plus the timeout (300 ms) after start.
        assert await abecomes_true(lambda: gc.get_freeze_count() > at_start, within=5)
        two = target_yaml("two", sim.url("two"), probes=("models",), extra="timeout: 300ms")
        path.write_text(config_yaml(url, [one, two]))
        assert await service.reload()
        added = service.cfg.target("two")
        assert not any(o is added for o in gc.get_objects())
        assert gc.get_threshold()[0] == gc_policy.GEN0_THRESHOLD
    finally:
        await service.stop()
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold()[0] != gc_policy.GEN0_THRESHOLD
