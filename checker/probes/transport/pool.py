"""One reusable httpx client per target, built outside any measurement.

Clients (and their TLS contexts) are built once: building an httpx client costs tens of
milliseconds that would otherwise land inside ttft. By default a client keeps no idle
connections, so every probe opens a fresh one and DNS, connect and TLS are measured and
their failures seen; `reuse_connections: true` keeps them warm. Where the platform allows
(arrival.SUPPORTED), a client's connections come from the ArrivalBackend, whose streams
stamp when requests leave and bytes arrive; on Windows, and for every URL a proxy from the
environment applies to, httpx's own transport is used.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpcore
import httpx

from checker.probes.transport.arrival import SUPPORTED
from checker.probes.transport.connect import ArrivalBackend

if TYPE_CHECKING:
    from checker.config.schema import Config, Target

USER_AGENT = "checker/0.1 (synthetic monitor)"


@functools.cache
def tls_context(verify: bool) -> ssl.SSLContext:
    """Shared by every client: loading the CA bundle is the slow part of building one."""
    return httpx.create_ssl_context(verify=verify)


class _Cookies(httpx.Cookies):
    """The client's cookie jar, skipping responses that set no cookie.

    httpx hands every response to the jar (`extract_cookies`) through urllib's request and
    response adapters, ~40 us of CPU per probe, even when it has no Set-Cookie header and
    the jar can only do nothing with it. Cookies a response does set are kept as before."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


class ArrivalTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (request conversion, exception mapping, response streams)
    over a connection pool whose streams stamp when requests leave and bytes arrive."""

    def __init__(self, *, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits)
        # httpx takes no network backend: replace the pool it built by the same one with
        # ours (`_pool` is where every httpx 0.x transport keeps it).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=verify,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=ArrivalBackend(),
        )


def _use_arrival_transport(
    client: httpx.AsyncClient, verify: ssl.SSLContext, limits: httpx.Limits
) -> None:
    """Swap the client's default transport for an ArrivalTransport, keeping the proxy
    mounts httpx made from the environment: a URL a proxy applies to still goes through
    httpx's own proxy transport (unstamped), exactly as without this module; NO_PROXY
    hosts and unproxied URLs resolve to the default transport at request time, i.e. ours.
    (Passing `transport=` to AsyncClient instead would make httpx ignore every *_PROXY
    variable, silently routing around a proxy the host requires.)"""
    if not isinstance(getattr(client, "_transport", None), httpx.AsyncHTTPTransport):
        return  # an httpx that keeps it elsewhere: stay on its own transport
    client._transport = ArrivalTransport(verify=verify, limits=limits)


@dataclass(frozen=True, slots=True)
class _ClientSpec:
    """Everything a client is built from; a reload that changes it rebuilds the client."""

    verify_tls: bool
    reuse_connections: bool
    connect_timeout: float
    read_timeout: float
    total_timeout: float
    keepalive_s: float

    @classmethod
    def of(cls, cfg: Config, target: Target) -> _ClientSpec:
        return cls(
            verify_tls=target.verify_tls,
            reuse_connections=target.reuse_connections,
            connect_timeout=cfg.connect_timeout(target),
            read_timeout=cfg.read_timeout(target),
            total_timeout=cfg.timeout(target),
            keepalive_s=cfg.interval(target) + 15.0,
        )


@dataclass(slots=True)
class _Entry:
    spec: _ClientSpec
    client: httpx.AsyncClient
    leases: int = 0
    retired: bool = False


@dataclass(slots=True)
class ClientPool:
    """One httpx.AsyncClient per target, built once and reused across probes.

    `lease(target)` hands out a client and keeps it open until the probe is done, so a
    reload that retires a client never cuts a probe in flight (that would be a false
    `disconnect`); retired clients close when their last lease ends.
    """

    cfg: Config
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _retired: list[_Entry] = field(default_factory=list)
    _closing: set[asyncio.Task[None]] = field(default_factory=set)

    def __post_init__(self) -> None:
        for target in self.cfg.targets:
            self._build(target)

    async def __aenter__(self) -> ClientPool:
        await warm_up()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _build(self, target: Target) -> _Entry:
        spec = _ClientSpec.of(self.cfg, target)
        limits = (
            httpx.Limits(max_keepalive_connections=20, keepalive_expiry=spec.keepalive_s)
            if spec.reuse_connections
            else httpx.Limits(max_keepalive_connections=0)
        )
        verify = tls_context(spec.verify_tls)
        # No `transport=` here: httpx mounts proxies from the environment (HTTP(S)_PROXY,
        # ALL_PROXY, NO_PROXY) only when it builds the default transport itself.
        client = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(
                connect=spec.connect_timeout,
                read=spec.read_timeout,
                write=spec.read_timeout,
                pool=spec.total_timeout,
            ),
            limits=limits,
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
        )
        if SUPPORTED:
            _use_arrival_transport(client, verify, limits)
        # The `cookies` setter would wrap it in a plain httpx.Cookies: set the attribute the
        # property reads (where every httpx 0.x keeps the client's jar).
        if isinstance(getattr(client, "_cookies", None), httpx.Cookies):
            client._cookies = _Cookies()
        entry = _Entry(spec=spec, client=client)
        self._entries[target.name] = entry
        return entry

    def _entry(self, target: Target) -> _Entry:
        entry = self._entries.get(target.name)
        if entry is None or entry.spec != _ClientSpec.of(self.cfg, target):
            if entry is not None:
                self._retire(entry)
            entry = self._build(target)
        return entry

    def client(self, target: Target) -> httpx.AsyncClient:
        """The target's client (built on first use if the target is new)."""
        return self._entry(target).client

    @asynccontextmanager
    async def lease(self, target: Target) -> AsyncIterator[httpx.AsyncClient]:
        """The target's client, kept open until the block ends even across a reload."""
        await warm_up()
        entry = self._entry(target)
        entry.leases += 1
        try:
            yield entry.client
        finally:
            entry.leases -= 1
            if entry.retired and entry.leases == 0:
                await self._close(entry)

    def _retire(self, entry: _Entry) -> None:
        entry.retired = True
        self._retired.append(entry)

    async def _close(self, entry: _Entry) -> None:
        if entry in self._retired:
            self._retired.remove(entry)
        if not entry.client.is_closed:
            await entry.client.aclose()

    def update(self, cfg: Config) -> None:
        """Adopt a reloaded config: rebuild clients whose settings changed and close those
        of removed targets, in the background when idle, else when their last probe ends.
        Synchronous, so a reload handler can call it without awaiting; `settle()` waits
        for the closing to finish."""
        self.cfg = cfg
        wanted = {t.name: t for t in cfg.targets}
        for name, entry in list(self._entries.items()):
            target = wanted.get(name)
            if target is None or entry.spec != _ClientSpec.of(cfg, target):
                del self._entries[name]
                self._retire(entry)
        for target in cfg.targets:
            if target.name not in self._entries:
                self._build(target)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: aclose() closes what was retired
        for entry in [e for e in self._retired if e.leases == 0]:
            task = loop.create_task(self._close(entry))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def settle(self) -> None:
        """Wait until the clients retired by update() are closed."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def aclose(self) -> None:
        entries = list(self._entries.values()) + list(self._retired)
        self._entries.clear()
        self._retired.clear()
        for entry in entries:
            await entry.client.aclose()
        await self.settle()


_warmed = False


async def warm_up() -> None:
    """Pay httpx's first-request costs once, outside any measurement: it imports httpcore,
    h11 and anyio's backend lazily and starts the thread that resolves names, which would
    add ~30-50 ms to the first probe's connect/ttfb after every start."""
    global _warmed
    if _warmed:
        return
    import anyio.to_thread
    import h11  # noqa: F401
    import httpcore  # noqa: F401

    await anyio.to_thread.run_sync(lambda: None)
    _warmed = True


__all__ = ["USER_AGENT", "ArrivalTransport", "ClientPool", "tls_context", "warm_up"]
