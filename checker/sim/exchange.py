"""One request/response cycle: timed writes, waits that notice a departed client, faults.

Token schedule: token i (0-based, reasoning tokens first) is written at the absolute
deadline `received + ttft + i * inter_token` on the loop clock, so delays never drift.
Timing stamps are taken immediately before bytes go to the socket, so a client that has
seen a byte always finds the matching stamp already set.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from checker.sim.behaviour import Behavior, TokenPlan
from checker.sim.dialects import Dialect, ErrorShape
from checker.sim.routes import DEFAULT_ROUTE, Registry, Timing

__all__ = [
    "EXCHANGE_KEY",
    "Exchange",
    "prelude",
    "received_credential",
    "run_stream",
    "send_body",
]

# Large enough to trip any sane body limit, generated lazily so the server never holds it.
HUGE_BODY_BYTES = 64 * 1024 * 1024
HUGE_PIECE = "x" * (64 * 1024)
# Waits are sliced so a handler notices a client that went away (stall of 30 s, long TTFT).
WAIT_SLICE_S = 0.1

_NOT_JSON_BODY = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>simulated proxy error page</p></body></html>"
)


class _ClientGone(ConnectionResetError):
    """The client closed the connection while the handler was waiting."""


class Exchange:
    """Writes one response, stamping Timing immediately before bytes reach the socket."""

    def __init__(self, registry: Registry, request: web.Request, endpoint: str) -> None:
        self.registry = registry
        self.request = request
        self.route = request.match_info.get("route", DEFAULT_ROUTE)
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.timing = Timing(self.route, endpoint, time.perf_counter())
        self.resp: web.StreamResponse | None = None
        request[EXCHANGE_KEY] = self
        registry.begin(self.route, endpoint, self.timing)

    def at(self, delay_ms: float) -> float:
        """Loop-clock deadline `delay_ms` after the request was received."""
        return self.t0 + delay_ms / 1000

    @property
    def client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def sleep_until(self, deadline: float) -> None:
        while True:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return
            if self.client_gone:
                raise _ClientGone("client went away")
            await asyncio.sleep(min(remaining, WAIT_SLICE_S))

    async def start(
        self,
        status: int = 200,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_type = content_type
        if length is not None:
            resp.content_length = length
        self.resp = resp
        self.registry.status(self.route, status)
        self.timing.headers_sent = time.perf_counter()
        await resp.prepare(self.request)

    async def write(self, data: bytes, *, tokens: int = 0, answer: bool = True) -> None:
        assert self.resp is not None
        now = time.perf_counter()
        if tokens and self.timing.first_token_sent is None:
            self.timing.first_token_sent = now
        if tokens and answer and self.timing.first_answer_sent is None:
            self.timing.first_answer_sent = now
        if tokens:
            self.timing.token_times.append(now)
        self.timing.tokens_sent += tokens
        self.timing.last_byte_sent = now
        await self.resp.write(data)

    async def finish(self) -> web.StreamResponse:
        assert self.resp is not None
        self.timing.last_byte_sent = time.perf_counter()
        await self.resp.write_eof()
        self.registry.completed(self.route)
        return self.resp

    async def abort(self) -> web.StreamResponse:
        """Drop the TCP connection mid-body, after what was written has left the buffer."""
        assert self.resp is not None
        transport = self.request.transport
        if transport is not None:
            # Polled (bounded to ~1 s): asyncio offers no event for "write buffer empty".
            for _ in range(1000):
                if not transport.get_write_buffer_size():
                    break
                await asyncio.sleep(0.001)
            transport.abort()
        return self.resp

    async def send_json(
        self, status: int, body: object, headers: dict[str, str] | None = None
    ) -> web.StreamResponse:
        data = json.dumps(body).encode()
        await self.start(status, headers=headers, length=len(data))
        await self.write(data)
        return await self.finish()


EXCHANGE_KEY = web.RequestKey("sim_exchange", Exchange)


def _retry_headers(b: Behavior) -> dict[str, str]:
    headers: dict[str, str] = {}
    if b.retry_after is not None:
        headers["Retry-After"] = b.retry_after
    if b.retry_after_ms is not None:
        headers["retry-after-ms"] = b.retry_after_ms
    return headers


def received_credential(request: web.Request) -> str | None:
    return request.headers.get("Authorization") or request.headers.get("x-api-key")


async def prelude(ex: Exchange, b: Behavior, shape: ErrorShape) -> web.StreamResponse | None:
    """Header delay, status faults and HTML pages; returns the response when it is done."""
    await ex.sleep_until(ex.at(b.headers_delay_ms))
    if b.status != 200:
        message = b.error_message or f"simulated error {b.status}"
        credential = received_credential(ex.request)
        if b.echo_auth and credential:
            # Like careless relays do; the checker must redact this.
            message = f"{message} (request authorization: {credential})"
        return await ex.send_json(
            b.status, shape(b.status, message, b.error_code), _retry_headers(b)
        )
    if b.fault == "not_json":
        await ex.start(200, content_type="text/html", length=len(_NOT_JSON_BODY))
        await ex.write(_NOT_JSON_BODY)
        return await ex.finish()
    return None


async def _send_huge_json(ex: Exchange) -> web.StreamResponse:
    await ex.start(200)
    await ex.write(b'{"padding":"')
    piece = HUGE_PIECE.encode()
    for _ in range(HUGE_BODY_BYTES // len(piece)):
        await ex.write(piece)
    await ex.write(b'"}')
    return await ex.finish()


async def send_body(
    ex: Exchange,
    b: Behavior,
    body: object,
    *,
    ready_at: float,
    tokens: int,
    error_body: object,
) -> web.StreamResponse:
    """A complete JSON response at `ready_at`, or the configured fault in its place."""
    await ex.sleep_until(ready_at)
    fault = b.fault
    if fault == "huge":
        return await _send_huge_json(ex)
    data = json.dumps(body if fault != "stream_error" else error_body).encode()
    if fault == "malformed":
        data = b"{not json"
    half = data[: len(data) // 2]
    if fault == "truncate":
        await ex.start(200)  # chunked, ended cleanly: the JSON is simply cut short
        await ex.write(half)
        return await ex.finish()
    if fault == "disconnect":
        await ex.start(200, length=len(data))
        await ex.write(half)
        return await ex.abort()
    if fault == "stall":
        await ex.start(200)
        await ex.write(half)
        await ex.sleep_until(ex.loop.time() + b.stall_s)
        return await ex.finish()
    await ex.start(200, length=len(data))
    await ex.write(data, tokens=tokens)
    return await ex.finish()


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_STREAM_FAULTS = frozenset({"truncate", "disconnect", "stall", "malformed", "stream_error"})


async def run_stream(
    ex: Exchange, b: Behavior, plan: TokenPlan, dialect: Dialect
) -> web.StreamResponse:
    await ex.start(200, content_type="text/event-stream", headers=_SSE_HEADERS)
    for data in dialect.opening():
        await ex.write(data)
    for i in range(b.empty_deltas):
        await ex.write(dialect.empty_delta(i))
    first_deadline = ex.at(b.ttft_ms)
    if b.keepalive_every_ms:
        period = b.keepalive_every_ms / 1000
        next_keepalive = ex.loop.time() + period
        while next_keepalive < first_deadline:
            await ex.sleep_until(next_keepalive)
            await ex.write(dialect.keepalive())
            next_keepalive += period
    if b.fault == "huge":
        return await _stream_huge(ex, dialect)

    fault_at = min(b.fault_after_tokens, plan.total) if b.fault in _STREAM_FAULTS else None
    for i, (kind, text) in enumerate(plan.tokens()):
        await ex.sleep_until(ex.at(b.ttft_ms + i * b.inter_token_ms))
        if i == fault_at and (ended := await _stream_fault(ex, b, dialect)):
            return ended
        await ex.write(dialect.token(kind, text), tokens=1, answer=kind != "reasoning")
    if plan.total == 0:
        await ex.sleep_until(first_deadline)
    if fault_at == plan.total and (ended := await _stream_fault(ex, b, dialect)):
        return ended
    for data in dialect.closing():
        await ex.write(data)
    return await ex.finish()


async def _stream_fault(ex: Exchange, b: Behavior, dialect: Dialect) -> web.StreamResponse | None:
    """Inject the fault; returns the response when the stream ends here."""
    if b.fault == "truncate":
        return await ex.finish()
    if b.fault == "disconnect":
        return await ex.abort()
    if b.fault == "stall":
        await ex.sleep_until(ex.loop.time() + b.stall_s)
        return await ex.finish()
    if b.fault == "malformed":
        await ex.write(dialect.malformed())
        return None
    await ex.write(dialect.stream_error())
    return await ex.finish()


async def _stream_huge(ex: Exchange, dialect: Dialect) -> web.StreamResponse:
    sent = 0
    while sent < HUGE_BODY_BYTES:
        data = dialect.token("content", HUGE_PIECE)
        await ex.write(data, tokens=1)
        sent += len(data)
    for data in dialect.closing():
        await ex.write(data)
    return await ex.finish()
