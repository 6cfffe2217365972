"""systemd notification protocol (sd_notify): READY, WATCHDOG, STOPPING, STATUS.

A few lines over a datagram socket; a no-op outside systemd (no $NOTIFY_SOCKET).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

__all__ = ["notify", "watchdog_interval", "watchdog_loop"]


def notify(message: str) -> bool:
    """Send one state line; True when a systemd socket took it."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WatchdogSec, as systemd recommends."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 1_000_000 / 2
    except ValueError:
        return None


async def watchdog_loop(every: float, alive: Callable[[], bool]) -> None:
    """WATCHDOG=1 every `every` seconds, until cancelled."""
    while True:
        await asyncio.sleep(every)
        # Ping only while the scheduler is alive: a wedged service must get restarted.
        if alive():
            notify("WATCHDOG=1")
