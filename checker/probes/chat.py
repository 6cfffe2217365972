"""The chat-API probe skeleton, written once: `models`, `chat`, `stream` and `known_answer`.

Each probe is request -> exchange -> status -> body -> judge; what differs between the
OpenAI-compatible and the Anthropic APIs (URL and path, headers, body shape, SSE events,
usage fields, error shapes) is a `Dialect` (openai.py, anthropic.py). So both measure and
judge the same way, by construction.

Each probe fills the ProbeResult it is given as it goes, so a deadline that cancels it
midway still leaves what was measured (ttfb, ttft, chunks). Transport exceptions and
ProbeFailure propagate to the runner, which classifies them.

Timings (details in exchange.py): connect_ms is DNS + TCP + TLS of a fresh connection.
ttfb_ms, ttft_ms and latency_ms start when the request's first byte is handed to the
kernel, after the connection is up, and end at the kernel's arrival time of the bytes that
completed the headers, the first event carrying generated text (content, reasoning) and the
end marker ([DONE], message_stop; else the last byte). So they are the route's times from
request to answer with fresh and reused connections alike, and the checker's own queueing
(many probes in flight on one core) stays out.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import ServerSentEvent

from checker.probes.base import ErrorKind, ProbeResult, tokens_per_s
from checker.probes.classify import ProbeFailure, excerpt
from checker.probes.exchange import (
    check_model,
    error_in_body,
    exchange,
    fail_on_status,
    read_json,
)
from checker.probes.prompts import fresh, new_nonce
from checker.probes.reads import read_capped
from checker.probes.sse import EventStream, StreamClock

if TYPE_CHECKING:
    from checker.config.schema import Target

Redact = Callable[[str], str]


@dataclass(slots=True)
class StreamState:
    """How a stream ended: its end marker seen, the model's stop reason, when."""

    done: bool = False
    reason: str | None = None  # OpenAI finish_reason, Anthropic stop_reason
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """What one stream event means to the skeleton: a chunk (with its generated text), the
    end marker, or an in-stream error (its detail)."""

    text: str = ""
    # The answer part of `text` (content, not reasoning); None: all of `text` is answer.
    answer: str | None = None
    chunk: bool = True  # counts as a chunk for the stream clock
    done: bool = False  # the protocol's end marker
    error: str | None = None


class Dialect(ABC):
    """What one chat API does its own way; the probes below do everything else."""

    end_marker: str  # named in the `truncated` detail
    no_answer: str  # the `bad_response` detail for a body without the answer's list

    @abstractmethod
    def models_request(self, client: httpx.AsyncClient, target: Target) -> httpx.Request:
        """The request that lists the models."""

    @abstractmethod
    def chat_request(
        self, client: httpx.AsyncClient, target: Target, body: dict[str, Any], *, stream: bool
    ) -> httpx.Request:
        """The completion request carrying `body`."""

    @abstractmethod
    def body(
        self,
        target: Target,
        prompt: str,
        *,
        stream: bool,
        temperature: float | None,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The completion request's JSON body (`max_tokens` overrides the target's)."""

    @abstractmethod
    def has_answer(self, doc: Any) -> bool:
        """Whether a 2xx non-streaming body has the shape of an answer."""

    @abstractmethod
    def answer(self, doc: dict[str, Any], result: ProbeResult) -> tuple[str, str]:
        """(answer text, all generated text) of an answer; records its usage on `result`."""

    @abstractmethod
    def event(
        self, sse: ServerSentEvent, result: ProbeResult, state: StreamState, redact: Redact
    ) -> Step | None:
        """What a stream event means (None: not a chunk, e.g. a keep-alive); records the
        model, usage and stop reason it carries."""


def model_ids(doc: Any) -> list[str] | None:
    """Model ids from `{data: [{id}]}` (OpenAI, Anthropic), `{models: [{name}]}` or a bare list."""
    items = doc.get("data", doc.get("models")) if isinstance(doc, dict) else doc
    if not isinstance(items, list):
        return None
    ids: list[str] = []
    for item in items:
        if isinstance(item, str):
            ids.append(item)
        elif isinstance(item, dict) and isinstance(name := item.get("id", item.get("name")), str):
            ids.append(name)
    return ids


def parse_object(raw: str, redact: Redact, what: str) -> dict[str, Any]:
    """A stream event's JSON object; `what` names it in the detail ("stream chunk")."""
    try:
        data = json.loads(raw)
    except ValueError:
        start = excerpt(raw, redact)
        raise ProbeFailure(ErrorKind.bad_response, f"malformed {what}: {start}") from None
    if not isinstance(data, dict):
        start = excerpt(raw, redact)
        raise ProbeFailure(ErrorKind.bad_response, f"{what} is not an object: {start}")
    return data


