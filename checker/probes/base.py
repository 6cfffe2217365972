"""The result contract every probe returns, and the stable error vocabulary (pure)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """Stable names: alerts, metrics and digests group by these. Never rename one."""

    timeout = "timeout"
    connect_timeout = "connect_timeout"
    stall = "stall"
    dns = "dns"
    connect = "connect"
    tls = "tls"
    auth = "auth"
    not_found = "not_found"
    rate_limited = "rate_limited"
    quota = "quota"
    client_error = "client_error"
    server_error = "server_error"
    bad_response = "bad_response"
    empty = "empty"
    truncated = "truncated"
    disconnect = "disconnect"
    stream_error = "stream_error"
    wrong_answer = "wrong_answer"
    model_mismatch = "model_mismatch"
    too_large = "too_large"
    condition = "condition"


# Exactly the fields `checker check --json` prints, in this order (DESIGN.md contract).
JSON_FIELDS: tuple[str, ...] = (
    "target",
    "probe",
    "started_at",
    "ok",
    "error",
    "status",
    "latency_ms",
    "connect_ms",
    "ttfb_ms",
    "ttft_ms",
    "tokens_per_s",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "model",
    "retry_after_s",
    "detail",
    # Route truth (appended: the fields above keep their order).
    "ttfo_ms",
    "itl_p50_ms",
    "itl_p99_ms",
    "max_gap_ms",
    "prefill_tokens_per_s",
    "system_fingerprint",
    "signature",
)


# Fields that live only in memory: never written to the database.
TRANSIENT_FIELDS: frozenset[str] = frozenset({"output_text", "warmup"})


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class ProbeResult:
    target: str
    probe: str
    started_at: datetime = field(default_factory=utcnow)
    ok: bool = False
    error: ErrorKind | None = None
    status: int | None = None
    latency_ms: float | None = None
    connect_ms: float | None = None
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    tokens_per_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    model: str | None = None
    retry_after_s: float | None = None
    detail: str | None = None
    # Recorded and stored, but not part of the printed JSON contract.
    chunks: int | None = None
    max_gap_ms: float | None = None
    # Streamed text length and its token count, for token-honesty checks.
    output_chars: int | None = None
    counted_tokens: int | None = None
    location: str | None = None
    # First answer (content, not reasoning) token; ttft_ms is the first of either kind.
    ttfo_ms: float | None = None
    # Gaps between chunks after the first token, by kernel arrival stamps.
    itl_p50_ms: float | None = None
    itl_p99_ms: float | None = None
    prefill_tokens_per_s: float | None = None  # prompt tokens / ttft (the prefill probe)
    system_fingerprint: str | None = None  # OpenAI-compatible backend configuration id
    signature: str | None = None  # the identity probe's normalized answers, hashed
    # The generated text, held only until its tokens are counted: never stored or printed.
    output_text: str | None = field(default=None, repr=False)
    # A call the probe made before the measured one (the cache probe's first): priced into
    # this result's cost, never stored on its own.
    warmup: ProbeResult | None = field(default=None, repr=False)

    def fail(self, kind: ErrorKind, detail: str | None = None) -> ProbeResult:
        """Mark failed; the first classification wins, so later symptoms never mask the cause."""
        if self.error is None:
            self.error = kind
            self.detail = detail
        self.ok = False
        return self

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in JSON_FIELDS:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
            elif isinstance(value, ErrorKind):
                value = value.value
            elif isinstance(value, float) and name.endswith("_ms"):
                # Timings to the microsecond; costs and rates keep every digit (a cheap
                # probe costs 7.4e-06 USD, which 3 decimals would print as 0.0).
                value = round(value, 3)
            out[name] = value
        return out

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def tokens_per_s(
    completion_tokens: int | None, ttft_ms: float | None, latency_ms: float | None
) -> float | None:
    """Decode speed after the first token: (tokens - 1) / (latency - ttft).

    The service passes the tokens counted in the streamed text (checker.cost.tokens), so
    every route of a model is measured with one tokenizer."""
    if completion_tokens is None or ttft_ms is None or latency_ms is None:
        return None
    if completion_tokens < 2 or latency_ms <= ttft_ms:
        return None
    return (completion_tokens - 1) / ((latency_ms - ttft_ms) / 1000.0)


__all__ = ["JSON_FIELDS", "TRANSIENT_FIELDS", "ErrorKind", "ProbeResult", "tokens_per_s", "utcnow"]
