"""The service keeps what it built at start out of the garbage collector's full passes."""

from __future__ import annotations

import gc
from pathlib import Path

from checker.config import load as config_mod
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