def judge(
    result: ProbeResult,
    target: Target,
    redact: Redact,
    *,
    has_text: bool,
    content: str = "",
    expect: str | None = None,
) -> None:
    """The answer-level verdicts, most fundamental first: wrong model, no text, wrong text."""
    check_model(result, target.expect_model)
    if not has_text:
        result.fail(ErrorKind.empty, "no generated text in the answer")
    elif expect is not None and not re.search(expect, content):
        got = excerpt(content, redact, limit=120)
        result.fail(ErrorKind.wrong_answer, f"expected /{expect}/, got {got!r}")
    if result.error is None:
        result.ok = True


async def fetch_json(
    client: httpx.AsyncClient,
    request: httpx.Request,
    target: Target,
    result: ProbeResult,
    redact: Redact,
) -> tuple[bool, Any]:
    """(True, the parsed body) of a 2xx answer; (False, None) once a non-2xx is judged."""
    async with exchange(client, request, result) as ex:
        if await fail_on_status(ex, result, target.max_body_bytes, redact):
            return False, None
        return True, await read_json(ex, result, target.max_body_bytes, redact)


async def probe_models(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
) -> None:
    """List the models: ok when the list is readable and names `model` (when configured)."""
    answered, doc = await fetch_json(
        client, dialect.models_request(client, target), target, result, redact
    )
    if not answered:
        return
    ids = model_ids(doc)
    if ids is None:
        result.fail(ErrorKind.bad_response, "models response is not a list of models")
    elif target.model and target.model not in ids:
        result.fail(ErrorKind.not_found, f"model {target.model!r} is not among {len(ids)} listed")
    else:
        result.ok = True


async def ask(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
    prompt: str,
    *,
    temperature: float | None = None,
) -> tuple[str, str] | None:
    """One non-streaming completion: (answer, all generated text), or None once `result`
    holds why there is none. Records status, timings, usage and model on `result`."""
    body = dialect.body(target, prompt, stream=False, temperature=temperature)
    request = dialect.chat_request(client, target, body, stream=False)
    answered, doc = await fetch_json(client, request, target, result, redact)
    if not answered:
        return None
    if (verdict := error_in_body(doc, redact)) is not None:
        result.fail(verdict.kind, verdict.detail)
        return None
    if not isinstance(doc, dict) or not dialect.has_answer(doc):
        result.fail(ErrorKind.bad_response, dialect.no_answer)
        return None
    model = doc.get("model")
    result.model = model if isinstance(model, str) else None
    return dialect.answer(doc, result)


async def probe_chat(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
    *,
    prompt: str | None = None,
    expect: str | None = None,
) -> None:
    """Non-streaming completion; with `expect`, the answer must contain that regex."""
    temperature = 0.0 if expect is not None else None
    answer = await ask(
        dialect, target, client, result, redact, prompt or prompt_for(target),
        temperature=temperature,
    )  # fmt: skip
    if answer is None:
        return
    content, generated = answer
    result.output_chars = len(generated)
    result.output_text = generated
    judge(result, target, redact, has_text=bool(generated), content=content, expect=expect)


