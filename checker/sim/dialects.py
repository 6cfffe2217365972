"""The OpenAI and Anthropic wire shapes: bodies, usage, errors and SSE events.

Pure: each function or stream object turns a Behavior and its TokenPlan into the JSON or
bytes one API would send; when and how they reach the socket is exchange.py's job.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

from checker.sim.behaviour import Behavior, TokenPlan

__all__ = [
    "OPENAI_STREAM_ERROR",
    "AnthropicStream",
    "Dialect",
    "ErrorShape",
    "OpenAIStream",
    "anthropic_error",
    "anthropic_message",
    "anthropic_usage",
    "health_error",
    "last_user_text",
    "models_list",
    "openai_completion",
    "openai_error",
    "openai_usage",
    "sse",
]


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


def health_error(status: int, message: str, code: str | None) -> dict[str, Any]:
    return {"status": "error", "message": message}


# --- complete (non-streaming) bodies ----------------------------------------------------


def models_list(models: list[str]) -> dict[str, Any]:
    """The `/v1/models` body (OpenAI's shape, which compatible relays copy)."""
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "sim"} for m in models
        ],
    }


def openai_completion(b: Behavior, plan: TokenPlan, ident: str, model: str) -> dict[str, Any]:
    """A whole chat completion, as `/v1/chat/completions` answers without `stream`."""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(plan.content)}
    if plan.reasoning:
        message["reasoning_content"] = "".join(plan.reasoning)
    body: dict[str, Any] = {
        "id": ident,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": b.system_fingerprint,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
    }
    if b.usage:
        body["usage"] = openai_usage(b, plan)
    return body


def anthropic_message(b: Behavior, plan: TokenPlan, ident: str, model: str) -> dict[str, Any]:
    """A whole message, as `/v1/messages` answers without `stream`."""
    content: list[dict[str, Any]] = []
    if plan.reasoning:
        thinking = "".join(plan.reasoning)
        content.append({"type": "thinking", "thinking": thinking, "signature": "sim"})
    if plan.content:
        content.append({"type": "text", "text": "".join(plan.content)})
    return {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": anthropic_usage(b, plan),
    }


# --- streaming dialects -----------------------------------------------------------------


class Dialect(Protocol):
    def opening(self) -> list[bytes]: ...
    def empty_delta(self, index: int) -> bytes: ...
    def keepalive(self) -> bytes: ...
    def token(self, kind: str, text: str) -> bytes: ...
    def malformed(self) -> bytes: ...
    def stream_error(self) -> bytes: ...
    def closing(self) -> list[bytes]: ...


class OpenAIStream:
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
            "system_fingerprint": self.b.system_fingerprint,
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


class AnthropicStream:
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
        message: dict[str, Any] = {
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
