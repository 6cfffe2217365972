"""What an HTTP probe no longer redoes on every run (bench/peer.py measured the CPU) still
follows the server and the config: cookies a response sets are kept and sent back, one
address connects without a race and fails as the race did (its timeout:
test_arrival_review), and a reload's new URL and
conditions are the ones probed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from checker.probes.base import ErrorKind
from checker.probes.runner import run_probe
from checker.probes.transport.connect import _happy_eyeballs
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from tests.probes.test_http import make_config, probe


class CookieServer:
    """Answers 200; the first response sets `session=1`; notes each request's Cookie."""

    def __init__(self) -> None:
        self.cookies: list[str | None] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        lines = [line.split(":", 1) for line in head.split("\r\n")[1:] if ":" in line]
        self.cookies.append(next((v.strip() for k, v in lines if k.lower() == "cookie"), None))
        sets = b"set-cookie: session=1; Path=/\r\n" if len(self.cookies) == 1 else b""
        writer.write(
            b"HTTP/1.1 200 OK\r\n" + sets + b"content-length: 2\r\nconnection: close\r\n\r\nok"
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def cookie_server() -> AsyncIterator[CookieServer]:
    server = CookieServer()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield server


async def test_a_cookie_a_response_sets_is_sent_by_the_next_probes(
    cookie_server: CookieServer,
) -> None:
    cfg = make_config(f"http://127.0.0.1:{cookie_server.port}/")
    redactor = Redactor(cfg.secrets())
    async with ClientPool(cfg) as pool:
        for _ in range(3):  # the 3rd: a response without Set-Cookie kept the jar as it was
            result = await run_probe(cfg, cfg.targets[0], "http", pool, redactor)
            assert result.ok, result.detail
    assert cookie_server.cookies == [None, "session=1", "session=1"]


async def test_one_address_connects_in_the_callers_task() -> None:
    loop = asyncio.get_running_loop()
    created: list[object] = []

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        created.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    with socket.create_server(("127.0.0.1", 0)) as listener:
        loop.set_task_factory(counting)
        try:
            sock, _kernel = await _happy_eyeballs(
                [(socket.AF_INET, listener.getsockname())], None, []
            )
        finally:
            loop.set_task_factory(None)
        assert created == []
        assert sock.getpeername() == listener.getsockname()
        sock.close()


async def test_one_refused_address_fails_as_the_race_does() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        addr = s.getsockname()
    with pytest.raises(OSError, match="All connection attempts failed") as info:
        await _happy_eyeballs([(socket.AF_INET, addr)], None, [])
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


async def test_a_reload_probes_its_new_url_and_conditions(sim: SimServer) -> None:
    first = make_config(f"{sim.root_url}/health", http={"conditions": ["status == 200"]})
    assert (await probe(first)).ok
    moved = make_config(f"{sim.root_url}/nowhere", http={"conditions": ["status == 200"]})
    result = await probe(moved)
    assert result.error == ErrorKind.condition and result.status == 404
    accepts = make_config(f"{sim.root_url}/nowhere", http={"conditions": ["status == 404"]})
    assert (await probe(accepts)).ok
