"""The arrival backend where httpx's own transport used to be trusted: certificate and
hostname verification, SNI and ALPN, `verify_tls: false`, proxies from the environment,
each timeout, descriptors after errors and cancellation, IPv6 and happy eyeballs, and
the kernel-timestamp parsing. Every check runs over real loopback sockets; where it
matters, the same probe through httpx's own transport (the fallback path) is the oracle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

import httpcore
import httpx
import pytest
import yaml

import checker.probes.transport.pool as clients
from checker.config.load import parse
from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.classify import classify_exception
from checker.probes.runner import run_probe
from checker.probes.transport.arrival import (
    _SO_TIMESTAMPNS,
    _TIMESPEC,
    StampedStream,
    _enable_kernel_stamps,
    _kernel_arrival,
    _SocketStream,
    stream_clock,
)
from checker.probes.transport.connect import ArrivalBackend, _happy_eyeballs
from checker.probes.transport.pool import ArrivalTransport, ClientPool
from checker.redact import Redactor
from tests.loop_thread import LoopThread
from tests.tools import pipe

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
    b"connection: close\r\n\r\nok"
)


# --- servers ---------------------------------------------------------------------------------


class Server(LoopThread):
    """A TCP (or TLS) server on its own loop and thread running `handler` per connection."""

    def __init__(
        self, handler: Handler, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> None:
        super().__init__()
        self._handler = handler
        self._tls = tls
        self._host = host
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.start()

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._run, self._host, 0, ssl=self._tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):  # connections a silent handler still holds
            writer.close()
        await asyncio.sleep(0.01)  # their handlers see the close and end


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(OK_RESPONSE)
    await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up


async def one_chunk_then_silence(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    await read_head(reader)
    event = b'data: {"model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        b"transfer-encoding: chunked\r\n\r\n" + f"{len(event):x}\r\n".encode() + event + b"\r\n"
    )
    await writer.drain()
    await reader.read()


class ConnectProxy(Server):
    """A forward proxy: CONNECT tunnels, absolute-form requests forwarded; notes each line."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        super().__init__(self._proxy)

    async def _proxy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        line, _, rest = head.partition(b"\r\n")
        self.seen.append(line.decode())
        method, target, version = line.split()
        if method == b"CONNECT":
            host, port = target.decode().rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = httpx.URL(target.decode())
            up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
            up_writer.write(b" ".join([method, url.raw_path, version]) + b"\r\n" + rest)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.fixture
