"""Sending the digest: to every channel tagged for it, exactly once per local day.

Sending exactly once per local day, across restarts and nodes, rests on the `digest_log`
table (one row per local day, unique):
- `run_scheduled` claims the day by inserting its row as `pending` (insert-or-ignore);
  only the process whose insert went in sends. A row left `failed` can be claimed again
  by the next call for the same day (an atomic UPDATE failed -> pending), so a digest that
  could not be delivered is retried whenever the scheduler calls again that day (after a
  restart, or a later catch-up run), and never after the day is over.
- After sending the row becomes `sent` when at least one channel accepted the digest, else
  `failed`. A partly delivered digest counts as sent: retrying it would send a second copy
  to the channels that did get it; the failed channels are logged.
- A process killed between the claim and the end of sending leaves the row `pending`, and
  that day is not retried automatically (a duplicate is worse than a missing digest here);
  `checker digest --send` sends one by hand, without touching the log.

A period with nothing to report is not sent: one that ends before the first stored result
(a service started for the first time after the send time would otherwise mail "6 without
data" 20 s later, from its catch-up run) or that holds no result of any target. Nothing is
claimed then, and one log line says why (`empty_period_reason`).

Email channels get the HTML digest. Apprise's email plugin builds the multipart/alternative
itself: its text/plain part is Apprise's own conversion of the HTML (apprise.conversion), not
templates/digest.txt.j2, because the plugin has no way to take a separate text part. The
plain-text template is sent to email channels configured with `?format=text`, and written
by `--preview FILE.txt`. Chat channels get the short markdown summary.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.engine import Engine

from checker.alerting.channels import Channel, load_channels, route
from checker.alerting.deliver import notification_id, send
from checker.config.schema import Config
from checker.cost.prices import PriceBook
from checker.digest.build import build_period
from checker.digest.models import DigestContext
from checker.digest.period import Period, scheduled_period
from checker.digest.render import render_chat, render_html, render_text
from checker.redact import Redactor
from checker.store.digest_log import claim_day, finish_day
from checker.store.queries.digest import first_result_at, holds_results

__all__ = [
    "DELIVERED",
    "digest_channels",
    "empty_period_reason",
    "public_status_url",
    "run_scheduled",
    "send_now",
]

log = logging.getLogger("checker.digest")

DELIVERED = "delivered"


# --- sending ---------------------------------------------------------------------------------


def _wants_text(channel: Channel) -> bool:
    query = dict(parse_qsl(urlsplit(channel.url).query))
    return query.get("format", "").lower() == "text"


def public_status_url(cfg: Config) -> str | None:
    return cfg.server.public_url if cfg.server and cfg.server.public_url else None


def digest_channels(cfg: Config) -> list[Channel]:
    return route(load_channels(cfg), cfg.digest.tags, "digest")


async def send_now(engine: Engine, cfg: Config, ctx: DigestContext) -> dict[str, str]:
    """Send `ctx` to every channel tagged for the digest: channel label -> "delivered" or a
    secret-free error. Does not consult or write the digest log (`run_scheduled` does)."""
    del engine  # the digest goes out directly, not through the outbox
    redact = Redactor(cfg.secrets())
    status_url = public_status_url(cfg)
    bodies = {
        "html": redact.text(render_html(ctx, status_url)),
        "text": redact.text(render_text(ctx, status_url)),
        "markdown": redact.text(render_chat(ctx, status_url)),
    }
    title = redact.text(ctx.title)
    notify_type = "info" if ctx.ok else "warning"
    nid = notification_id(f"digest:{title}")  # one digest is one notification on all channels

    async def one(channel: Channel) -> tuple[str, str]:
        if channel.is_email:
            body_format = "text" if _wants_text(channel) else "html"
        else:
            body_format = "markdown"
        try:
            error = await send(
                channel, title, bodies[body_format], body_format, notify_type, nid=nid
            )
        except Exception as exc:  # a plugin bug must not stop the other channels
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            log.info("digest delivered to %s", channel.label)
            return channel.label, DELIVERED
        error = redact.text(error)
        log.warning("digest to %s failed: %s", channel.label, error)
        return channel.label, error

    results = await asyncio.gather(*(one(ch) for ch in digest_channels(cfg)))
    return dict(results)


def empty_period_reason(engine: Engine, cfg: Config, period: Period) -> str | None:
    """Why the period has nothing to report, or None when it has. Blocking."""
    first = first_result_at(engine)
    if first is None:
        return "no result stored yet"
    if period.until <= first:
        return f"the period ends before the first stored result ({first:%Y-%m-%d %H:%M} UTC)"
    if not holds_results(engine, [t.name for t in cfg.targets], period.since, period.until):
        return "the period holds no results"
    return None


async def run_scheduled(
    engine: Engine, cfg: Config, now: datetime, *, prices: PriceBook | None = None
) -> bool:
    """The scheduler's job: send the digest due at `now` unless this day's went out already.

    True when this call delivered it (to at least one channel). Safe to call more often
    than once a day, on several nodes: calls before the day's send time, for a day already
    sent or being sent, for a period with nothing to report, or with no digest channel
    configured do nothing.
    """
    due = scheduled_period(now, cfg.digest.at, cfg.digest.timezone)
    if due is None:
        return False
    day, period = due
    day_text = day.isoformat()
    if not digest_channels(cfg):
        log.warning("digest: no notify channel is tagged %s", ", ".join(cfg.digest.tags))
        return False
    empty = await asyncio.to_thread(empty_period_reason, engine, cfg, period)
    if empty is not None:
        log.info("digest for %s (%s) skipped: %s", day_text, period.label, empty)
        return False
    if not await asyncio.to_thread(claim_day, engine, day_text, cfg.digest.timezone):
        return False
    try:
        ctx = await asyncio.to_thread(build_period, engine, cfg, period, prices=prices, now=now)
    except Exception as exc:
        log.error("digest for %s could not be built: %s", day_text, type(exc).__name__)
        await asyncio.to_thread(finish_day, engine, day_text, False, now)
        return False
    results = await send_now(engine, cfg, ctx)
    sent = any(outcome == DELIVERED for outcome in results.values())
    await asyncio.to_thread(finish_day, engine, day_text, sent, datetime.now(UTC))
    return sent
