"""Probes for OpenAI-compatible APIs: `models`, `chat`, `stream` and `known_answer`.

Each probe fills the ProbeResult it is given as it goes, so a deadline that cancels it
midway still leaves what was measured (ttfb, ttft, chunks). Transport exceptions and
ProbeFailure propagate to the runner, which classifies them.

Timings (the Anthropic probes measure the same way; details in clients.py): connect_ms
is DNS + TCP + TLS of a fresh connection. ttfb_ms, ttft_ms and latency_ms start when the
request's first byte is handed to the kernel, after the connection is up, and end at the
kernel's arrival time of the bytes that completed the headers, the first event carrying
generated text (content, reasoning) and the end marker ([DONE]; else the last byte). So
they are the route's times from request to answer with fresh and reused connections
alike, and the checker's own queueing (many probes in flight on one core) stays out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import httpx

from checker.config.schema import Target
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.classify import ProbeFailure, excerpt
from checker.probes.measure import (
    EventStream,
    StreamClock,
    check_model,
    error_in_body,
    exchange,
    fail_on_status,
    read_capped,
    read_json,
    tokens_per_s,
)

Redact = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None

    def apply(self, result: ProbeResult) -> None:
        result.prompt_tokens = self.prompt_tokens
        result.completion_tokens = self.completion_tokens
        result.cached_tokens = self.cached_tokens
        result.reasoning_tokens = self.reasoning_tokens


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_usage(usage: Any) -> Usage:
    """Token counts from an OpenAI usage object, accepting DeepSeek's cache field."""
    if not isinstance(usage, dict):
        return Usage()
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    cached = _int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
    if cached is None:
        cached = _int(usage.get("prompt_cache_hit_tokens"))  # DeepSeek
    reasoning = (
        _int(completion_details.get("reasoning_tokens"))
        if isinstance(completion_details, dict)
        else None
    )
    return Usage(
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=cached,
        reasoning_tokens=reasoning,
    )


def _text(part: Any, *keys: str) -> str:
    if not isinstance(part, dict):
        return ""
    return "".join(v for k in keys if isinstance(v := part.get(k), str))


# Generated text: the answer and, for reasoning models, the visible reasoning
# (DeepSeek `reasoning_content`, OpenRouter `reasoning`).
_GENERATED = ("content", "reasoning_content", "reasoning")


def _headers(target: Target, *, stream: bool = False) -> dict[str, str]:
    headers: dict[str, str] = {}
    if target.api_key is not None:
        headers["authorization"] = f"Bearer {target.api_key.get_secret_value()}"
    if stream:
        headers["accept"] = "text/event-stream"
    headers.update({k: v.get_secret_value() for k, v in target.headers.items()})
    return headers


def _chat_body(target: Target, prompt: str, *, stream: bool, temperature: float | None) -> dict:
    body: dict[str, Any] = {
        "model": target.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": target.max_tokens,
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    if temperature is not None:
        body["temperature"] = temperature
    return body


async def probe_models(
    target: Target, client: httpx.AsyncClient, result: ProbeResult, redact: Redact
) -> None:
    """GET /models: ok when the list is readable and names `model` (when configured)."""
    request = client.build_request("GET", f"{target.base_url}/models", headers=_headers(target))
    async with exchange(client, request, result) as ex:
        if await fail_on_status(ex, result, target.max_body_bytes, redact):
            return
        doc = await read_json(ex, result, target.max_body_bytes, redact)
    ids = model_ids(doc)
    if ids is None:
        result.fail(ErrorKind.bad_response, "models response is not a list of models")
    elif target.model and target.model not in ids:
        result.fail(ErrorKind.not_found, f"model {target.model!r} is not among {len(ids)} listed")
    else:
        result.ok = True


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


async def probe_chat(
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
    *,
    prompt: str | None = None,
    expect: str | None = None,
) -> None:
    """Non-streaming completion; with `expect`, the answer must contain that regex."""
    body = _chat_body(
        target,
        prompt or target.prompt,
        stream=False,
        temperature=0.0 if expect is not None else None,
    )
    request = client.build_request(
        "POST", f"{target.base_url}/chat/completions", json=body, headers=_headers(target)
    )
    async with exchange(client, request, result) as ex:
        if await fail_on_status(ex, result, target.max_body_bytes, redact):
            return
        doc = await read_json(ex, result, target.max_body_bytes, redact)
    if (verdict := error_in_body(doc, redact)) is not None:
        result.fail(verdict.kind, verdict.detail)
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("choices"), list):
        result.fail(ErrorKind.bad_response, "completion has no `choices` list")
        return
    model = doc.get("model")
    result.model = model if isinstance(model, str) else None
    parse_usage(doc.get("usage")).apply(result)
    choices = doc["choices"]
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    content = _text(message, "content")
    generated = _text(message, *_GENERATED)
    result.output_chars = len(generated)
    result.output_text = generated
    judge(result, target, redact, has_text=bool(generated), content=content, expect=expect)


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


