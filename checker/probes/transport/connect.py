"""Connecting for the ArrivalBackend: name resolution and happy eyeballs over plain
non-blocking sockets, so each connection is a _SocketStream that stamps arrivals.

It mirrors httpcore's own anyio backend, so probes classify failures exactly as before:
the same exception types (ConnectError, ConnectTimeout) wrapping the same causes
(socket.gaierror, OSError), IPv6 first and the next attempt 250 ms later, TCP_NODELAY.
"""

# httpcore's stream interface passes timeouts as arguments, so the helpers do too.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore

from checker.probes.transport.arrival import Option, _enable_kernel_stamps, _SocketStream

HAPPY_EYEBALLS_DELAY_S = 0.25


def _order(infos: list[tuple[Any, ...]]) -> list[tuple[int, Any]]:
    """(family, sockaddr) with the first IPv6 address first and the first IPv4 second, as
    anyio orders them for happy eyeballs."""
    out: list[tuple[int, Any]] = []
    v6 = v4 = False
    for family, _type, _proto, _name, addr in infos:
        if family == socket.AF_INET6 and not v6:
            v6 = True
            out.insert(0, (family, addr))
        elif family == socket.AF_INET and not v4 and v6:
            v4 = True
            out.insert(1, (family, addr))
        else:
            out.append((family, addr))
    return out


async def _resolve(host: str, port: int) -> list[tuple[int, Any]]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal never needs the resolver thread
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(family, (ip.compressed, port))]
    loop = asyncio.get_running_loop()
    return _order(await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))


async def _connect_one(
    family: int,
    addr: Any,
    local_address: str | None,
    options: Iterable[Option],
) -> tuple[socket.socket, bool]:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio does
        kernel = _enable_kernel_stamps(sock)
        for option in options:
            sock.setsockopt(*option)
        if local_address is not None:
            sock.bind((local_address, 0))
        await asyncio.get_running_loop().sock_connect(sock, addr)
    except BaseException:
        sock.close()
        raise
    return sock, kernel


async def _happy_eyeballs(
    addrs: list[tuple[int, Any]], local_address: str | None, options: list[Option]
) -> tuple[socket.socket, bool]:
    """The first address to connect wins; the next attempt starts when the previous one
    ended or after HAPPY_EYEBALLS_DELAY_S. Fails as anyio fails (the same OSError)."""
    if len(addrs) == 1:
        # Nothing to race (an IP literal, a name with one address): connect in this task.
        # The race's tasks, waits and timers cost ~60 us of CPU per probe, a twentieth
        # of an HTTP probe; the failure is the one the race would raise.
        family, addr = addrs[0]
        try:
            return await _connect_one(family, addr, local_address, options)
        except OSError as exc:
            raise OSError("All connection attempts failed") from exc
    loop = asyncio.get_running_loop()
    won: asyncio.Future[tuple[socket.socket, bool]] = loop.create_future()
    errors: list[OSError] = []

    async def attempt(family: int, addr: Any) -> None:
        try:
            conn = await _connect_one(family, addr, local_address, options)
        except OSError as exc:
            errors.append(exc)
            return
        if won.done():
            conn[0].close()  # connected too, but second
        else:
            won.set_result(conn)

    tasks: list[asyncio.Task[None]] = []
    try:
        try:
            for family, addr in addrs:
                tasks.append(loop.create_task(attempt(family, addr)))
                first: set[asyncio.Future[Any]] = {tasks[-1], won}
                await asyncio.wait(
                    first, timeout=HAPPY_EYEBALLS_DELAY_S, return_when="FIRST_COMPLETED"
                )
                if won.done():
                    break
            while not won.done() and (pending := [t for t in tasks if not t.done()]):
                rest: set[asyncio.Future[Any]] = {won, *pending}
                await asyncio.wait(rest, return_when="FIRST_COMPLETED")
        finally:
            for task in tasks:
                task.cancel()
            # A cancellation (the connect timeout) can land here too, after a winner.
            await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        if won.done():
            won.result()[0].close()
        raise
    if won.done():
        return won.result()
    if not errors:  # no address at all (a resolver that answered with nothing)
        raise OSError("No address to connect to")
    cause: BaseException = (
        errors[0]
        if len(errors) == 1
        else ExceptionGroup("multiple connection attempts failed", errors)
    )
    raise OSError("All connection attempts failed") from cause


class ArrivalBackend(httpcore.AsyncNetworkBackend):
    """httpcore.AsyncConnectionPool(network_backend=ArrivalBackend()): TCP and TLS streams
    whose ArrivalClock a probe reads from response.extensions["network_stream"]."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Option] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addrs = await _resolve(host, port)
                sock, kernel = await _happy_eyeballs(
                    addrs, local_address, list(socket_options or [])
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(exc) from exc
        except OSError as exc:  # socket.gaierror included: it tells a DNS failure
            raise httpcore.ConnectError(exc) from exc
        return _SocketStream(sock, kernel)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


__all__ = ["HAPPY_EYEBALLS_DELAY_S", "ArrivalBackend"]
