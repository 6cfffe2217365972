"""Simulated OpenAI- and Anthropic-compatible endpoint with exact, scriptable behaviour.

A real aiohttp server on loopback. Tests, `make demo` and the benchmarks point probes at it
to get known latencies (TTFT, inter-token delay), known token counts and every fault a real
route can produce, so the checker's measurements and classifications can be verified
against ground truth (`SimServer.timings()`).

URL layout: `/v1/...` is route "default", `/<route>/v1/...` any other route. Each route
has a standing Behavior and an optional script queue consumed one Behavior per chat or
messages request. Control works from Python (`SimServer.set/script/stats`) and over HTTP
(`/_sim/...`) for a simulator running in another process.

Token schedule: token i (0-based, reasoning tokens first) is written at the absolute
deadline `received + ttft + i * inter_token` on the loop clock, so delays never drift.
Timing stamps are taken immediately before bytes go to the socket, so a client that has
seen a byte always finds the matching stamp already set.

Answer splitting: a non-empty `answer` (or the sum for "What is A + B") is cut into
min(completion_tokens, len(answer)) pieces of near-equal length by characters. A short
answer therefore yields fewer content tokens than `completion_tokens`; usage reports the
tokens actually sent (plus reasoning tokens) unless `reported_completion_tokens` is set.
`max_tokens` in the request is ignored: only the Behavior decides what is generated.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import re
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, get_args

from aiohttp import web

Fault = Literal[
    "truncate", "disconnect", "stall", "malformed", "stream_error", "huge", "empty", "not_json"
]
FAULTS: frozenset[str] = frozenset(get_args(Fault))
CACHE_STYLES: frozenset[str] = frozenset({"openai", "deepseek"})
ROUTE_PATTERN = "[a-z0-9-]+"
DEFAULT_ROUTE = "default"
MAX_TIMINGS = 10_000
# Large enough to trip any sane body limit, generated lazily so the server never holds it.
HUGE_BODY_BYTES = 64 * 1024 * 1024
HUGE_PIECE = "x" * (64 * 1024)
# Waits are sliced so a handler notices a client that went away (stall of 30 s, long TTFT).
WAIT_SLICE_S = 0.1
SHUTDOWN_TIMEOUT_S = 0.5

_ROUTE_RE = re.compile(rf"^{ROUTE_PATTERN}$")
_SUM_RE = re.compile(r"What is (\d+) \+ (\d+)")
_NOT_JSON_BODY = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>simulated proxy error page</p></body></html>"
)

_NONNEG_FLOATS = ("ttft_ms", "inter_token_ms", "headers_delay_ms", "stall_s")
_NONNEG_INTS = (
    "completion_tokens",
    "reasoning_tokens",
    "prompt_tokens",
    "cached_tokens",
    "empty_deltas",
    "fault_after_tokens",
)
_OPTIONAL_STRS = ("answer", "model", "error_code", "error_message", "retry_after", "retry_after_ms")
_BOOLS = ("usage", "role_chunk", "echo_auth")


def _default_models() -> list[str]:
    return ["sim-small", "sim-large"]


@dataclass
class Behavior:
    """How a route answers. Every field is JSON-able; see the module docstring for timing."""

    ttft_ms: float = 50
    inter_token_ms: float = 5
    completion_tokens: int = 10
    reported_completion_tokens: int | None = None
    reasoning_tokens: int = 0
    prompt_tokens: int = 12
    cached_tokens: int = 0
    cache_style: Literal["openai", "deepseek"] = "openai"
    answer: str | None = None
    usage: bool = True
    role_chunk: bool = True
    keepalive_every_ms: float | None = None
    empty_deltas: int = 0
    model: str | None = None
    models: list[str] = field(default_factory=_default_models)
    status: int = 200
    error_code: str | None = None
    error_message: str | None = None
    retry_after: str | None = None
    retry_after_ms: str | None = None
    echo_auth: bool = True
    headers_delay_ms: float = 0
    fault: Fault | None = None
    fault_after_tokens: int = 3
    stall_s: float = 30

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Behavior:
        """Build from a partial dict (unspecified fields default); unknown keys are errors."""
        if not isinstance(data, dict):
            raise ValueError("behavior must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown behavior field(s): {', '.join(unknown)}")
        values = dict(data)
        if isinstance(values.get("models"), list):
            values["models"] = list(values["models"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate(b: Behavior) -> None:
    def fail(name: str, expected: str) -> None:
        raise ValueError(f"behavior.{name}: expected {expected}, got {getattr(b, name)!r}")

    for name in _NONNEG_FLOATS:
        value = getattr(b, name)
        if not _is_number(value) or value < 0:
            fail(name, "a number >= 0")
    for name in _NONNEG_INTS:
        value = getattr(b, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            fail(name, "an integer >= 0")
    for name in _OPTIONAL_STRS:
        if getattr(b, name) is not None and not isinstance(getattr(b, name), str):
            fail(name, "a string or null")
    for name in _BOOLS:
        if not isinstance(getattr(b, name), bool):
            fail(name, "true or false")
    rct = b.reported_completion_tokens
    if rct is not None and (not isinstance(rct, int) or isinstance(rct, bool) or rct < 0):
        fail("reported_completion_tokens", "an integer >= 0 or null")
    ka = b.keepalive_every_ms
    if ka is not None and (not _is_number(ka) or ka <= 0):
        fail("keepalive_every_ms", "a number > 0 or null")
    if not isinstance(b.status, int) or isinstance(b.status, bool) or not 100 <= b.status <= 599:
        fail("status", "an HTTP status 100..599")
    if b.cache_style not in CACHE_STYLES:
        fail("cache_style", "one of " + ", ".join(sorted(CACHE_STYLES)))
    if b.fault is not None and b.fault not in FAULTS:
        fail("fault", "null or one of " + ", ".join(sorted(FAULTS)))
    if not isinstance(b.models, list) or not all(isinstance(m, str) for m in b.models):
        fail("models", "a list of strings")
    if b.cached_tokens > b.prompt_tokens:
        fail("cached_tokens", f"at most prompt_tokens ({b.prompt_tokens})")


# --- what to generate (pure) ------------------------------------------------------------


def split_even(text: str, pieces: int) -> list[str]:
    """Cut text into min(pieces, len(text)) contiguous parts whose lengths differ by <= 1."""
    if not text or pieces <= 0:
        return []
    count = min(pieces, len(text))
    size, extra = divmod(len(text), count)
    parts: list[str] = []
    pos = 0
    for i in range(count):
        step = size + (1 if i < extra else 0)
        parts.append(text[pos : pos + step])
        pos += step
    return parts


def known_answer(prompt: str) -> str | None:
    """The sum when the prompt asks "What is A + B", so a known-answer probe can pass."""
    match = _SUM_RE.search(prompt)
    return str(int(match.group(1)) + int(match.group(2))) if match else None


@dataclass(frozen=True)
class TokenPlan:
    reasoning: list[str]
    content: list[str]
    completion_tokens: int  # as reported in usage

    @property
    def total(self) -> int:
        return len(self.reasoning) + len(self.content)

    def tokens(self) -> Iterator[tuple[str, str]]:
        for text in self.reasoning:
            yield "reasoning", text
        for text in self.content:
            yield "content", text


# Each is exactly one token, with or without its leading space, in OpenAI's o200k and
# cl100k encodings: so the default text holds exactly as many real tokens as usage reports.
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def plan_tokens(b: Behavior, prompt: str) -> TokenPlan:
    if b.fault == "empty":
        reasoning: list[str] = []
        content: list[str] = []
    else:
        reasoning = [f"{' ' if i else ''}think{i + 1}" for i in range(b.reasoning_tokens)]
        answer = b.answer if b.answer is not None else known_answer(prompt)
        if answer is not None:
            content = split_even(answer, b.completion_tokens)
        else:
            content = [
                f"{' ' if i else ''}{NUMBER_WORDS[i % len(NUMBER_WORDS)]}"
                for i in range(b.completion_tokens)
            ]
    reported = b.reported_completion_tokens
    completion = reported if reported is not None else len(reasoning) + len(content)
    return TokenPlan(reasoning, content, completion)


def openai_usage(b: Behavior, plan: TokenPlan) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": b.prompt_tokens,
        "completion_tokens": plan.completion_tokens,
        "total_tokens": b.prompt_tokens + plan.completion_tokens,
        "completion_tokens_details": {"reasoning_tokens": len(plan.reasoning)},
    }
    if b.cache_style == "deepseek":
        usage["prompt_cache_hit_tokens"] = b.cached_tokens
        usage["prompt_cache_miss_tokens"] = b.prompt_tokens - b.cached_tokens
    else:
        usage["prompt_tokens_details"] = {"cached_tokens": b.cached_tokens}
    return usage


def anthropic_usage(b: Behavior, plan: TokenPlan) -> dict[str, Any]:
    # Anthropic counts cache reads apart from input_tokens.
    return {
        "input_tokens": b.prompt_tokens - b.cached_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": b.cached_tokens,
        "output_tokens": plan.completion_tokens,
    }


def last_user_text(messages: object) -> str:
    """Text of the last user message; content may be a string or a list of text parts."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return " ".join(
                part.get("text", "")
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
        return ""
    return ""


