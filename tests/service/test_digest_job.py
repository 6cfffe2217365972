"""The service's digest jobs load the digest only when a channel could receive it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from checker.sim.server import SimServer
from tests.service.test_service import config_yaml, sqlite_url, target_yaml
from tests.tools import ROOT

# Runs in a fresh interpreter: whether checker.digest got imported is then a fact about
# this service alone, not about other tests in the same process.
SCRIPT = textwrap.dedent(
    """
    import asyncio, json, logging, sys
    from datetime import UTC, datetime
    from apscheduler.events import EVENT_JOB_EXECUTED
    from checker.config import load as config_mod
    from checker.service.wiring import Service

    warnings = []

    class Keep(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.WARNING:
                warnings.append(record.getMessage())

    logging.getLogger().addHandler(Keep())

    async def main():
        service = Service(None, config_mod.parse(open(sys.argv[1]).read()))
        await service.start()
        ran = {}

        def on_executed(event):
            ran[event.job_id] = asyncio.get_running_loop().time()

        service.scheduler.add_listener(on_executed, EVENT_JOB_EXECUTED)
        out = {}
        try:
            for job in ("leader:digest-catch-up", "leader:digest"):
                service.scheduler.modify_job(job, next_run_time=datetime.now(UTC))
                for _ in range(200):
                    if job in ran:
                        break
                    await asyncio.sleep(0.02)
                out[job] = {"ran": job in ran, "warnings": list(warnings)}
                warnings.clear()
        finally:
            await service.stop()
        out["digest_imported"] = "checker.digest" in sys.modules
        out["css_inline_imported"] = "css_inline" in sys.modules
        print(json.dumps(out))

    asyncio.run(main())
    """
)


def test_without_a_digest_channel_the_digest_is_never_loaded(
    sim: SimServer, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    url = sqlite_url(tmp_path / "checker.db")
    config.write_text(config_yaml(url, [target_yaml("one", sim.url("one"), probes=("models",))]))
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["leader:digest-catch-up"]["ran"] and out["leader:digest"]["ran"]
    # Both say why nothing goes out, as digest.run_scheduled does.
    for job in ("leader:digest-catch-up", "leader:digest"):
        assert "digest: no notify channel is tagged digest" in out[job]["warnings"]
    assert out["digest_imported"] is False and out["css_inline_imported"] is False
