"""Delivery: sends claimed outbox rows through Apprise and records each attempt.

`Deliverer` is the worker of the service (database work in threads, so probes never wait
on it); `send` is the one Apprise call, also used for digests and `checker notify-test`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from checker.alerting.channels import Channel, route
from checker.alerting.outbox import claim, finish, reroute
from checker.config.schema import _url_secrets
from checker.redact import Redactor

if TYPE_CHECKING:  # Apprise and its plugins: ~17 MB resident, loaded once a channel exists
    import apprise

__all__ = [
    "CLOSE_GRACE_S",
    "ID_HEADER",
    "TIMED_OUT",
    "Deliverer",
    "load_plugins",
    "notification_id",
    "parses",
    "send",
]

# The start of an error that may hide a delivery: such a row is sent at most once more.
TIMED_OUT = "timed out"

log = logging.getLogger("checker.notify")

# The header that carries the notification id (webhooks and email). Apprise writes its own
# Message-ID for each email and offers no way to set it, so email carries the id here.
ID_HEADER = "X-Checker-Notification-Id"
_PAYLOAD_SCHEMES = ("json", "jsons", "form", "forms", "xml", "xmls")
_HEADER_SCHEMES = (*_PAYLOAD_SCHEMES, "mailto", "mailtos")

# How long close() lets sends in flight finish, so that a restart does not repeat them.
CLOSE_GRACE_S = 5.0


def load_plugins() -> None:
    """Let Apprise discover its plugins now: half a second of imports, once per process.

    Done at start, before probes run; done at the first alert, it would stall every probe in
    flight (even from a thread: much of it holds the GIL)."""
    import apprise

    apprise.Apprise().add("json://localhost")


def _with_timeouts(url: str, timeout_s: float) -> str:
    """The URL with Apprise's read timeout (`rto`) raised to the channel's timeout, unless
    the URL sets one: Apprise's own default (4 s) gave up on slow receivers that then got
    the same page again on every retry."""
    if "rto=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}rto={timeout_s:g}"


def notification_id(dedup_key: str) -> str:
    """The id every copy of one notification carries, whatever channel and attempt: a
    receiver that got it twice (a retry after a timeout) can tell it is the same one."""
    base = dedup_key.rsplit("@", 1)[0]  # outbox keys end in @channel
    return hashlib.sha256(base.encode()).hexdigest()[:20]


def _with_id(url: str, nid: str | None) -> str:
    """The URL with the notification id where the channel can carry one: a header on
    webhooks and email, and a `notification_id` field in a webhook's payload."""
    scheme = url.split("://", 1)[0].lower()
    if nid is None or scheme not in _HEADER_SCHEMES:
        return url
    extra = [f"+{ID_HEADER}={nid}"]
    if scheme in _PAYLOAD_SCHEMES:
        extra.append(f":notification_id={nid}")
    return f"{url}{'&' if '?' in url else '?'}{'&'.join(extra)}"


def _apprise_for(url: str) -> apprise.Apprise | None:
    import apprise

    a = apprise.Apprise()
    return a if a.add(url) else None


def parses(url: str) -> bool:
    """Whether Apprise accepts the URL: a known scheme with the parts it requires."""
    return _apprise_for(url) is not None


async def send(
    channel: Channel,
    title: str,
    body: str,
    body_format: str,
    notify_type: str,
    *,
    nid: str | None = None,
) -> str | None:
    """Deliver through Apprise; None on success, else the reason (this channel's URL secrets
    are masked; redact the rest with the config's Redactor). `nid`: the notification id."""
    url = _with_id(_with_timeouts(channel.url, channel.timeout_s), nid)
    # Parsing a URL can import a plugin (when load_plugins() did not run): not on the loop.
    a = await asyncio.to_thread(_apprise_for, url)
    if a is None:
        a = await asyncio.to_thread(_apprise_for, _with_id(channel.url, nid))  # without rto
    if a is None:
        return "Apprise cannot parse this channel URL"
    import apprise

    with apprise.LogCapture(level=logging.WARNING) as captured:
        try:
            async with asyncio.timeout(channel.timeout_s):
                result = await a.async_notify(
                    body=body,
                    title=title,
                    notify_type=notify_type,
                    body_format=body_format,
                )
        except TimeoutError:
            return f"{TIMED_OUT} after {channel.timeout_s:g}s (it may have been delivered)"
        shared = captured.getvalue().splitlines()
    if result:
        return None
    # Apprise 2 keeps each call's own log; the global capture also holds lines of channels
    # sent at the same time, so it is only the fallback for older versions.
    own = getattr(result, "logs", None)
    lines = [str(e.message) for e in own()] if callable(own) else shared
    errors = [line for line in lines if line.strip()]
    # Channels from an Apprise config file are not among the config's secrets: mask this
    # channel's own credentials here, whoever reports the error.
    own_secrets = Redactor(_url_secrets(channel.url))
    return own_secrets.text("; ".join(errors[-3:]) or "Apprise reported failure")


