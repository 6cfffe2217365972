"""The service keeps what it built at start out of the garbage collector's full passes."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from checker.config import load as config_mod
from checker.service import gc_stats
from checker.service.wiring import Service
from checker.sim.server import SimServer
from tests.service.test_service import config_yaml, sqlite_url, target_yaml


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
