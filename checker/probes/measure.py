"""HTTP plumbing for probes: one reusable client per target, and a measured exchange.

Clients (and their TLS contexts) are built once, outside any measurement: building an
httpx client costs tens of milliseconds that would otherwise land inside ttft. By default
a client keeps no idle connections, so every probe opens a fresh one and DNS, connect and
TLS are measured and their failures seen; `reuse_connections: true` keeps them warm.

What the clock measures (the same with fresh and with reused connections):

- t0 is the moment the request's first byte is handed to the kernel, after DNS, connect
  and TLS (those are `connect_ms`, from httpcore's trace, measured on its own).
- ttfb, ttft and latency end when the bytes that completed the response headers, the
  first event carrying generated text, and the end marker (else the last byte) reached
  this host's network stack: the kernel's receive timestamp of the read that brought
  them (checker/probes/arrival.py), on the same monotonic clock as t0.

So a reading is the route's time from request to answer, and not the time this process
needed to get around to the bytes: with many probes in flight on one core, an event can
wait in the loop's queue long after it arrived, and that wait is the checker's, not the
route's. Without kernel timestamps (not Linux) the ends are when the loop took the bytes
from the socket. On Windows, and for every URL a proxy from the environment applies to
(HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, minus NO_PROXY: httpx's own rules), httpx's own
transport is used: t0 is then taken just before the request is sent (connect included)
and the ends when the reader sees the bytes.

Readers here enforce the body limits while streaming, so a hostile endpoint can never
make the checker buffer an unbounded body.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import json
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

import httpcore
import httpx
from httpx_sse import EventSource, ServerSentEvent

from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.classify import (
    ProbeFailure,
    Verdict,
    classify_status,
    error_fields,
    excerpt,
    kind_for_status,
    short_detail,
)
from checker.probes.transport.arrival import SUPPORTED, ArrivalBackend, ArrivalClock, stream_clock

if TYPE_CHECKING:
    from checker.config.schema import Config, Target

USER_AGENT = "checker/0.1 (synthetic monitor)"
# An error body only feeds the detail line; more than this is never needed.
ERROR_BODY_BYTES = 64 * 1024
# Parsing more than this on the event loop would stall concurrent probes' clocks.
OFF_LOOP_BYTES = 128 * 1024

T = TypeVar("T")
R = TypeVar("R")


# --- client pool ----------------------------------------------------------------------------


@functools.cache
def tls_context(verify: bool) -> ssl.SSLContext:
    """Shared by every client: loading the CA bundle is the slow part of building one."""
    return httpx.create_ssl_context(verify=verify)


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


# --- measured exchange ----------------------------------------------------------------------


class ConnectTrace:
    """httpcore trace hook: when a new connection was opened, how long it took."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.connected: float | None = None

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.started":
            self.started = perf_counter()
        elif name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.connected = perf_counter()

    @property
    def connect_ms(self) -> float | None:
        """DNS + TCP (+ TLS) of a fresh connection; None when a kept-alive one was reused."""
        if self.started is None or self.connected is None:
            return None
        return (self.connected - self.started) * 1000.0


@dataclass(slots=True)
class Exchange:
    """A sent request whose response headers arrived; times are ms since it was sent."""

    response: httpx.Response
    t0: float
    clock: ArrivalClock | None = None

    def arrived(self) -> float:
        """When the bytes read last reached this host (now, without a stamping stream)."""
        return arrival(self.clock)

    def ms(self, at: float | None = None) -> float:
        """ms from the request to `at`, by default to the arrival of the last bytes read."""
        return ((self.arrived() if at is None else at) - self.t0) * 1000.0


def arrival(clock: ArrivalClock | None) -> float:
    if clock is None or clock.arrived_at is None:
        return perf_counter()
    return clock.arrived_at