class Deliverer:
    """Sends due outbox rows; database work runs in threads, so probes never wait on it."""

    def __init__(
        self,
        engine: Engine,
        channels: Callable[[], list[Channel]],
        redactor: Callable[[], Redactor],
        *,
        poll_s: float = 1.0,
        on_attempt: Callable[[str], None] | None = None,
    ) -> None:
        self.engine = engine
        self._channels = channels
        self._redactor = redactor
        self.poll_s = poll_s
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._on_attempt = on_attempt
        self.delivered = 0
        self.failures = 0

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        # Without a channel nothing is ever sent: Apprise (~17 MB resident) stays unloaded.
        # A reload that adds one loads it at the first send, in a thread (see send).
        if self._channels():
            load_plugins()
        self._task = asyncio.create_task(self._loop())

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Stop after the sends in flight, within `grace_s`.

        Cancelling a send does not stop Apprise's worker thread: the receiver may get the
        message while the row stays unrecorded, to be sent again when its lease runs out.
        """
        if self._task is None:
            return
        self._closing = True
        self._wake.set()  # out of the idle wait at once
        try:
            await asyncio.wait_for(asyncio.shield(self._task), grace_s)
        except TimeoutError:
            log.warning("outbox: stopping with a delivery still in flight")
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while not self._closing:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be down: try again next round
                log.warning("outbox: cannot read the queue: %s", type(exc).__name__)
            if self._closing:
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self, limit: int = 50) -> int:
        rows = await asyncio.to_thread(claim, self.engine, self.worker, datetime.now(UTC), limit)
        if not rows:
            return 0
        by_id = {c.id: c for c in self._channels()}
        results = await asyncio.gather(*(self._deliver(row, by_id) for row in rows))
        return sum(1 for r in results if r == "delivered")

    async def _deliver(self, row: dict[str, Any], by_id: dict[str, Channel]) -> str:
        channel = by_id.get(row["channel"])
        if channel is None:
            # A channel edited by a reload has a new id: the row follows its route (tags)
            # to the channels that take it now instead of failing against the old URL.
            routed = route(by_id.values(), row["tags"] or (), row["kind"] or "alert")
            moved = await asyncio.to_thread(reroute, self.engine, row, self.worker, routed)
            log.info("notification %s: channel gone, rerouted to %d channels", row["title"], moved)
            self.wake()
            return "rerouted"
        else:
            try:
                error = await send(
                    channel,
                    row["title"],
                    row["body"],
                    row["body_format"],
                    row["notify_type"],
                    nid=notification_id(str(row["dedup_key"])),
                )
            except Exception as exc:  # a plugin bug must not kill the worker
                error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            error = self._redactor().text(error)
        # A second timeout in a row gives up: the receiver probably has it twice already.
        last_try = (
            error is not None
            and error.startswith(TIMED_OUT)
            and (row.get("last_error") or "").startswith(TIMED_OUT)
        )
        outcome = await asyncio.to_thread(
            finish, self.engine, row, self.worker, error is None, error, give_up=last_try
        )
        label = channel.label if channel else row["channel"]
        if outcome == "delivered":
            self.delivered += 1
            log.info("notification delivered: %s to %s", row["title"], label)
        else:
            self.failures += 1
            level = logging.ERROR if outcome == "failed" else logging.WARNING
            log.log(level, "notification %s to %s: %s (%s)", row["title"], label, outcome, error)
        if self._on_attempt:
            self._on_attempt(outcome)
        return outcome
