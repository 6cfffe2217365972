"""What the digest and prune jobs do (the job table in jobs.py says when, and where).

The digest is loaded only when a digest goes out: Jinja and css-inline cost ~5 MB
resident, and a service with no digest channel never needs them.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from checker.alerting.channels import Channel, route
from checker.config.schema import Config, Storage
from checker.redact import Redactor
from checker.store.prune import prune

if TYPE_CHECKING:  # genai_prices takes ~30 ms to import; the service loads it in a thread
    from checker.cost.prices import PriceBook

__all__ = ["digest_wanted", "prune_old", "roll_up", "send_digest"]

log = logging.getLogger("checker.service")


def digest_wanted(channels: Iterable[Channel], cfg: Config) -> bool:
    """Is there a channel to send the digest to? Warns when not."""
    if not route(channels, cfg.digest.tags, "digest"):
        # Nowhere to send it: say so as digest.run_scheduled would, without loading the
        # digest (Jinja, css-inline: ~5 MB resident) into the service.
        log.warning("digest: no notify channel is tagged %s", ", ".join(cfg.digest.tags))
        return False
    return True


async def send_digest(
    engine: Engine, cfg: Config, prices: PriceBook, redactor: Redactor, now: datetime
) -> None:
    """Send the digest due at `now`, if it did not go out yet; a failure waits for the next run."""
    # Imported in a worker thread: ~70 ms of module loading would stall every probe.
    digest = await asyncio.to_thread(importlib.import_module, "checker.digest.send")
    try:
        await digest.run_scheduled(engine, cfg, now, prices=prices)
    except Exception as exc:  # the next run retries; the service keeps probing
        log.error("digest failed: %s", redactor.text(f"{type(exc).__name__}: {exc}"))


async def roll_up(engine: Engine, clock: Callable[[], datetime]) -> None:
    """Every hour since the newest rolled one (hours missed while the service was down
    included), the last two again for late results, and hours rolled before the digest's
    rollup columns existed (migration 0005); then the window cache catches up with whatever
    was rolled (rollup itself knows nothing of the cache)."""
    from checker.store.queries import window_cache
    from checker.store.rollup import rollup_due

    now = clock()
    await asyncio.to_thread(rollup_due, engine, now)
    await asyncio.to_thread(window_cache.refresh, engine, now)


async def prune_old(engine: Engine, storage: Storage, now: datetime) -> None:
    """Delete raw results and rollups past their retention."""
    await asyncio.to_thread(prune, engine, storage.raw_retention, storage.rollup_retention, now)
