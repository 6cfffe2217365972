"""The arrival-stamping network backend over real sockets: bytes read late still carry the
time they arrived, the request clock starts at the first byte written, TLS keeps both,
and failures surface as the same httpcore exceptions the anyio backend raises."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

import httpcore
import pytest
import yaml

from checker.config.load import parse
from checker.config.schema import Config
from checker.probes.runner import run_probe
from checker.probes.transport.arrival import (
    READ_AHEAD_BYTES,
    READ_BYTES,
    StampedStream,
    stream_clock,
)
from checker.probes.transport.connect import ArrivalBackend
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from tests.loop_thread import LoopThread
from tests.tools import pipe

linux_only = pytest.mark.skipif(
    sys.platform != "linux", reason="kernel receive timestamps (SO_TIMESTAMPNS) are Linux's"
)
# How long the test blocks the event loop while bytes arrive: a probe's loop that is busy.
BLOCKED_S = 0.3
# Loopback delivers within the sender's send() call; this only absorbs a scheduler hiccup.
SLACK_S = 0.003


class Peer:
    """A one-connection TCP server in a thread, running `script(conn)` on what it accepts."""

    def __init__(self, script: Callable[[socket.socket], None], tls: ssl.SSLContext | None = None):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._script = script
        self._tls = tls
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self._listener.accept()
            # As real servers do: Nagle would hold a second small write until our ACK.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            with conn:
                self._script(conn)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self) -> None:
        self._thread.join(timeout=10)
        self._listener.close()
        if self.error is not None:
            raise self.error


class Sender:
    """Waits for b"go", then sends b"token" and notes when (just before and after send)."""

    def __init__(self) -> None:
        self.before = self.after = 0.0

    def __call__(self, conn: socket.socket) -> None:
        assert conn.recv(16) == b"go"
        self.before = perf_counter()
        conn.sendall(b"token")
        self.after = perf_counter()
        conn.recv(16)  # until the client closes


@pytest.fixture(scope="module")
def server_tls(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(Path(cert), Path(key))
    return ctx


def client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def connect(port: int, tls: bool = False) -> StampedStream:
    stream = await ArrivalBackend().connect_tcp("127.0.0.1", port, timeout=5)
    if tls:
        stream = await stream.start_tls(client_tls(), server_hostname="127.0.0.1", timeout=5)
    assert isinstance(stream, StampedStream)
    return stream


def hog_loop(seconds: float) -> None:
    """Keep the event loop from running, as other probes' work would."""
    time.sleep(seconds)


@pytest.fixture
def sender() -> Iterator[Sender]:
    yield Sender()


@pytest.mark.timing
@linux_only
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_bytes_read_late_carry_the_time_they_arrived(
    sender: Sender, server_tls: ssl.SSLContext, tls: bool
) -> None:
    peer = Peer(sender, server_tls if tls else None)
    stream = await connect(peer.port, tls)
    await stream.write(b"go")
    hog_loop(BLOCKED_S)  # the token arrives meanwhile
    data = await stream.read(1024)
    read_at = perf_counter()
    await stream.aclose()
    peer.join()
    assert data == b"token"
    clock = stream.clock
    assert clock.kernel and clock.arrived_at is not None
    assert read_at - clock.arrived_at > BLOCKED_S / 2  # it really was read late...
    assert sender.before <= clock.arrived_at <= sender.after + SLACK_S  # ...and stamped on time


def test_a_stream_of_another_backend_has_no_clock() -> None:
    assert stream_clock(object()) is None  # callers fall back to their own clock


