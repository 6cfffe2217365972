"""The OpenAI-compatible dialect of the chat probes (chat.py): `models`, `chat`, `stream`
and `known_answer` against `/models` and `/chat/completions`.

The dialect: a bearer token, `choices[].message` answers, `choices[].delta` stream chunks
ended by `data: [DONE]`, an `error` object inside a chunk as an in-stream error, and usage
in a final chunk (`stream_options.include_usage`), accepting DeepSeek's cache field.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class ReportedUsage:
    """Token counts as the provider reported them (digest's Usage is spend over a period)."""

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


def parse_usage(usage: Any) -> ReportedUsage:
    """Token counts from an OpenAI usage object, accepting DeepSeek's cache field."""
    if not isinstance(usage, dict):
        return ReportedUsage()
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
    return ReportedUsage(
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


@functools.lru_cache(maxsize=1024)
def _url(base_url: str, path: str) -> httpx.URL:
    """The URL of `path` under a target's base_url, parsed once per config text (httpx's
    parser costs ~10-40 us a probe; an httpx.URL is immutable, a reload's text a new key)."""
    return httpx.URL(f"{base_url}{path}")


def _headers(target: Target, *, stream: bool = False) -> dict[str, str]:
    headers: dict[str, str] = {}
    if target.api_key is not None:
        headers["authorization"] = f"Bearer {target.api_key.get_secret_value()}"
    if stream:
        headers["accept"] = "text/event-stream"
    headers.update({k: v.get_secret_value() for k, v in target.headers.items()})
    return headers


def _chunk_texts(chunk: dict[str, Any], state: StreamState) -> tuple[str, str]:
    """(generated text, answer text) of a chunk (all choices), noting any finish_reason on
    the way. One pass over the deltas: this runs for every chunk of every stream."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return "", ""
    text = answer = ""
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if isinstance(delta := choice.get("delta"), dict):
            for key in _GENERATED:
                if isinstance(value := delta.get(key), str):
                    text += value
                    if key == "content":
                        answer += value
        if isinstance(reason := choice.get("finish_reason"), str) and reason:
            state.reason = reason
    return text, answer


def _fingerprint(doc: dict[str, Any], result: ProbeResult) -> None:
    """The backend configuration id (`system_fingerprint`): a change means the route now
    runs something else. The first one of a stream counts."""
    fp = doc.get("system_fingerprint")
    if result.system_fingerprint is None and isinstance(fp, str) and fp:
        result.system_fingerprint = fp[:200]


class OpenAI(chat.Dialect):
    """OpenAI's Chat Completions API, as OpenAI-compatible routes and relays speak it."""

    end_marker = "[DONE]"
    no_answer = "completion has no `choices` list"

    def models_request(self, client: httpx.AsyncClient, target: Target) -> httpx.Request:
        return client.build_request(
            "GET", _url(target.base_url, "/models"), headers=_headers(target)
        )

    def chat_request(
        self, client: httpx.AsyncClient, target: Target, body: dict[str, Any], *, stream: bool
    ) -> httpx.Request:
        return client.build_request(
            "POST",
            _url(target.base_url, "/chat/completions"),
            json=body,
            headers=_headers(target, stream=stream),
        )

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
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens or target.max_tokens,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if temperature is not None:
            body["temperature"] = temperature
        if target.reasoning_effort is not None:
            # A reasoning model ignores max_tokens for its thinking: ask it to think least.
            body["reasoning_effort"] = target.reasoning_effort
        return body

    def has_answer(self, doc: Any) -> bool:
        return isinstance(doc.get("choices"), list)

    def answer(self, doc: dict[str, Any], result: ProbeResult) -> tuple[str, str]:
        parse_usage(doc.get("usage")).apply(result)
        _fingerprint(doc, result)
        choices = doc["choices"]
        message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        return _text(message, "content"), _text(message, *_GENERATED)

    def event(
        self, sse: ServerSentEvent, result: ProbeResult, state: StreamState, redact: Redact
    ) -> Step | None:
        data = sse.data.strip()
        if data == "[DONE]":
            return Step(chunk=False, done=True)
        if not data:
            return None
        chunk = parse_object(data, redact, "stream chunk")
        if (verdict := error_in_body(chunk, redact, label="stream error")) is not None:
            return Step(error=verdict.detail)
        text, answer = _chunk_texts(chunk, state)
        if result.model is None and isinstance(model := chunk.get("model"), str):
            result.model = model
        _fingerprint(chunk, result)
        if isinstance(chunk.get("usage"), dict):
            parse_usage(chunk["usage"]).apply(result)
        return Step(text=text, answer=answer)


DIALECT = OpenAI()
probe_models = partial(chat.probe_models, DIALECT)
probe_chat = partial(chat.probe_chat, DIALECT)
probe_stream = partial(chat.probe_stream, DIALECT)
probe_known_answer = partial(chat.probe_known_answer, DIALECT)
probe_prefill = partial(long_prompts.probe_prefill, DIALECT)
probe_cache = partial(long_prompts.probe_cache, DIALECT)
probe_identity = partial(identity.probe_identity, DIALECT)


__all__ = [
    "DIALECT",
    "OpenAI",
    "ReportedUsage",
    "parse_usage",
    "probe_cache",
    "probe_chat",
    "probe_identity",
    "probe_known_answer",
    "probe_models",
    "probe_prefill",
    "probe_stream",
]
