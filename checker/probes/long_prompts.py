"""The probes of a long prompt: `prefill` (how fast the route reads a prompt) and `cache`
(whether it reuses a prompt prefix it has seen, as prompt caching promises).

Both stream with an output cap of one token: what they measure is the prompt's side, and
a long prompt costs input tokens on every run (`checker validate` prints the cost per day).

- prefill: `prefill_tokens` of varied text plus a fresh last line; reports the route's
  `prompt_tokens` and `prefill_tokens_per_s` = prompt tokens / TTFT (TTFT of one output
  token is the prompt's processing plus the first decode step; at 1k tokens and more the
  prompt dominates, as in Artificial Analysis' and AIPerf's definitions).
- cache: the same prefix of `cache_prefix_tokens` (>= 1,024, the providers' minimum; the
  same for every run of the target) sent twice in a row with a fresh last line each time;
  the result is the second call: its `cached_tokens` (0 when nothing was reused), TTFT and
  cost at the cached price. A route that never reports a hit is flagged `no_cache_hits`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.chat import Dialect, Redact, stream_once
from checker.probes.prompts import fresh, long_prompt, new_nonce

if TYPE_CHECKING:
    from checker.config.schema import Target

__all__ = ["probe_cache", "probe_prefill"]

_REPLY = "Reply with the single word OK."


async def probe_prefill(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
) -> None:
    nonce = new_nonce()
    prompt = long_prompt(target.prefill_tokens, nonce, fresh(_REPLY, nonce).replace("\n", " "))
    await stream_once(dialect, target, client, result, redact, prompt, max_tokens=1)
    if result.ok:
        if not result.prompt_tokens or not result.ttft_ms:
            result.detail = "the route reported no prompt token count: no prefill speed"
        else:
            result.prefill_tokens_per_s = result.prompt_tokens / (result.ttft_ms / 1000.0)


async def probe_cache(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
) -> None:
    seed = f"checker cache probe {target.name}"

    def prompt() -> str:
        last = fresh(_REPLY, new_nonce()).replace("\n", " ")
        return long_prompt(target.cache_prefix_tokens, seed, last)

    # The first call writes the prefix to the cache (or finds it from the last run); only
    # its failure is kept: a route that cannot answer it cannot be judged on the second.
    first = ProbeResult(target=result.target, probe=result.probe, location=result.location)
    await stream_once(dialect, target, client, first, redact, prompt(), max_tokens=1)
    if not first.ok:
        result.fail(first.error or ErrorKind.bad_response, first.detail or "first call failed")
        result.status = first.status
        return
    await stream_once(dialect, target, client, result, redact, prompt(), max_tokens=1)
    if result.ok and result.cached_tokens is None:
        result.detail = "the route reports no cached-token count"
    result.warmup = first  # both calls cost money: the service prices the two