@asynccontextmanager
async def exchange(
    client: httpx.AsyncClient, request: httpx.Request, result: ProbeResult
) -> AsyncIterator[Exchange]:
    """Send `request` and stream its response; records connect_ms, ttfb_ms and status."""
    trace = ConnectTrace()
    request.extensions["trace"] = trace
    before = perf_counter()
    try:
        response = await client.send(request, stream=True)
    finally:
        result.connect_ms = trace.connect_ms
    try:
        clock = stream_clock(response.extensions.get("network_stream"))
        sent = None if clock is None else clock.request_sent_at
        # A stamp from before this call would be another request's: never trust it.
        ex = Exchange(response, sent if sent is not None and sent >= before else before, clock)
        result.ttfb_ms = ex.ms()
        result.status = response.status_code
        yield ex
    finally:
        await response.aclose()


def _declared_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _too_large(limit: int) -> ProbeFailure:
    return ProbeFailure(ErrorKind.too_large, f"response body over {limit} bytes")


async def read_capped(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """The (decoded) body, read no further than `limit` bytes: beyond it, either stop
    (`truncate`, for error bodies that only feed a message) or raise too_large."""
    declared = _declared_length(response)
    if declared is not None and declared > limit and not truncate:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if truncate:
                parts.append(chunk[: len(chunk) - (size - limit)])
                break
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def read_error_text(response: httpx.Response, limit: int) -> str:
    body = await read_capped(response, min(limit, ERROR_BODY_BYTES), truncate=True)
    return body.decode("utf-8", errors="replace")


class CappedText:
    """What httpx_sse.EventSource reads (headers, aiter_text) with max_body_bytes enforced
    as bytes arrive, so even one endless line without a newline is never buffered whole."""

    def __init__(self, response: httpx.Response, limit: int) -> None:
        self._response = response
        self._limit = limit
        self.bytes_read = 0

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    async def aiter_text(self) -> AsyncIterator[str]:
        # SSE is UTF-8 by definition, whatever the charset header claims.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self._response.aiter_bytes():
            self.bytes_read += len(chunk)
            if self.bytes_read > self._limit:
                raise _too_large(self._limit)
            if text := decoder.decode(chunk):
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail


# After the end marker, how long a stream may take to close so its connection can be reused.
DRAIN_S = 1.0


class EventStream:
    """The SSE events of a streamed response, each with its arrival time, within limits.

    An event's arrival time is that of the read that completed it: the stream is read
    only when the SSE parser needs more bytes, so that is always the latest read.

    The consumer calls `end()` at the protocol's end marker ([DONE], message_stop): no
    further events are yielded. With `drain` (reuse_connections) the rest of the body is
    still read, briefly and ignoring errors, because httpx only returns a connection to
    the pool once its response was read to the end.
    """

    def __init__(
        self, response: httpx.Response, max_bytes: int, max_events: int, *, drain: bool
    ) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self._max_events = max_events
        self._drain = drain
        self._clock = stream_clock(response.extensions.get("network_stream"))
        self.ended_at: float | None = None

    def end(self) -> None:
        """The event just yielded ends the stream: it arrived with the latest read."""
        self.ended_at = arrival(self._clock)

    async def events(self) -> AsyncIterator[tuple[float, ServerSentEvent]]:
        source = EventSource(CappedText(self._response, self._max_bytes))  # type: ignore[arg-type]
        count = 0
        try:
            async with asyncio.timeout(None) as window:
                async for sse in source.aiter_sse():
                    if self.ended_at is not None:
                        continue  # draining
                    count += 1
                    if count > self._max_events:
                        raise ProbeFailure(
                            ErrorKind.too_large, f"stream over {self._max_events} events"
                        )
                    yield arrival(self._clock), sse
                    if self.ended_at is not None:
                        if not self._drain:
                            return
                        window.reschedule(asyncio.get_running_loop().time() + DRAIN_S)
        except (TimeoutError, httpx.HTTPError, ProbeFailure):
            if self.ended_at is None:
                raise  # a failure of the stream itself, not of the optional drain


@dataclass(slots=True)
class StreamClock:
    """Per-chunk timing of a stream: ttft, chunk count and the largest gap after TTFT.

    Only chunks that carry generated text start the clock for ttft; role-only chunks,
    keep-alive comments (never seen as events) and empty deltas do not.
    """

    t0: float
    chunks: int = 0
    first_token: float | None = None
    last_chunk: float | None = None
    max_gap: float = 0.0
    output_chars: int = 0
    parts: list[str] = field(default_factory=list)

    def chunk(self, at: float, text: str) -> None:
        self.chunks += 1
        if self.first_token is not None and self.last_chunk is not None:
            self.max_gap = max(self.max_gap, at - self.last_chunk)
        if text:
            self.output_chars += len(text)
            self.parts.append(text)
            if self.first_token is None:
                self.first_token = at
        self.last_chunk = at

    def record(self, result: ProbeResult) -> None:
        """Copy what the stream showed into the result (also after a stall or deadline)."""
        result.ttft_ms = self.ttft_ms()
        result.chunks = self.chunks
        result.max_gap_ms = self.max_gap_ms()
        result.output_chars = self.output_chars
        result.output_text = "".join(self.parts)

    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.t0) * 1000.0

    def max_gap_ms(self) -> float | None:
        return None if self.first_token is None else self.max_gap * 1000.0


