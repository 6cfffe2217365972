"""Probes for Anthropic's Messages API: `models`, `chat`, `stream` and `known_answer`.

The Anthropic dialect of the chat probes (chat.py), so the same measurements and verdicts
as the OpenAI probes; what differs:
`x-api-key` + `anthropic-version` headers, typed stream events (`ping` is a keep-alive,
`message_stop` ends the stream, `event: error` is an in-stream error) and usage split
over `message_start` and `message_delta`, with cache reads counted apart from input.

`base_url` may be given with or without the `/v1` suffix (https://api.anthropic.com or
https://api.anthropic.com/v1): both reach /v1/messages.
"""

from __future__ import annotations

import functools
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import ServerSentEvent

from checker.probes import chat, identity, long_prompts
from checker.probes.base import ProbeResult
from checker.probes.chat import Redact, Step, StreamState, parse_object
from checker.probes.exchange import error_in_body

if TYPE_CHECKING:
    from checker.config.schema import Target

# Anthropic pages /v1/models (20 by default); one page of the maximum size lists them all.
_MODELS_PAGE = {"limit": "1000"}


def _url(target: Target, path: str) -> httpx.URL:
    return _base_url(target.base_url, path)


@functools.lru_cache(maxsize=1024)
def _base_url(base: str, path: str) -> httpx.URL:
    """Parsed once per config text (httpx's parser costs ~10-40 us a probe; an httpx.URL
    is immutable, a reload's text a new key)."""
    return httpx.URL(f"{base}{path}" if base.endswith("/v1") else f"{base}/v1{path}")


def _headers(target: Target) -> dict[str, str]:
    headers = {"anthropic-version": target.anthropic_version}
    if target.api_key is not None:
        headers["x-api-key"] = target.api_key.get_secret_value()
    headers.update({k: v.get_secret_value() for k, v in target.headers.items()})
    return headers


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
    text = block.get("text")
    thinking = block.get("thinking")
    text = text if isinstance(text, str) else ""
    thinking = thinking if isinstance(thinking, str) else ""
    return text, text + thinking


def _apply_event(
    kind: str, data: dict[str, Any], result: ProbeResult, state: StreamState
) -> tuple[str, str]:
    """Record what a stream event says about model, usage and stop; return its (answer
    text, all generated text)."""
    if kind == "message_start" and isinstance(message := data.get("message"), dict):
        if isinstance(model := message.get("model"), str):
            result.model = model
        apply_usage(message.get("usage"), result)
    elif kind == "content_block_delta":
        return _block_text(data.get("delta"))
    elif kind == "message_delta":
        delta = data.get("delta")
        if isinstance(delta, dict) and isinstance(reason := delta.get("stop_reason"), str):
            state.reason = reason
        apply_usage(data.get("usage"), result)
    return "", ""


class Anthropic(chat.Dialect):
    """Anthropic's Messages API."""

    end_marker = "message_stop"
    no_answer = "message has no `content` list"

    def models_request(self, client: httpx.AsyncClient, target: Target) -> httpx.Request:
        return client.build_request(
            "GET", _url(target, "/models"), params=_MODELS_PAGE, headers=_headers(target)
        )

    def chat_request(
        self, client: httpx.AsyncClient, target: Target, body: dict[str, Any], *, stream: bool
    ) -> httpx.Request:
        headers = _headers(target)
        if stream:
            headers = headers | {"accept": "text/event-stream"}
        return client.build_request("POST", _url(target, "/messages"), json=body, headers=headers)

    def body(
        self,
        target: Target,
        prompt: str,
        *,
        stream: bool,
        temperature: float | None,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": target.model,
            "max_tokens": max_tokens or target.max_tokens,
            "messages": [{"role": "user", "content": prompt}],
            "stream": stream,
        }
        if temperature is not None:
            body["temperature"] = temperature
        return body

    def has_answer(self, doc: Any) -> bool:
        return isinstance(doc.get("content"), list)

    def answer(self, doc: dict[str, Any], result: ProbeResult) -> tuple[str, str]:
        apply_usage(doc.get("usage"), result)
        content = generated = ""
        for block in doc["content"]:
            text, all_text = _block_text(block)
            content += text
            generated += all_text
        return content, generated

    def event(
        self, sse: ServerSentEvent, result: ProbeResult, state: StreamState, redact: Redact
    ) -> Step | None:
        if sse.event == "ping" or not sse.data.strip():
            return None  # keep-alive: neither a chunk nor a token
        data = parse_object(sse.data, redact, "stream event")
        kind = data.get("type") or sse.event
        if kind == "error" or sse.event == "error":
            verdict = error_in_body(data, redact, label="stream error")
            return Step(error=verdict.detail if verdict else "stream error")
        answer, text = _apply_event(kind, data, result, state)
        return Step(text=text, answer=answer, done=kind == "message_stop")


DIALECT = Anthropic()
probe_models = partial(chat.probe_models, DIALECT)
probe_chat = partial(chat.probe_chat, DIALECT)
probe_stream = partial(chat.probe_stream, DIALECT)
probe_known_answer = partial(chat.probe_known_answer, DIALECT)
probe_prefill = partial(long_prompts.probe_prefill, DIALECT)
probe_cache = partial(long_prompts.probe_cache, DIALECT)
probe_identity = partial(identity.probe_identity, DIALECT)


__all__ = [
    "DIALECT",
    "Anthropic",
    "apply_usage",
    "probe_cache",
    "probe_chat",
    "probe_identity",
    "probe_known_answer",
    "probe_models",
    "probe_prefill",
    "probe_stream",
]
