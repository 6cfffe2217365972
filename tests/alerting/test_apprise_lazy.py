"""Apprise (~17 MB resident with its plugins) is loaded only when a channel needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CODE = """
import asyncio, sys
from checker.alerting.deliver import Deliverer
from checker.store import db

async def main(url, channels):
    engine = db.make_engine(url)
    deliverer = Deliverer(engine, lambda: channels, lambda: None)
    deliverer.start()
    await deliverer.close()
    engine.dispose()

url = sys.argv[1]  # an empty database: the outbox is not read before close
asyncio.run(main(url, []))
print("apprise" in sys.modules)
from checker.alerting.channels import Channel
asyncio.run(main(url, [Channel("id", "json://localhost", frozenset())]))
print("apprise" in sys.modules)
"""


def test_a_service_without_channels_never_imports_apprise(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'checker.db'}"
    out = subprocess.run(
        [sys.executable, "-c", CODE, url], check=True, capture_output=True, text=True
    ).stdout.split()
    assert out == ["False", "True"]  # not without a channel; at start with one