def tokens_per_s(
    completion_tokens: int | None, ttft_ms: float | None, latency_ms: float | None
) -> float | None:
    """Decode speed after the first token: (completion_tokens - 1) / (latency - ttft)."""
    if completion_tokens is None or ttft_ms is None or latency_ms is None:
        return None
    if completion_tokens < 2 or latency_ms <= ttft_ms:
        return None
    return (completion_tokens - 1) / ((latency_ms - ttft_ms) / 1000.0)


# --- shared response handling ---------------------------------------------------------------


async def fail_on_status(
    ex: Exchange, result: ProbeResult, max_body_bytes: int, redact: Callable[[str], str]
) -> bool:
    """Classify a non-2xx response (reading a capped error body); False when it is 2xx."""
    status = ex.response.status_code
    if 200 <= status < 300:
        return False
    text = await read_error_text(ex.response, max_body_bytes)
    result.latency_ms = ex.ms()
    verdict = classify_status(status, text, ex.response.headers, redact=redact)
    if verdict is None:  # 1xx never reaches us; treat anything odd as a bad answer
        verdict = Verdict(ErrorKind.bad_response, f"unexpected HTTP {status}")
    result.retry_after_s = verdict.retry_after_s
    result.fail(verdict.kind, verdict.detail)
    return True


async def off_loop(fn: Callable[[T], R], arg: T, size: int) -> R:
    """Run CPU work on a big input in a thread: a blocked event loop would add its time to
    every concurrent probe's measurements (e.g. a 1 MB model list from a relay)."""
    if size < OFF_LOOP_BYTES:
        return fn(arg)
    return await asyncio.to_thread(fn, arg)


async def read_json(
    ex: Exchange, result: ProbeResult, max_body_bytes: int, redact: Callable[[str], str]
) -> Any:
    """The whole (capped) body parsed as JSON; sets latency_ms at its last byte."""
    body = await read_capped(ex.response, max_body_bytes)
    result.latency_ms = ex.ms()
    try:
        return await off_loop(json.loads, body, len(body))
    except ValueError:
        start = excerpt(body[:8192].decode("utf-8", errors="replace"), redact)
        raise ProbeFailure(ErrorKind.bad_response, f"body is not JSON: {start}") from None


def check_model(result: ProbeResult, expect_model: str | None) -> None:
    """`model_mismatch` when the returned model does not fully match `expect_model`."""
    if expect_model is None:
        return
    if result.model is None or not re.fullmatch(expect_model, result.model):
        result.fail(
            ErrorKind.model_mismatch,
            f"returned model {result.model!r} does not match {expect_model!r}",
        )


def error_in_body(
    doc: Any, redact: Callable[[str], str], label: str = "error in body"
) -> Verdict | None:
    """An `error` object inside a 2xx body (relays do this): classified by its numeric code
    when it has one, else as a server error."""
    if not isinstance(doc, dict) or not doc.get("error"):
        return None
    message, etype, code = error_fields(doc)
    status = int(code) if code is not None and code.isdigit() else 500
    kind = kind_for_status(status, message or "", etype, code) or ErrorKind.server_error
    if code or etype:
        label += f" ({code or etype})"
    return Verdict(kind, short_detail(f"{label}: {message or ''}", redact))
