"""Probes for Anthropic's Messages API: `models`, `chat`, `stream` and `known_answer`.

Same measurements and verdicts as the OpenAI probes; the differences are the dialect:
`x-api-key` + `anthropic-version` headers, typed stream events (`ping` is a keep-alive,
`message_stop` ends the stream, `event: error` is an in-stream error) and usage split
over `message_start` and `message_delta`, with cache reads counted apart from input.

`base_url` may be given with or without the `/v1` suffix (https://api.anthropic.com or
https://api.anthropic.com/v1): both reach /v1/messages.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import httpx

from checker.config.schema import Target
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.classify import ProbeFailure, excerpt
from checker.probes.measure import (
    EventStream,
    StreamClock,
    error_in_body,
    exchange,
    fail_on_status,
    read_json,
)
from checker.probes.openai import (
    StreamState,
    judge,
    measure_stream,
    model_ids,
)

Redact = Callable[[str], str]
# Anthropic pages /v1/models (20 by default); one page of the maximum size lists them all.
_MODELS_PAGE = {"limit": "1000"}


def _url(target: Target, path: str) -> str:
    base = target.base_url
    return f"{base}{path}" if base.endswith("/v1") else f"{base}/v1{path}"


def _headers(target: Target) -> dict[str, str]:
    headers = {"anthropic-version": target.anthropic_version}
    if target.api_key is not None:
        headers["x-api-key"] = target.api_key.get_secret_value()
    headers.update({k: v.get_secret_value() for k, v in target.headers.items()})
    return headers


def _body(target: Target, prompt: str, *, stream: bool, temperature: float | None) -> dict:
    body: dict[str, Any] = {
        "model": target.model,
        "max_tokens": target.max_tokens,
        "messages": [{"role": "user", "content": prompt}],
        "stream": stream,
    }
    if temperature is not None:
        body["temperature"] = temperature
    return body


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def apply_usage(usage: Any, result: ProbeResult) -> None:
    """Fill token counts from an Anthropic usage object (fields may arrive in parts).

    Anthropic's input_tokens excludes cache reads and writes; prompt_tokens here is the
    whole prompt, so it is comparable with OpenAI-style routes.
    """
    if not isinstance(usage, dict):
        return
    parts = [
        _int(usage.get(k))
        for k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    ]
    if parts[0] is not None:
        result.prompt_tokens = sum(p or 0 for p in parts)
    if (cached := parts[1]) is not None:
        result.cached_tokens = cached
    if (output := _int(usage.get("output_tokens"))) is not None:
        result.completion_tokens = output


def _block_text(block: Any) -> tuple[str, str]:
    """(answer text, all generated text) of a content block or delta."""
    if not isinstance(block, dict):
        return "", ""
    text = block.get("text") if isinstance(block.get("text"), str) else ""
    thinking = block.get("thinking") if isinstance(block.get("thinking"), str) else ""
    return text, text + thinking


async def probe_models(
    target: Target, client: httpx.AsyncClient, result: ProbeResult, redact: Redact
) -> None:
    request = client.build_request(
        "GET", _url(target, "/models"), params=_MODELS_PAGE, headers=_headers(target)
    )
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


async def probe_chat(
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
    *,
    prompt: str | None = None,
    expect: str | None = None,
) -> None:
    body = _body(
        target,
        prompt or target.prompt,
        stream=False,
        temperature=0.0 if expect is not None else None,
    )
    request = client.build_request(
        "POST", _url(target, "/messages"), json=body, headers=_headers(target)
    )
    async with exchange(client, request, result) as ex:
        if await fail_on_status(ex, result, target.max_body_bytes, redact):
            return
        doc = await read_json(ex, result, target.max_body_bytes, redact)
    if (verdict := error_in_body(doc, redact)) is not None:
        result.fail(verdict.kind, verdict.detail)
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("content"), list):
        result.fail(ErrorKind.bad_response, "message has no `content` list")
        return
    model = doc.get("model")
    result.model = model if isinstance(model, str) else None
    apply_usage(doc.get("usage"), result)
    content = generated = ""
    for block in doc["content"]:
        text, all_text = _block_text(block)
        content += text
        generated += all_text
    result.output_chars = len(generated)
    result.output_text = generated
    judge(result, target, redact, has_text=bool(generated), content=content, expect=expect)


async def probe_known_answer(
    target: Target, client: httpx.AsyncClient, result: ProbeResult, redact: Redact
) -> None:
    ka = target.known_answer
    await probe_chat(target, client, result, redact, prompt=ka.prompt, expect=ka.expect)


async def probe_stream(
    target: Target, client: httpx.AsyncClient, result: ProbeResult, redact: Redact
) -> None:
    body = _body(target, target.prompt, stream=True, temperature=None)
    headers = _headers(target) | {"accept": "text/event-stream"}
    request = client.build_request("POST", _url(target, "/messages"), json=body, headers=headers)
    await measure_stream(client, request, target, result, redact, _read_stream, "message_stop")


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
            if sse.event == "ping" or not sse.data.strip():
                continue  # keep-alive: neither a chunk nor a token
            data = _parse_event(sse.data, redact)
            kind = data.get("type") or sse.event
            if kind == "error" or sse.event == "error":
                clock.chunk(at, "")
                verdict = error_in_body(data, redact, label="stream error")
                result.fail(ErrorKind.stream_error, verdict.detail if verdict else "stream error")
                stream.end()
                continue
            clock.chunk(at, _apply_event(kind, data, result, state))
            if kind == "message_stop":
                state.done = True
                stream.end()
    state.ended_at = stream.ended_at


def _parse_event(raw: str, redact: Redact) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        start = excerpt(raw, redact)
        raise ProbeFailure(ErrorKind.bad_response, f"malformed stream event: {start}") from None
    if not isinstance(data, dict):
        start = excerpt(raw, redact)
        raise ProbeFailure(ErrorKind.bad_response, f"stream event is not an object: {start}")
    return data


def _apply_event(kind: str, data: dict[str, Any], result: ProbeResult, state: StreamState) -> str:
    """Record what a stream event says about model, usage and stop; return its text."""
    if kind == "message_start" and isinstance(message := data.get("message"), dict):
        if isinstance(model := message.get("model"), str):
            result.model = model
        apply_usage(message.get("usage"), result)
    elif kind == "content_block_delta":
        return _block_text(data.get("delta"))[1]
    elif kind == "message_delta":
        delta = data.get("delta")
        if isinstance(delta, dict) and isinstance(reason := delta.get("stop_reason"), str):
            state.reason = reason
        apply_usage(data.get("usage"), result)
    return ""


PROBES = {
    "models": probe_models,
    "chat": probe_chat,
    "stream": probe_stream,
    "known_answer": probe_known_answer,
}