@pytest.mark.timing
@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_the_request_clock_starts_at_the_first_byte_written(
    server_tls: ssl.SSLContext, tls: bool
) -> None:
    received: list[float] = []

    def script(conn: socket.socket) -> None:
        for _ in range(2):
            data = conn.recv(64)
            received.append(perf_counter())
            while len(data) < len(b"request"):
                data += conn.recv(64)
            assert data == b"request"
            conn.sendall(b"response")

    peer = Peer(script, server_tls if tls else None)
    stream = await connect(peer.port, tls)
    hog_loop(0.05)  # connect (and TLS) are over: none of this may count
    clock = stream.clock
    before = perf_counter()
    await stream.write(b"requ")
    first = clock.request_sent_at
    assert first is not None and before <= first <= received_soon(received, 0)
    hog_loop(0.01)
    await stream.write(b"est")  # more of the same request does not move the start
    assert clock.request_sent_at == first
    assert await read_exactly(stream, 8) == b"response"
    await stream.write(b"request")  # a response was read: this is the next request
    second = clock.request_sent_at
    assert second is not None and second > first
    assert await read_exactly(stream, 8) == b"response"
    await stream.aclose()
    peer.join()
    assert second <= received[1]


def received_soon(received: list[float], index: int) -> float:
    deadline = perf_counter() + 5
    while len(received) <= index and perf_counter() < deadline:
        time.sleep(0.001)
    return received[index]


async def read_exactly(stream: StampedStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.read(size - len(data), timeout=5)
        assert chunk, "peer closed early"
        data += chunk
    return data


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_a_consumer_that_falls_behind_gets_every_byte_with_bounded_read_ahead(
    server_tls: ssl.SSLContext, tls: bool
) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB

    def script(conn: socket.socket) -> None:
        assert conn.recv(16) == b"go"
        conn.sendall(body)

    peer = Peer(script, server_tls if tls else None)
    stream = await connect(peer.port, tls)
    await stream.write(b"go")
    first = await stream.read(65536, timeout=5)
    await asyncio.sleep(0.3)  # the loop runs, the consumer does not: read-ahead pauses
    raw = stream._raw if tls else stream  # type: ignore[attr-defined]
    assert raw._buffered <= READ_AHEAD_BYTES + READ_BYTES
    received = first
    while chunk := await stream.read(65536, timeout=5):
        received += chunk
    await stream.aclose()
    peer.join()
    assert received == body


# --- failures: the same exceptions (and causes) as httpcore's anyio backend -----------------


async def test_closed_port_is_connect_error_caused_by_refusal() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    with pytest.raises(httpcore.ConnectError) as info:
        await ArrivalBackend().connect_tcp("127.0.0.1", port, timeout=5)
    assert isinstance(info.value.__cause__, OSError)
    assert isinstance(info.value.__cause__.__cause__, ConnectionRefusedError)


async def test_unresolvable_name_is_connect_error_caused_by_gaierror() -> None:
    with pytest.raises(httpcore.ConnectError) as info:
        await ArrivalBackend().connect_tcp("api.checker-test.invalid", 80, timeout=10)
    assert isinstance(info.value.__cause__, socket.gaierror)


async def test_tls_to_a_plain_port_is_connect_error_caused_by_ssl_error() -> None:
    def script(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")

    peer = Peer(script)
    stream = await ArrivalBackend().connect_tcp("127.0.0.1", peer.port, timeout=5)
    with pytest.raises(httpcore.ConnectError) as info:
        await stream.start_tls(client_tls(), server_hostname="127.0.0.1", timeout=5)
    peer.join()
    assert isinstance(info.value.__cause__, ssl.SSLError)


@pytest.mark.timing
async def test_silence_is_read_timeout_and_eof_is_empty() -> None:
    release = threading.Event()

    def script(conn: socket.socket) -> None:
        release.wait(5)  # then close: EOF

    peer = Peer(script)
    stream = await connect(peer.port)
    started = perf_counter()
    with pytest.raises(httpcore.ReadTimeout):
        await stream.read(16, timeout=0.2)
    assert 0.15 < perf_counter() - started < 2
    release.set()
    assert await stream.read(16, timeout=5) == b""
    await stream.aclose()
    peer.join()


async def test_is_readable_tells_a_kept_alive_connection_the_server_closed() -> None:
    release = threading.Event()
    peer = Peer(lambda conn: release.wait(5))
    stream = await connect(peer.port)
    assert stream.get_extra_info("is_readable") is False
    release.set()
    peer.join()
    for _ in range(500):  # the FIN is on its way
        if stream.get_extra_info("is_readable"):
            break
        await asyncio.sleep(0.01)
    assert stream.get_extra_info("is_readable") is True
    await stream.aclose()


# --- whole probes on a loaded event loop, against the simulator's own clock -----------------

TTFT_MS = 300.0
INTER_TOKEN_MS = 200.0
# The loop is blocked across the first token and across the end of the stream, each time
# for longer than the old way of stamping ("now, when our code sees it") could hide.
HOG_WINDOWS_S = ((0.25, 0.40), (0.65, 0.80))
# Server stamp -> kernel -> our stamp, on loopback, with the simulator in a thread.
PROBE_SLACK_MS = 10.0


async def hog_windows(windows: tuple[tuple[float, float], ...]) -> None:
    start = perf_counter()
    for begin, end in windows:
        await asyncio.sleep(max(0.0, begin - (perf_counter() - start)))
        hog_loop(max(0.0, end - (perf_counter() - start)))


class TlsProxy(LoopThread):
    """TLS in front of the simulator, on its own loop and thread (the hog blocks ours)."""

    def __init__(self, ctx: ssl.SSLContext, upstream_port: int) -> None:
        super().__init__()
        self._ctx = ctx
        self._upstream = upstream_port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.port = 0

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._upstream)
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self._clients.discard(task)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self._ctx)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        # Connections still open (kept alive by the client) end with the proxy, not as
        # tasks destroyed pending when the loop goes.
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)