def sse(data: object, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def openai_error(status: int, message: str, code: str | None) -> dict[str, Any]:
    kind = _OPENAI_ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request")
    if code == "insufficient_quota":
        kind = "insufficient_quota"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def anthropic_error(status: int, message: str, code: str | None) -> dict[str, Any]:
    kind = code or _ANTHROPIC_ERROR_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    return {"type": "error", "error": {"type": kind, "message": message}}


OPENAI_STREAM_ERROR = {
    "error": {"message": "simulated error in the stream", "type": "server_error"}
}

ErrorShape = Callable[[int, str, str | None], dict[str, Any]]


def _health_error(status: int, message: str, code: str | None) -> dict[str, Any]:
    return {"status": "error", "message": message}


# --- ground truth and per-route state ---------------------------------------------------


@dataclass
class Timing:
    """Server-side ground truth of one request; time.perf_counter() values (monotonic)."""

    route: str
    endpoint: str
    received: float
    headers_sent: float | None = None
    first_token_sent: float | None = None
    last_byte_sent: float | None = None
    tokens_sent: int = 0

    @property
    def ttft_ms(self) -> float | None:
        if self.first_token_sent is None:
            return None
        return (self.first_token_sent - self.received) * 1000

    @property
    def duration_ms(self) -> float | None:
        if self.last_byte_sent is None:
            return None
        return (self.last_byte_sent - self.received) * 1000


@dataclass
class _Route:
    standing: Behavior = field(default_factory=Behavior)
    script: deque[Behavior] = field(default_factory=deque)
    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    completed: int = 0


def _check_route(route: str) -> None:
    if not isinstance(route, str) or not _ROUTE_RE.match(route):
        raise ValueError(f"route name must match {ROUTE_PATTERN}: {route!r}")


class _Registry:
    """Routes, scripts, counters and timings; shared by the server loop and other threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[str, _Route] = {}
        self._timings: deque[Timing] = deque(maxlen=MAX_TIMINGS)

    def _route(self, name: str) -> _Route:
        route = self._routes.get(name)
        if route is None:
            route = self._routes[name] = _Route()
        return route

    def set(self, name: str, behavior: Behavior) -> None:
        with self._lock:
            self._route(name).standing = behavior

    def script(self, name: str, behaviors: list[Behavior]) -> None:
        with self._lock:
            self._route(name).script = deque(behaviors)

    def standing(self, name: str) -> Behavior:
        with self._lock:
            return self._route(name).standing

    def next_for_chat(self, name: str) -> Behavior:
        with self._lock:
            route = self._route(name)
            return route.script.popleft() if route.script else route.standing

    def begin(self, name: str, endpoint: str, timing: Timing) -> None:
        with self._lock:
            self._route(name).requests[endpoint] += 1
            self._timings.append(timing)

    def status(self, name: str, status: int) -> None:
        with self._lock:
            self._route(name).statuses[status] += 1

    def completed(self, name: str) -> None:
        with self._lock:
            self._route(name).completed += 1

    def stats(self, name: str | None) -> dict[str, Any]:
        with self._lock:
            names = [name] if name is not None else list(self._routes)
            requests: Counter[str] = Counter()
            statuses: Counter[int] = Counter()
            completed = 0
            for n in names:
                route = self._routes.get(n)
                if route is not None:
                    requests.update(route.requests)
                    statuses.update(route.statuses)
                    completed += route.completed
            return {"requests": dict(requests), "status": dict(statuses), "completed": completed}

    def route_names(self) -> list[str]:
        with self._lock:
            return list(self._routes)

    def timings(self, name: str | None) -> list[Timing]:
        with self._lock:
            return [dataclasses.replace(t) for t in self._timings if name in (None, t.route)]

    def reset_stats(self) -> None:
        with self._lock:
            self._timings.clear()
            for route in self._routes.values():
                route.requests.clear()
                route.statuses.clear()
                route.completed = 0


# --- one request/response exchange -------------------------------------------------------


class _ClientGone(ConnectionResetError):
    """The client closed the connection while the handler was waiting."""


class _Exchange:
    """Writes one response, stamping Timing immediately before bytes reach the socket."""

    def __init__(self, registry: _Registry, request: web.Request, endpoint: str) -> None:
        self.registry = registry
        self.request = request
        self.route = request.match_info.get("route", DEFAULT_ROUTE)
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.timing = Timing(self.route, endpoint, time.perf_counter())
        self.resp: web.StreamResponse | None = None
        request[_EXCHANGE_KEY] = self
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

    async def write(self, data: bytes, *, tokens: int = 0) -> None:
        assert self.resp is not None
        now = time.perf_counter()
        if tokens and self.timing.first_token_sent is None:
            self.timing.first_token_sent = now
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


_EXCHANGE_KEY = web.RequestKey("sim_exchange", _Exchange)


def _retry_headers(b: Behavior) -> dict[str, str]:
    headers: dict[str, str] = {}
    if b.retry_after is not None:
        headers["Retry-After"] = b.retry_after
    if b.retry_after_ms is not None:
        headers["retry-after-ms"] = b.retry_after_ms
    return headers


def _received_credential(request: web.Request) -> str | None:
    return request.headers.get("Authorization") or request.headers.get("x-api-key")


async def _prelude(ex: _Exchange, b: Behavior, shape: ErrorShape) -> web.StreamResponse | None:
    """Header delay, status faults and HTML pages; returns the response when it is done."""
    await ex.sleep_until(ex.at(b.headers_delay_ms))
    if b.status != 200:
        message = b.error_message or f"simulated error {b.status}"
        credential = _received_credential(ex.request)
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


async def _send_huge_json(ex: _Exchange) -> web.StreamResponse:
    await ex.start(200)
    await ex.write(b'{"padding":"')
    piece = HUGE_PIECE.encode()
    for _ in range(HUGE_BODY_BYTES // len(piece)):
        await ex.write(piece)
    await ex.write(b'"}')
    return await ex.finish()


async def _send_body(
    ex: _Exchange,
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


# --- streaming dialects -----------------------------------------------------------------


class _Dialect(Protocol):
    def opening(self) -> list[bytes]: ...
    def empty_delta(self, index: int) -> bytes: ...
    def keepalive(self) -> bytes: ...
    def token(self, kind: str, text: str) -> bytes: ...
    def malformed(self) -> bytes: ...
    def stream_error(self) -> bytes: ...
    def closing(self) -> list[bytes]: ...


class _OpenAIStream:
    def __init__(self, b: Behavior, plan: TokenPlan, ident: str, model: str, usage: bool) -> None:
        self.b = b
        self.plan = plan
        self.ident = ident
        self.model = model
        self.include_usage = usage
        self.created = int(time.time())

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.ident,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_sim",
            "choices": choices,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        body = self._envelope([choice])
        if self.include_usage:
            body["usage"] = None  # as OpenAI does on every chunk but the last
        return sse(body)

    def opening(self) -> list[bytes]:
        return [self._chunk({"role": "assistant", "content": ""})] if self.b.role_chunk else []

    def empty_delta(self, index: int) -> bytes:
        return self._chunk({} if index % 2 == 0 else {"content": ""})

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"

    def token(self, kind: str, text: str) -> bytes:
        key = "reasoning_content" if kind == "reasoning" else "content"
        return self._chunk({key: text})

    def malformed(self) -> bytes:
        return b"data: {not json\n\n"

    def stream_error(self) -> bytes:
        return sse(OPENAI_STREAM_ERROR)

    def closing(self) -> list[bytes]:
        parts = [self._chunk({}, "stop")]
        if self.include_usage:
            parts.append(sse(self._envelope([]) | {"usage": openai_usage(self.b, self.plan)}))
        parts.append(b"data: [DONE]\n\n")
        return parts


class _AnthropicStream:
    """Messages API events. Keep-alives and empty deltas are `ping` events, as Anthropic sends."""

    def __init__(self, b: Behavior, plan: TokenPlan, ident: str, model: str) -> None:
        self.b = b
        self.plan = plan
        self.ident = ident
        self.model = model
        self.block_kind: str | None = None
        self.block_index = -1

    def opening(self) -> list[bytes]:
        usage = anthropic_usage(self.b, self.plan) | {"output_tokens": 1}
        message = {
            "id": self.ident,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        return [sse({"type": "message_start", "message": message}, "message_start")]

    def empty_delta(self, index: int) -> bytes:
        return self.keepalive()

    def keepalive(self) -> bytes:
        return sse({"type": "ping"}, "ping")

    def _close_block(self) -> bytes:
        if self.block_kind is None:
            return b""
        out = b""
        if self.block_kind == "thinking":
            delta = {"type": "signature_delta", "signature": "sim-signature"}
            out += sse(
                {"type": "content_block_delta", "index": self.block_index, "delta": delta},
                "content_block_delta",
            )
        out += sse({"type": "content_block_stop", "index": self.block_index}, "content_block_stop")
        self.block_kind = None
        return out

    def token(self, kind: str, text: str) -> bytes:
        block = "thinking" if kind == "reasoning" else "text"
        out = b""
        if block != self.block_kind:
            out += self._close_block()
            self.block_index += 1
            self.block_kind = block
            start = (
                {"type": "thinking", "thinking": ""}
                if block == "thinking"
                else {
                    "type": "text",
                    "text": "",
                }
            )
            out += sse(
                {"type": "content_block_start", "index": self.block_index, "content_block": start},
                "content_block_start",
            )
        delta = (
            {"type": "thinking_delta", "thinking": text}
            if block == "thinking"
            else {"type": "text_delta", "text": text}
        )
        out += sse(
            {"type": "content_block_delta", "index": self.block_index, "delta": delta},
            "content_block_delta",
        )
        return out

    def malformed(self) -> bytes:
        return b"event: content_block_delta\ndata: {not json\n\n"

    def stream_error(self) -> bytes:
        error = {"type": "overloaded_error", "message": "simulated error in the stream"}
        return sse({"type": "error", "error": error}, "error")

    def closing(self) -> list[bytes]:
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        }
        if self.b.usage:
            delta["usage"] = {"output_tokens": self.plan.completion_tokens}
        closing = self._close_block()
        parts = [closing] if closing else []
        return [*parts, sse(delta, "message_delta"), sse({"type": "message_stop"}, "message_stop")]


_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_STREAM_FAULTS = frozenset({"truncate", "disconnect", "stall", "malformed", "stream_error"})


async def _run_stream(
    ex: _Exchange, b: Behavior, plan: TokenPlan, dialect: _Dialect
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
        await ex.write(dialect.token(kind, text), tokens=1)
    if plan.total == 0:
        await ex.sleep_until(first_deadline)
    if fault_at == plan.total and (ended := await _stream_fault(ex, b, dialect)):
        return ended
    for data in dialect.closing():
        await ex.write(data)
    return await ex.finish()


async def _stream_fault(ex: _Exchange, b: Behavior, dialect: _Dialect) -> web.StreamResponse | None:
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


async def _stream_huge(ex: _Exchange, dialect: _Dialect) -> web.StreamResponse:
    sent = 0
    while sent < HUGE_BODY_BYTES:
        data = dialect.token("content", HUGE_PIECE)
        await ex.write(data, tokens=1)
        sent += len(data)
    for data in dialect.closing():
        await ex.write(data)
    return await ex.finish()


# --- the server ---------------------------------------------------------------------------


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SimServer:
    """The simulator: many independent routes on one loopback port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> None:
        self.host = host
        self._requested_port = port
        self.api_key = api_key
        self._registry = _Registry()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # lifecycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._keep_quiet_on_disconnect])
        self._add_routes(app)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            # A stalled or slow handler would otherwise hold shutdown for its whole delay.
            for task in list(self._handlers):
                task.cancel()
            await self._runner.cleanup()
            self._runner = None

    def start_in_thread(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="checker-sim", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop_thread(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    # addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SimServer is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """Scheme, host and port without any path, e.g. for /health and /_sim."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, route: str = DEFAULT_ROUTE) -> str:
        _check_route(route)
        prefix = "" if route == DEFAULT_ROUTE else f"/{route}"
        return f"{self.root_url}{prefix}/v1"

    # control (thread-safe)

    def set(self, route: str, behavior: Behavior | None = None, **fields: Any) -> None:
        """Replace the route's standing behaviour; `fields` override `behavior` (or defaults)."""
        _check_route(route)
        base = behavior.to_dict() if behavior is not None else {}
        self._registry.set(route, Behavior.from_dict(base | fields))

    def script(self, route: str, behaviors: list[Behavior]) -> None:
        """Queue behaviours for the next chat/messages requests, one each, in order."""
        _check_route(route)
        self._registry.script(route, list(behaviors))

    def stats(self, route: str | None = None) -> dict[str, Any]:
        return self._registry.stats(route)

    def timings(self, route: str | None = None) -> list[Timing]:
        return self._registry.timings(route)

    def reset_stats(self) -> None:
        self._registry.reset_stats()

    # HTTP wiring

    def _add_routes(self, app: web.Application) -> None:
        r = f"/{{route:{ROUTE_PATTERN}}}"
        for prefix in ("", r):
            app.router.add_get(f"{prefix}/v1/models", self._models)
            app.router.add_post(f"{prefix}/v1/chat/completions", self._chat)
            app.router.add_post(f"{prefix}/v1/messages", self._messages)
            app.router.add_get(f"{prefix}/health", self._health)
        app.router.add_get(f"/_sim/routes{r}", self._control_get)
        app.router.add_put(f"/_sim/routes{r}", self._control_put)
        app.router.add_post(f"/_sim/routes{r}/script", self._control_script)
        app.router.add_get("/_sim/stats", self._control_stats)
        app.router.add_delete("/_sim/stats", self._control_reset)

    @web.middleware
    async def _keep_quiet_on_disconnect(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        # A client that hangs up mid-response is normal here (huge, stall, probes'
        # limits); hand aiohttp the prepared response instead of logging a traceback.
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            return await handler(request)
        except ConnectionError:
            exchange = request.get(_EXCHANGE_KEY)
            if exchange is not None and exchange.resp is not None:
                return exchange.resp
            return web.Response(status=499)
        finally:
            self._handlers.discard(task)

    def _authorized(self, request: web.Request, *, allow_x_api_key: bool) -> bool:
        if self.api_key is None:
            return True
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return True
        return allow_x_api_key and request.headers.get("x-api-key") == self.api_key

    async def _reject(self, ex: _Exchange, shape: ErrorShape) -> web.StreamResponse:
        message = "Incorrect API key provided"
        credential = _received_credential(ex.request)
        if self._registry.standing(ex.route).echo_auth:
            message = f"{message}: {credential or '(none)'}"
        return await ex.send_json(401, shape(401, message, "invalid_api_key"))

    async def _json_request(self, ex: _Exchange, shape: ErrorShape) -> dict[str, Any] | None:
        try:
            body = await ex.request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
        await ex.send_json(400, shape(400, "request body must be a JSON object", None))
        return None

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    async def _models(self, request: web.Request) -> web.StreamResponse:
        ex = _Exchange(self._registry, request, "models")
        if not self._authorized(request, allow_x_api_key=False):
            return await self._reject(ex, openai_error)
        b = self._registry.standing(ex.route)
        if (done := await _prelude(ex, b, openai_error)) is not None:
            return done
        models = [] if b.fault == "empty" else b.models
        body = {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "sim"}
                for m in models
            ],
        }
        error = openai_error(500, "simulated error", None)
        return await _send_body(ex, b, body, ready_at=ex.loop.time(), tokens=0, error_body=error)

    async def _health(self, request: web.Request) -> web.StreamResponse:
        ex = _Exchange(self._registry, request, "health")
        b = self._registry.standing(ex.route)
        if (done := await _prelude(ex, b, _health_error)) is not None:
            return done
        body = {"status": "ok"}
        return await _send_body(
            ex, b, body, ready_at=ex.loop.time(), tokens=0, error_body={"status": "error"}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        ex = _Exchange(self._registry, request, "chat")
        if not self._authorized(request, allow_x_api_key=False):
            return await self._reject(ex, openai_error)
        payload = await self._json_request(ex, openai_error)
        if payload is None:
            return ex.resp  # type: ignore[return-value]
        b = self._registry.next_for_chat(ex.route)
        if (done := await _prelude(ex, b, openai_error)) is not None:
            return done
        plan = plan_tokens(b, last_user_text(payload.get("messages")))
        model = b.model or str(payload.get("model") or "sim")
        ident = self._next_id("chatcmpl-sim-")
        if payload.get("stream"):
            options = payload.get("stream_options")
            asked = isinstance(options, dict) and bool(options.get("include_usage"))
            dialect = _OpenAIStream(b, plan, ident, model, usage=b.usage and asked)
            return await _run_stream(ex, b, plan, dialect)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.content)}
        if plan.reasoning:
            message["reasoning_content"] = "".join(plan.reasoning)
        body: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_sim",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
        }
        if b.usage:
            body["usage"] = openai_usage(b, plan)
        ready_at = ex.at(b.ttft_ms + max(plan.total - 1, 0) * b.inter_token_ms)
        return await _send_body(
            ex, b, body, ready_at=ready_at, tokens=plan.total, error_body=OPENAI_STREAM_ERROR
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        ex = _Exchange(self._registry, request, "messages")
        if not self._authorized(request, allow_x_api_key=True):
            return await self._reject(ex, anthropic_error)
        payload = await self._json_request(ex, anthropic_error)
        if payload is None:
            return ex.resp  # type: ignore[return-value]
        b = self._registry.next_for_chat(ex.route)
        if (done := await _prelude(ex, b, anthropic_error)) is not None:
            return done
        plan = plan_tokens(b, last_user_text(payload.get("messages")))
        model = b.model or str(payload.get("model") or "sim")
        ident = self._next_id("msg_sim_")
        if payload.get("stream"):
            return await _run_stream(ex, b, plan, _AnthropicStream(b, plan, ident, model))
        content: list[dict[str, Any]] = []
        if plan.reasoning:
            thinking = "".join(plan.reasoning)
            content.append({"type": "thinking", "thinking": thinking, "signature": "sim"})
        if plan.content:
            content.append({"type": "text", "text": "".join(plan.content)})
        body = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": anthropic_usage(b, plan),
        }
        ready_at = ex.at(b.ttft_ms + max(plan.total - 1, 0) * b.inter_token_ms)
        error = anthropic_error(529, "simulated error", "overloaded_error")
        return await _send_body(ex, b, body, ready_at=ready_at, tokens=plan.total, error_body=error)

    # HTTP control

    async def _control_get(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        return web.json_response(self._registry.standing(route).to_dict())

    async def _control_put(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        try:
            behavior = Behavior.from_dict(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self._registry.set(route, behavior)
        return web.json_response(behavior.to_dict())

    async def _control_script(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        try:
            items = await request.json()
            if not isinstance(items, list):
                raise ValueError("script must be a JSON list of behavior objects")
            behaviors = [Behavior.from_dict(item) for item in items]
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self._registry.script(route, behaviors)
        return web.json_response({"queued": len(behaviors)})

    async def _control_stats(self, request: web.Request) -> web.Response:
        stats = {name: self._registry.stats(name) for name in self._registry.route_names()}
        return web.json_response(stats)

    async def _control_reset(self, request: web.Request) -> web.Response:
        self._registry.reset_stats()
        return web.json_response({"reset": True})


# --- command line -------------------------------------------------------------------------


async def _serve(host: str, port: int, api_key: str | None, behaviors: dict[str, Behavior]) -> None:
    server = SimServer(host, port, api_key)
    for route, behavior in behaviors.items():
        server.set(route, behavior)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    print(f"checker sim listening on {server.url()}", flush=True)
    try:
        await stopping.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()


def run_forever(host: str, port: int, api_key: str | None, behaviors: dict[str, Behavior]) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly (for `checker sim`)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port, api_key, behaviors))
