"""Notification channels: the configured Apprise URLs, their secret-free ids, routing by tag.

A channel is named in the database and in logs by a hash of its URL (`channel_id`): the
URL itself holds tokens and passwords and never leaves memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from checker.config.schema import Config

__all__ = ["EMAIL_SCHEMES", "Channel", "channel_id", "load_channels", "route"]

EMAIL_SCHEMES = frozenset({"mailto", "mailtos", "email"})


@dataclass(frozen=True, slots=True)
class Channel:
    id: str
    url: str
    tags: frozenset[str]
    timeout_s: float = 30.0  # one delivery attempt, Apprise's read timeout included

    @property
    def is_email(self) -> bool:
        return self.url.split("://", 1)[0].lower() in EMAIL_SCHEMES

    @property
    def label(self) -> str:
        """Secret-free name for logs and reports: scheme plus the stable id."""
        return f"{self.url.split('://', 1)[0]}:{self.id}"


def channel_id(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def load_channels(cfg: Config) -> list[Channel]:
    """Channels from `notify:` and from an Apprise config file (YAML or TEXT)."""
    channels = [
        Channel(channel_id(u), u, frozenset(c.tags), c.timeout)
        for c in cfg.notify
        if (u := c.url.get_secret_value())
    ]
    if cfg.apprise_config:
        import apprise  # only for a config file: Apprise costs ~17 MB resident

        ac = apprise.AppriseConfig()
        # Apprise reads the file lazily and only logs when it cannot: an unreadable or empty
        # file must fail here, not leave every alert without a channel.
        listing = None
        if ac.add(cfg.apprise_config):
            # Apprise 2 renamed servers() to services(); getattr serves both versions.
            listing = getattr(ac, "services", None) or getattr(ac, "servers", None)
        servers = listing() if listing else []
        if not servers:
            raise ValueError(
                f"apprise_config: cannot read {cfg.apprise_config} (or it lists no URLs)"
            )
        for server in servers:
            url = server.url(privacy=False)
            channels.append(Channel(channel_id(url), url, frozenset(server.tags or ())))
    return channels


def route(channels: Iterable[Channel], tags: Iterable[str], purpose: str) -> list[Channel]:
    """Alerts reach channels sharing a tag, and untagged channels; digests only tagged ones."""
    wanted = set(tags)
    out = []
    for ch in channels:
        if ch.tags & wanted or (purpose == "alert" and not ch.tags):
            out.append(ch)
    return out