async def probe_known_answer(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
) -> None:
    """A deterministic question whose answer must match the target's `known_answer`."""
    ka = target.known_answer
    await probe_chat(dialect, target, client, result, redact, prompt=ka.prompt, expect=ka.expect)


def prompt_for(target: Target) -> str:
    """The target's prompt, made unique per request unless `fresh_prompt: false`.

    known_answer and identity send their fixed prompts as they are: their answers are
    compared with an expectation or with earlier answers."""
    return fresh(target.prompt, new_nonce()) if target.fresh_prompt else target.prompt


async def probe_stream(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
) -> None:
    """Streaming completion: ttft, decode speed, gaps, usage and stream integrity."""
    await stream_once(dialect, target, client, result, redact, prompt_for(target))


async def stream_once(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
    prompt: str,
    max_tokens: int | None = None,
) -> None:
    """One streamed completion of `prompt`, measured and judged into `result`."""
    body = dialect.body(target, prompt, stream=True, temperature=None, max_tokens=max_tokens)
    request = dialect.chat_request(client, target, body, stream=True)
    async with exchange(client, request, result) as ex:
        if await fail_on_status(ex, result, target.max_body_bytes, redact):
            return
        if not await require_event_stream(ex.response, result, target.max_body_bytes, redact):
            return
        clock = StreamClock(t0=ex.t0)
        state = StreamState()
        try:
            await _read_stream(dialect, ex.response, target, result, clock, state, redact)
        finally:
            # Even when a stall or the deadline interrupts the stream, keep what was seen.
            clock.record(result)
        # End of stream: its end marker, else the last byte.
        result.latency_ms = ex.ms(state.ended_at)
    if result.error is not None:
        return
    if not state.done and state.reason is None:
        result.fail(
            ErrorKind.truncated,
            f"stream ended without {dialect.end_marker} or a stop reason "
            f"after {clock.chunks} chunks",
        )
        return
    result.tokens_per_s = tokens_per_s(result.completion_tokens, result.ttft_ms, result.latency_ms)
    judge(result, target, redact, has_text=clock.output_chars > 0)


async def require_event_stream(
    response: httpx.Response, result: ProbeResult, max_body_bytes: int, redact: Redact
) -> bool:
    """A 2xx stream must be text/event-stream; anything else is read (capped) and judged."""
    ctype = response.headers.get("content-type", "").partition(";")[0].strip().lower()
    if ctype == "text/event-stream":
        return True
    body = await read_capped(response, max_body_bytes)
    try:
        verdict = error_in_body(json.loads(body), redact)
    except ValueError:
        verdict = None
    if verdict is not None:
        result.fail(verdict.kind, verdict.detail)
    else:
        result.fail(ErrorKind.bad_response, f"expected text/event-stream, got {ctype or 'nothing'}")
    return False


async def _read_stream(
    dialect: Dialect,
    response: httpx.Response,
    target: Target,
    result: ProbeResult,
    clock: StreamClock,
    state: StreamState,
    redact: Redact,
) -> None:
    stream = EventStream(
        response,
        target.max_body_bytes,
        target.max_stream_events,
        drain=target.reuse_connections,
    )
    async with aclosing(stream.events()) as events:
        async for at, sse in events:
            step = dialect.event(sse, result, state, redact)
            if step is None:
                continue
            if step.error is not None:
                clock.chunk(at, "")
                result.fail(ErrorKind.stream_error, step.error)
                stream.end()
                continue
            if step.chunk:
                clock.chunk(at, step.text, step.text if step.answer is None else step.answer)
            if step.done:
                state.done = True
                stream.end()
    state.ended_at = stream.ended_at


__all__ = [
    "Dialect",
    "Redact",
    "Step",
    "StreamState",
    "ask",
    "fetch_json",
    "judge",
    "model_ids",
    "parse_object",
    "probe_chat",
    "probe_known_answer",
    "probe_models",
    "probe_stream",
    "prompt_for",
    "require_event_stream",
    "stream_once",
]
