"""What a route does: the scriptable Behavior, its validation, and the tokens it generates.

Pure data and pure functions (no I/O): the server, the exchange and the dialects read a
Behavior; the demo, the benchmarks and tests build one.

Answer splitting: a non-empty `answer` (or the sum for "What is A + B") is cut into
min(completion_tokens, len(answer)) pieces of near-equal length by characters. A short
answer therefore yields fewer content tokens than `completion_tokens`; usage reports the
tokens actually sent (plus reasoning tokens) unless `reported_completion_tokens` is set.
`max_tokens` in the request is ignored: only the Behavior decides what is generated.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

__all__ = [
    "CACHE_STYLES",
    "FAULTS",
    "NUMBER_WORDS",
    "Behavior",
    "Fault",
    "TokenPlan",
    "known_answer",
    "plan_tokens",
    "prompt_parts",
    "split_even",
]

Fault = Literal[
    "truncate", "disconnect", "stall", "malformed", "stream_error", "huge", "empty", "not_json"
]
FAULTS: frozenset[str] = frozenset(get_args(Fault))
CACHE_STYLES: frozenset[str] = frozenset({"openai", "deepseek"})

_SUM_RE = re.compile(r"What is (\d+) \+ (\d+)")

_NONNEG_FLOATS = ("ttft_ms", "inter_token_ms", "headers_delay_ms", "stall_s")
_NONNEG_INTS = (
    "completion_tokens",
    "reasoning_tokens",
    "prompt_tokens",
    "cached_tokens",
    "empty_deltas",
    "fault_after_tokens",
)
_OPTIONAL_STRS = (
    "answer",
    "model",
    "error_code",
    "error_message",
    "retry_after",
    "retry_after_ms",
    "system_fingerprint",
)
_BOOLS = ("usage", "role_chunk", "echo_auth")


def _default_models() -> list[str]:
    return ["sim-small", "sim-large"]


@dataclass
class Behavior:
    """How a route answers. Every field is JSON-able; exchange.py says when tokens are sent."""

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
    system_fingerprint: str | None = "fp_sim"  # change it to play a silent model swap
    # Prompt processing: when set, prompt_tokens is the prompt's word count (the sim's
    # token) and the first token waits ttft_ms + prompt_tokens / prefill_tokens_per_s.
    prefill_tokens_per_s: float | None = None
    # A prompt cache: "prefix" reports the words of the prompt's first part (all but its
    # last line) as cached when this route saw that part before; "never" never does.
    cache: Literal["prefix", "never"] | None = None

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
    pf = b.prefill_tokens_per_s
    if pf is not None and (not _is_number(pf) or pf <= 0):
        fail("prefill_tokens_per_s", "a number > 0 or null")
    if b.cache not in (None, "prefix", "never"):
        fail("cache", "null, prefix or never")
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
    """The text pieces one response sends, one token each, and the count usage reports."""

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
    """What `b` generates for `prompt` (see the module docstring for answer splitting)."""
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


def prompt_parts(prompt: str) -> tuple[str, int, int]:
    """(the cacheable part: all but the last line, its words, all words): the sim's token
    is a word, so a probe's prefill speed can be checked against what the sim counted."""
    head, _, _ = prompt.rpartition("\n")
    return head, len(head.split()), len(prompt.split())