def servers() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(handler: Handler, **kwargs: Any) -> Server:
        server = (
            ConnectProxy() if handler is ConnectProxy else Server(handler, **kwargs)  # type: ignore[comparison-overlap]
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


# --- certificates: a throwaway CA (openssl CLI, as tests/alerting/test_certs.py)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Pki:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ca = directory / "ca.pem"
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl(
            *("req", "-x509", *ec, "-days", "2", "-subj", "/CN=checker test CA"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
            *("-keyout", str(directory / "ca.key"), "-out", str(self.ca)),
        )
        self._ec = ec

    def leaf(self, name: str, san: str) -> ssl.SSLContext:
        """A server context whose certificate, signed by the CA, names `san`."""
        key, csr, cert = (self.dir / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        ext = self.dir / f"{name}.ext"
        ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
        _openssl(
            "req", "-new", *self._ec, "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr)
        )
        _openssl(
            *(
                "x509",
                "-req",
                "-in",
                str(csr),
                "-CA",
                str(self.ca),
                "-CAkey",
                str(self.dir / "ca.key"),
            ),
            *("-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)),
        )
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        return ctx

    def client(self) -> ssl.SSLContext:
        """What httpx builds for verify=True, trusting this CA instead of certifi's."""
        return httpx.create_ssl_context(verify=ssl.create_default_context(cafile=str(self.ca)))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


class Recorded:
    """A TLS server context that notes the SNI name and the ALPN protocol it negotiated."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.sni: list[str | None] = []
        self.ctx = ctx
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        ctx.sni_callback = lambda _obj, name, _ctx: self.sni.append(name)  # type: ignore[assignment,misc]


# --- helpers -----------------------------------------------------------------------------------


def config(url: str, **target: Any) -> Config:
    spec: dict[str, Any] = {"name": "t", "kind": "http", "base_url": url} | target
    return parse(yaml.safe_dump({"targets": [spec]}))


async def probe(cfg: Config, kind: str = "http") -> ProbeResult:
    async with ClientPool(cfg) as pool:
        return await run_probe(cfg, cfg.targets[0], kind, pool, Redactor())


async def probe_both(
    cfg: Config, monkeypatch: pytest.MonkeyPatch, kind: str = "http"
) -> tuple[ProbeResult, ProbeResult]:
    """The probe through the arrival backend, then through httpx's own transport."""
    ours = await probe(cfg, kind)
    with monkeypatch.context() as m:
        m.setattr(clients, "SUPPORTED", False)
        theirs = await probe(cfg, kind)
    return ours, theirs


async def fetch(transport: httpx.AsyncBaseTransport, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        return await client.get(url)


def root_cause(exc: BaseException) -> BaseException:
    """httpcore's pool re-raises `from None`: the cause is also kept as the first argument."""
    while True:
        inner = exc.__cause__ or (exc.args[0] if exc.args else None)
        if not isinstance(inner, BaseException):
            return exc
        exc = inner


def _connections_on(ports: Collection[int]) -> list[tuple[int, int, str, str]]:
    """(local port, remote port, TCP state, inode) of each TCP socket with an end on one of
    `ports`, listeners included (/proc/self/net/tcp and tcp6)."""
    out = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
                if local in ports or remote in ports:
                    out.append((local, remote, fields[3], fields[9]))
    return out


def _inodes_on(ports: Collection[int]) -> set[str]:
    # The checker's own sockets: connected to one of the ports. The servers' listeners and
    # accepted ends are the test's, and a loaded machine's server threads close them late.
    return {inode for _, remote, _, inode in _connections_on(ports) if remote in ports}


def describe_sockets(ports: Collection[int]) -> list[str]:
    """local port -> remote port and TCP state of each connection on `ports` (for a failure)."""
    return [f"{lo}->{re} state {st} inode {ino}" for lo, re, st, ino in _connections_on(ports)]


def open_sockets(ports: Collection[int] | None = None) -> int:
    """This process's open sockets; with `ports`, only client sockets connected to them (so
    neither a thread another test left running nor a slow server thread moves the count)."""
    wanted = _inodes_on(ports) if ports is not None else None
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:") and (wanted is None or link[8:-1] in wanted):
                count += 1
    return count


async def settled_sockets(expected: int, ports: Collection[int] | None = None) -> int:
    """Open sockets once the servers' threads closed their ends (they close on our EOF)."""
    for _ in range(500):  # up to 10 s: a loaded machine closes late
        if (now := open_sockets(ports)) <= expected:
            return now
        await asyncio.sleep(0.02)
    return open_sockets(ports)


class Blackhole:
    """A listener whose accept queue is full: further SYNs are dropped, connect hangs."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.addr = self.listener.getsockname()
        self.fillers: list[socket.socket] = []
        while True:
            filler = socket.socket()
            filler.setblocking(False)
            self.fillers.append(filler)
            if filler.connect_ex(self.addr) != 0:
                time.sleep(0.05)
                if filler.connect_ex(self.addr) not in (0, 106):  # EISCONN
                    break

    def close(self) -> None:
        for s in [*self.fillers, self.listener]:
            s.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def no_env_proxy(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


# --- 1. TLS ----------------------------------------------------------------------------------


async def test_an_untrusted_certificate_fails_as_tls_like_httpx(
    servers: Callable[..., Server], pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers(answer_ok, tls=pki.leaf("untrusted", "IP:127.0.0.1"))
    ours, theirs = await probe_both(config(f"https://127.0.0.1:{server.port}/"), monkeypatch)
    assert ours.error == theirs.error == ErrorKind.tls
    assert "CERTIFICATE_VERIFY_FAILED" in (ours.detail or ""), ours.detail
    assert ours.detail == theirs.detail


async def test_a_certificate_for_another_name_fails_hostname_verification(
    servers: Callable[..., Server], pki: Pki
) -> None:
    server = servers(answer_ok, tls=pki.leaf("other", "DNS:other.example"))
    url = f"https://127.0.0.1:{server.port}/"
    failures = []
    for transport in (
        ArrivalTransport(verify=pki.client(), limits=httpx.Limits()),
        httpx.AsyncHTTPTransport(verify=pki.client()),
    ):
        with pytest.raises(httpx.ConnectError) as caught:
            await fetch(transport, url)
        assert isinstance(root_cause(caught.value), ssl.SSLCertVerificationError)
        failures.append(classify_exception(caught.value, headers_received=False))
    assert failures[0] == failures[1]
    assert failures[0].kind == ErrorKind.tls and "mismatch" in failures[0].detail


async def test_a_trusted_certificate_sends_sni_and_speaks_http11(
    servers: Callable[..., Server], pki: Pki
) -> None:
    recorded = Recorded(pki.leaf("localhost", "DNS:localhost,IP:127.0.0.1"))
    server = servers(answer_ok, tls=recorded.ctx)
    transport = ArrivalTransport(verify=pki.client(), limits=httpx.Limits())
    async with (
        httpx.AsyncClient(transport=transport, timeout=5) as client,
        client.stream("GET", f"https://localhost:{server.port}/") as response,
    ):
        assert await response.aread() == b"ok"
        stream = response.extensions["network_stream"]
        assert stream_clock(stream) is not None
        assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        assert response.http_version == "HTTP/1.1"
    assert recorded.sni == ["localhost"]


async def test_verify_tls_false_accepts_an_untrusted_certificate(
    servers: Callable[..., Server], pki: Pki
) -> None:
    server = servers(answer_ok, tls=pki.leaf("anything", "DNS:other.example"))
    result = await probe(config(f"https://127.0.0.1:{server.port}/", verify_tls=False))
    assert result.ok, result.detail
    assert result.connect_ms is not None and result.ttfb_ms is not None


async def test_closing_tls_never_waits_for_the_peer(
    servers: Callable[..., Server], pki: Pki
) -> None:
    # The server neither reads nor answers a close_notify: closing must not depend on it.
    server = servers(silent, tls=pki.leaf("quiet", "IP:127.0.0.1"))
    stream = await ArrivalBackend().connect_tcp("127.0.0.1", server.port, timeout=5)
    tls = await stream.start_tls(pki.client(), server_hostname="127.0.0.1", timeout=5)
    await tls.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", timeout=5)
    started = perf_counter()
    async with asyncio.timeout(1):
        await tls.aclose()
    assert perf_counter() - started < 0.1
    assert tls.get_extra_info("socket").fileno() == -1


async def test_a_tls_error_after_the_handshake_is_a_read_error(
    servers: Callable[..., Server], pki: Pki
) -> None:
    async def garbage_after_handshake(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await read_head(reader)
        # Written under the TLS layer: a record the client cannot decrypt.
        transport = writer.transport.get_extra_info("socket")  # type: ignore[union-attr]
        with socket.socket(fileno=os.dup(transport.fileno())) as raw:
            raw.sendall(b"\x17\x03\x03\x00\x20" + b"x" * 32)
        await reader.read()

    server = servers(garbage_after_handshake, tls=pki.leaf("garbage", "IP:127.0.0.1"))
    transport = ArrivalTransport(verify=pki.client(), limits=httpx.Limits())
    with pytest.raises(httpx.ReadError) as caught:
        await fetch(transport, f"https://127.0.0.1:{server.port}/")
    assert isinstance(root_cause(caught.value), ssl.SSLError)
    assert classify_exception(caught.value, headers_received=False).kind == ErrorKind.disconnect


# --- 2. proxies ------------------------------------------------------------------------------


async def test_http_proxy_from_the_environment_is_used(
    servers: Callable[..., Server], no_env_proxy: pytest.MonkeyPatch
) -> None:
    origin, proxy = servers(answer_ok), servers(ConnectProxy)
    no_env_proxy.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    url = f"http://127.0.0.1:{origin.port}/health"
    result = await probe(config(url))
    assert result.ok, result.detail
    assert proxy.seen == [f"GET {url} HTTP/1.1"]


async def test_https_proxy_from_the_environment_tunnels_with_connect(
    servers: Callable[..., Server], pki: Pki, no_env_proxy: pytest.MonkeyPatch
) -> None:
    origin = servers(answer_ok, tls=pki.leaf("tunnelled", "IP:127.0.0.1"))
    proxy = servers(ConnectProxy)
    no_env_proxy.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    result = await probe(config(f"https://127.0.0.1:{origin.port}/", verify_tls=False))
    assert result.ok, result.detail
    assert proxy.seen == [f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1"]


async def test_a_proxied_url_uses_httpx_transport_and_no_proxy_ours(
    servers: Callable[..., Server], no_env_proxy: pytest.MonkeyPatch
) -> None:
    origin, proxy = servers(answer_ok), servers(ConnectProxy)
    no_env_proxy.setenv("ALL_PROXY", f"http://127.0.0.1:{proxy.port}")
    cfg = config(f"http://localhost:{origin.port}/")
    clocks = []
    for no_proxy in ("", "localhost"):
        no_env_proxy.setenv("NO_PROXY", no_proxy)
        async with ClientPool(cfg) as pool:
            client = pool.client(cfg.targets[0])
            async with client.stream("GET", f"http://localhost:{origin.port}/") as response:
                await response.aread()
                clocks.append(stream_clock(response.extensions["network_stream"]))
    assert len(proxy.seen) == 1  # only the first, proxied, request
    assert clocks[0] is None and clocks[1] is not None


# --- 3. timeouts -----------------------------------------------------------------------------


async def test_a_silent_server_is_timeout_like_httpx(
    servers: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers(silent)
    cfg = config(f"http://127.0.0.1:{server.port}/", read_timeout="300ms")
    ours, theirs = await probe_both(cfg, monkeypatch)
    assert ours.error == theirs.error == ErrorKind.timeout
    assert ours.detail == theirs.detail


async def test_a_blackholed_connect_is_connect_timeout_like_httpx(
    blackhole: Blackhole, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = blackhole.addr
    cfg = config(f"http://{host}:{port}/", connect_timeout="300ms")
    started = perf_counter()
    ours, theirs = await probe_both(cfg, monkeypatch)
    assert ours.error == theirs.error == ErrorKind.connect_timeout, (ours.detail, theirs.detail)
    assert perf_counter() - started < 3


async def test_a_stream_that_stops_mid_body_is_a_stall_like_httpx(
    servers: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = servers(one_chunk_then_silence)
    cfg = config(
        f"http://127.0.0.1:{server.port}/v1", kind="openai", model="m", read_timeout="300ms"
    )
    ours, theirs = await probe_both(cfg, monkeypatch, kind="stream")
    assert ours.error == theirs.error == ErrorKind.stall
    assert ours.ttft_ms is not None and theirs.ttft_ms is not None


async def test_a_peer_that_does_not_read_is_a_write_timeout() -> None:
    # Never accepted: the kernel completes the handshake, then its buffers fill up.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        stream = await ArrivalBackend().connect_tcp("127.0.0.1", port, timeout=5)
        try:
            with pytest.raises(httpcore.WriteTimeout):
                for _ in range(1000):
                    await stream.write(b"x" * 1024 * 1024, timeout=0.3)
        finally:
            await stream.aclose()


# --- 4. resources ----------------------------------------------------------------------------


async def test_no_socket_leaks_after_hundreds_of_probes_failures_and_cancellations(
    servers: Callable[..., Server], pki: Pki, no_env_proxy: pytest.MonkeyPatch
) -> None:
    ok, quiet = servers(answer_ok), servers(silent)
    tls_bad = servers(answer_ok, tls=pki.leaf("leak", "IP:127.0.0.1"))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    targets = [
        {"name": "ok", "kind": "http", "base_url": f"http://127.0.0.1:{ok.port}/"},
        {"name": "refused", "kind": "http", "base_url": f"http://127.0.0.1:{refused_port}/"},
        {
            "name": "quiet",
            "kind": "http",
            "base_url": f"http://127.0.0.1:{quiet.port}/",
            "read_timeout": "50ms",
        },
        {"name": "tls", "kind": "http", "base_url": f"https://127.0.0.1:{tls_bad.port}/"},
    ]
    cfg = parse(yaml.safe_dump({"targets": targets}))
    expected = {
        "ok": None,
        "refused": ErrorKind.connect,
        "quiet": ErrorKind.timeout,
        "tls": ErrorKind.tls,
    }
    async with ClientPool(cfg) as pool:
        await run_probe(cfg, cfg.targets[0], "http", pool, Redactor())  # warm up
        ports = {ok.port, quiet.port, tls_bad.port, refused_port}
        before = await settled_sockets(open_sockets(ports), ports)
        for _ in range(60):
            results = await asyncio.gather(
                *(run_probe(cfg, t, "http", pool, Redactor()) for t in cfg.targets)
            )
            assert {r.target: r.error for r in results} == expected
        for _ in range(40):  # cancelled mid-read, as a stopping service does
            task = asyncio.create_task(run_probe(cfg, cfg.targets[2], "http", pool, Redactor()))
            await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await settled_sockets(before, ports) <= before, (ports, describe_sockets(ports))


# --- 5. IPv6 and happy eyeballs --------------------------------------------------------------


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")
async def test_ipv6_loopback(
    servers: Callable[..., Server], no_env_proxy: pytest.MonkeyPatch
) -> None:
    server = servers(answer_ok, host="::1")
    result = await probe(config(f"http://[::1]:{server.port}/"))
    assert result.ok, result.detail
    stream = await ArrivalBackend().connect_tcp("::1", server.port, timeout=5)
    assert stream.get_extra_info("server_addr")[:2] == ("::1", server.port)
    await stream.aclose()


async def test_happy_eyeballs_falls_back_from_a_refused_address(
    servers: Callable[..., Server],
) -> None:
    server = servers(answer_ok)
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    refused_addr = refused.getsockname()
    refused.close()
    started = perf_counter()
    sock, _ = await _happy_eyeballs(
        [(socket.AF_INET, refused_addr), (socket.AF_INET, ("127.0.0.1", server.port))], None, []
    )
    elapsed = perf_counter() - started
    assert sock.getpeername() == ("127.0.0.1", server.port)
    sock.close()
    assert elapsed < 0.2  # a refusal starts the next attempt at once


async def test_happy_eyeballs_falls_back_from_an_unreachable_address(
    servers: Callable[..., Server], blackhole: Blackhole
) -> None:
    server = servers(answer_ok)
    started = perf_counter()
    sock, _ = await _happy_eyeballs(
        [(socket.AF_INET, blackhole.addr), (socket.AF_INET, ("127.0.0.1", server.port))], None, []
    )
    elapsed = perf_counter() - started
    assert sock.getpeername() == ("127.0.0.1", server.port)
    sock.close()
    assert 0.2 <= elapsed < 2  # the second attempt after HAPPY_EYEBALLS_DELAY_S


async def test_happy_eyeballs_when_every_address_fails_is_connect_error() -> None:
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s.getsockname()[1])
        s.close()
    before = open_sockets()
    with pytest.raises(OSError, match="All connection attempts failed"):
        await _happy_eyeballs([(socket.AF_INET, ("127.0.0.1", p)) for p in ports], None, [])
    assert await settled_sockets(before) <= before


async def test_happy_eyeballs_without_addresses_is_an_os_error() -> None:
    # ExceptionGroup refuses an empty list: this used to escape as a ValueError.
    with pytest.raises(OSError, match="No address"):
        await _happy_eyeballs([], None, [])


async def test_a_connect_timeout_while_attempts_race_leaks_no_socket(
    blackhole: Blackhole,
) -> None:
    before = open_sockets()
    with pytest.raises(httpcore.ConnectTimeout):
        await ArrivalBackend().connect_tcp(*blackhole.addr, timeout=0.3)
    assert await settled_sockets(before) <= before


# --- 6. kernel timestamps --------------------------------------------------------------------


def test_ancillary_data_without_a_usable_timestamp_gives_none() -> None:
    stamp = _TIMESPEC.pack(1, 2)
    assert _kernel_arrival([]) is None
    assert _kernel_arrival([(socket.SOL_SOCKET, _SO_TIMESTAMPNS, stamp[:8])]) is None
    assert _kernel_arrival([(socket.IPPROTO_IP, _SO_TIMESTAMPNS, stamp)]) is None
    assert _kernel_arrival([(socket.SOL_SOCKET, 29, stamp)]) is None  # SO_TIMESTAMP (usec)


def test_a_realtime_stamp_maps_to_perf_counter_and_never_into_the_future() -> None:
    def at(ns: int) -> list[tuple[int, int, bytes]]:
        return [(socket.SOL_SOCKET, _SO_TIMESTAMPNS, _TIMESPEC.pack(*divmod(ns, 1_000_000_000)))]

    now = perf_counter()
    converted = _kernel_arrival(at(time.time_ns() - 50_000_000))
    assert converted is not None and abs((now - 0.05) - converted) < 0.01
    future = _kernel_arrival(at(time.time_ns() + 10_000_000_000))
    assert future is not None and future <= perf_counter()


async def test_stream_is_a_stamped_stream(servers: Callable[..., Server]) -> None:
    server = servers(answer_ok)
    stream = await ArrivalBackend().connect_tcp("127.0.0.1", server.port, timeout=5)
    assert isinstance(stream, StampedStream)
    await stream.aclose()


async def test_bytes_never_arrive_before_the_request_was_sent() -> None:
    # As after a wall-clock step back between the packet and its conversion (or bytes a
    # server pushed before the request): the arrival is clamped to the request's start.
    ours, peer = socket.socketpair()
    with peer:
        stream = _SocketStream(ours, _enable_kernel_stamps(ours))
        stream._start_reading()  # as a kept-alive connection idles, reading ahead
        peer.sendall(b"early")
        await asyncio.sleep(0.05)
        stream.clock.request_sent_at = sent = perf_counter()
        assert await stream.read(100, timeout=5) == b"early"
        assert stream.clock.arrived_at == sent
        await stream.aclose()


async def test_kept_alive_connections_are_reused_and_closed_with_the_pool(
    servers: Callable[..., Server], no_env_proxy: pytest.MonkeyPatch
) -> None:
    async def keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()

    server = servers(keep_alive)
    cfg = config(f"http://127.0.0.1:{server.port}/", reuse_connections=True)
    before = open_sockets()
    async with ClientPool(cfg) as pool:
        results = [
            await run_probe(cfg, cfg.targets[0], "http", pool, Redactor()) for _ in range(50)
        ]
        assert all(r.ok for r in results), [r.detail for r in results if not r.ok]
        # One connection for all: only the first probe connected.
        assert results[0].connect_ms is not None
        assert all(r.connect_ms is None for r in results[1:])
        assert all(r.ttfb_ms is not None and r.ttfb_ms >= 0 for r in results)
    assert await settled_sockets(before) <= before


def test_a_close_notify_read_with_the_last_response_makes_the_connection_readable(
    pki: Pki,
) -> None:
    server_ctx = pki.leaf("notify", "IP:127.0.0.1")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1024)
            # Corked: the response and the close_notify leave in one segment, and the TCP
            # connection stays open (no FIN), as a server that half-closes TLS only.
            tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            tls.sendall(response)
            tls.settimeout(0.3)
            with contextlib.suppress(OSError):
                tls.unwrap()  # sends close_notify, then waits in vain for ours
            tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            time.sleep(1)

    async def client() -> bool:
        stream = await ArrivalBackend().connect_tcp("127.0.0.1", port, timeout=5)
        tls = await stream.start_tls(pki.client(), server_hostname="127.0.0.1", timeout=5)
        try:
            await tls.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", timeout=5)
            await asyncio.sleep(0.5)  # both records are in before the read
            assert await tls.read(65536, timeout=5) == response
            return bool(tls.get_extra_info("is_readable"))
        finally:
            await tls.aclose()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        # httpcore asks this before reusing an idle connection: True makes it open a new one
        # instead of sending the next request into a closed TLS session (a false disconnect).
        assert asyncio.run(client()) is True
    finally:
        thread.join(timeout=5)
        listener.close()
