"""Route truth against the simulator's own records: fresh prompts, the system fingerprint,
the prefill and cache probes, the identity signature, and what probes ask for."""

from __future__ import annotations

from typing import Any

import pytest

from checker.config.schema import Config
from checker.probes.base import ProbeResult
from checker.probes.identity import QUESTIONS, signature
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from tests.builders import config, target


def make(sim: SimServer, route: str, **fields: Any) -> Config:
    return config(target(sim.url(route), **fields))


async def probe(cfg: Config, name: str) -> ProbeResult:
    async with ClientPool(cfg) as pool:
        return await run_probe(cfg, cfg.targets[0], name, pool, Redactor(cfg.secrets()))


@pytest.mark.parametrize("name", ["stream", "chat"])
async def test_every_probe_sends_a_prompt_no_cache_has_seen(sim: SimServer, name: str) -> None:
    cfg = make(sim, "fresh")
    for _ in range(3):
        assert (await probe(cfg, name)).ok
    shas = [t.prompt_sha for t in sim.timings("fresh")]
    assert len(shas) == 3 and len(set(shas)) == 3  # never the same body twice
    same = make(sim, "same", fresh_prompt=False)
    for _ in range(2):
        assert (await probe(same, name)).ok
    assert len({t.prompt_sha for t in sim.timings("same")}) == 1


async def test_known_answer_keeps_its_exact_prompt(sim: SimServer) -> None:
    cfg = make(sim, "ka")
    for _ in range(2):
        assert (await probe(cfg, "known_answer")).ok
    assert len({t.prompt_sha for t in sim.timings("ka")}) == 1


async def test_the_system_fingerprint_is_recorded_and_printed(sim: SimServer) -> None:
    sim.set("fp", system_fingerprint="fp_2024a")
    cfg = make(sim, "fp")
    for name in ("stream", "chat"):
        result = await probe(cfg, name)
        assert result.system_fingerprint == "fp_2024a"
        assert result.to_json()["system_fingerprint"] == "fp_2024a"
    sim.set("fp", system_fingerprint="fp_2024b")  # the relay swapped the backend
    assert (await probe(cfg, "stream")).system_fingerprint == "fp_2024b"


async def test_prefill_speed_is_prompt_tokens_over_ttft(sim: SimServer) -> None:
    sim.set("long", prefill_tokens_per_s=50_000, ttft_ms=5)
    cfg = make(sim, "long", prefill_tokens=4000)
    result = await probe(cfg, "prefill")
    assert result.ok, result.detail
    [truth] = sim.timings("long")
    assert result.prompt_tokens == truth.prompt_tokens
    assert 3900 <= result.prompt_tokens <= 4100  # the prompt is the size asked for
    assert truth.asked["max_tokens"] == 1  # the output side costs one token
    assert truth.ttft_ms is not None and result.prefill_tokens_per_s is not None
    real = truth.prompt_tokens / (truth.ttft_ms / 1000)
    # The client's TTFT adds the network and its own stamps: within 10% of the sim's.
    assert result.prefill_tokens_per_s == pytest.approx(real, rel=0.10)
    again = await probe(cfg, "prefill")
    one, two = sim.timings("long")
    assert one.prompt_sha != two.prompt_sha  # a fresh prompt each run
    assert again.ok


async def test_the_cache_probe_sees_a_hit_or_its_absence(sim: SimServer) -> None:
    sim.set("hits", cache="prefix")
    hit = await probe(make(sim, "hits"), "cache")
    assert hit.ok, hit.detail
    first, second = sim.timings("hits")
    assert first.cached_tokens == 0 and second.cached_tokens is not None
    assert second.cached_tokens >= 1024  # the provider minimum
    assert hit.cached_tokens == second.cached_tokens and hit.prompt_tokens == second.prompt_tokens
    assert first.prompt_sha != second.prompt_sha  # a fresh last line, a shared prefix
    assert hit.warmup is not None and hit.warmup.prompt_tokens == first.prompt_tokens
    sim.set("misses", cache="never")
    miss = await probe(make(sim, "misses"), "cache")
    assert miss.ok and miss.cached_tokens == 0


async def test_identity_signature_is_stable_and_changes_with_the_model(sim: SimServer) -> None:
    cfg = make(sim, "who")
    a, b = await probe(cfg, "identity"), await probe(cfg, "identity")
    assert a.ok and a.signature is not None and a.signature == b.signature
    asked = sim.timings("who")
    assert len(asked) == 2 * len(QUESTIONS)
    assert all(t.asked.get("temperature") == 0.0 for t in asked)
    sim.set("who", answer="a different model answers differently")
    c = await probe(cfg, "identity")
    assert c.ok and c.signature != a.signature
    assert c.signature == signature(["a different model answers differently"] * len(QUESTIONS))


async def test_reasoning_effort_is_sent_when_set(sim: SimServer) -> None:
    cfg = make(sim, "think", reasoning_effort="minimal")
    assert (await probe(cfg, "stream")).ok
    [t] = sim.timings("think")
    assert t.asked["reasoning_effort"] == "minimal" and t.asked["max_tokens"] == 16