def probe_config(base_url: str, **target: Any) -> Config:
    spec = {"name": "t", "kind": "openai", "base_url": base_url, "model": "m", "probes": ["stream"]}
    return parse(yaml.safe_dump({"targets": [spec | target]}))


async def loaded_probe(sim: SimServer, cfg: Config) -> list[str]:
    """Probe while the loop is blocked around the first token and the end; the errors
    against the server's own intervals, or what went wrong. Three tries: a shared machine
    can delay one run, while a clock that counts the blocked loop fails every run."""
    problems: list[str] = []
    async with ClientPool(cfg) as pool:
        for _ in range(3):
            sim.reset_stats()
            hog = asyncio.create_task(hog_windows(HOG_WINDOWS_S))
            result = await run_probe(cfg, cfg.targets[0], "stream", pool, Redactor())
            await hog
            if not result.ok:
                return [f"probe failed: {result.error} {result.detail}"]
            (truth,) = sim.timings("default")
            assert truth.ttft_ms is not None and truth.duration_ms is not None
            errors = {
                "ttft": (result.ttft_ms or 0) - truth.ttft_ms,
                "latency": (result.latency_ms or 0) - truth.duration_ms,
            }
            problems = [
                f"{name} error {err:.2f} ms not within [0, {PROBE_SLACK_MS:g}]"
                for name, err in errors.items()
                if not 0 <= err <= PROBE_SLACK_MS
            ]
            if not problems:
                break
    return problems


@pytest.mark.timing
@linux_only
async def test_a_blocked_loop_does_not_inflate_ttft_or_latency(sim: SimServer) -> None:
    sim.set("default", ttft_ms=TTFT_MS, inter_token_ms=INTER_TOKEN_MS, completion_tokens=3)
    assert await loaded_probe(sim, probe_config(sim.url())) == []


@pytest.mark.timing
@linux_only
async def test_a_blocked_loop_does_not_inflate_ttft_or_latency_over_tls(
    sim: SimServer, server_tls: ssl.SSLContext
) -> None:
    sim.set("default", ttft_ms=TTFT_MS, inter_token_ms=INTER_TOKEN_MS, completion_tokens=3)
    proxy = TlsProxy(server_tls, sim.port)
    proxy.start()
    try:
        cfg = probe_config(f"https://127.0.0.1:{proxy.port}/v1", verify_tls=False)
        assert await loaded_probe(sim, cfg) == []
    finally:
        proxy.close()