async def probe_known_answer(
    target: Target, client: httpx.AsyncClient, result: ProbeResult, redact: Redact
) -> None:
    ka = target.known_answer
    await probe_chat(target, client, result, redact, prompt=ka.prompt, expect=ka.expect)


@dataclass(slots=True)
class StreamState:
    """How a stream ended: its end marker seen, the model's stop reason, when."""

    done: bool = False
    reason: str | None = None  # OpenAI finish_reason, Anthropic stop_reason
    ended_at: float | None = None


async def probe_stream(
    target: Target, client: httpx.AsyncClient, result: ProbeResult, redact: Redact
) -> None:
    """Streaming completion: ttft, decode speed, gaps, usage and stream integrity."""
    body = _chat_body(target, target.prompt, stream=True, temperature=None)
    request = client.build_request(
        "POST",
        f"{target.base_url}/chat/completions",
        json=body,
        headers=_headers(target, stream=True),
    )
    await measure_stream(client, request, target, result, redact, _read_stream, "[DONE]")


ReadStream = Callable[
    [httpx.Response, Target, ProbeResult, StreamClock, StreamState, Redact], Awaitable[None]
]


async def measure_stream(
    client: httpx.AsyncClient,
    request: httpx.Request,
    target: Target,
    result: ProbeResult,
    redact: Redact,
    read: ReadStream,
    end_marker: str,
) -> None:
    """Send a streaming request and judge the stream; `read` parses the provider's events."""
    async with exchange(client, request, result) as ex:
        if await fail_on_status(ex, result, target.max_body_bytes, redact):
            return
        if not await require_event_stream(ex.response, result, target.max_body_bytes, redact):
            return
        clock = StreamClock(t0=ex.t0)
        state = StreamState()
        try:
            await read(ex.response, target, result, clock, state, redact)
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
            f"stream ended without {end_marker} or a stop reason after {clock.chunks} chunks",
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
            data = sse.data.strip()
            if data == "[DONE]":
                state.done = True
                stream.end()
                continue
            if not data:
                continue
            chunk = parse_chunk(data, redact)
            if (verdict := error_in_body(chunk, redact, label="stream error")) is not None:
                clock.chunk(at, "")
                result.fail(ErrorKind.stream_error, verdict.detail)
                stream.end()
                continue
            clock.chunk(at, _chunk_text(chunk, state))
            if result.model is None and isinstance(model := chunk.get("model"), str):
                result.model = model
            if isinstance(chunk.get("usage"), dict):
                parse_usage(chunk["usage"]).apply(result)
    state.ended_at = stream.ended_at


def parse_chunk(data: str, redact: Redact) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        start = excerpt(data, redact)
        raise ProbeFailure(ErrorKind.bad_response, f"malformed stream chunk: {start}") from None
    if not isinstance(chunk, dict):
        start = excerpt(data, redact)
        raise ProbeFailure(ErrorKind.bad_response, f"stream chunk is not an object: {start}")
    return chunk


def _chunk_text(chunk: dict[str, Any], state: StreamState) -> str:
    """Generated text in a chunk (all choices), noting any finish_reason on the way."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return ""
    text = ""
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        text += _text(choice.get("delta"), *_GENERATED)
        if isinstance(reason := choice.get("finish_reason"), str) and reason:
            state.reason = reason
    return text


PROBES = {
    "models": probe_models,
    "chat": probe_chat,
    "stream": probe_stream,
    "known_answer": probe_known_answer,
}
