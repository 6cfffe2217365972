"""Token honesty: the probe counts the streamed text's tokens; an over-counting route is
flagged, an honest one is not (over real sockets against the simulator)."""

from __future__ import annotations

import pytest

from checker.config.load import parse
from checker.config.schema import Config
from checker.cost.counting import counted_usage_mismatch
from checker.cost.tokens import count_output_tokens, count_tokens
from checker.probes.base import ProbeResult
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from checker.store.models import result_to_row

BAND = (0.8, 1.25)
ANSWER = "The quick brown fox jumps over the lazy dog near the quiet river bank today."


def config(sim: SimServer) -> Config:
    return parse(
        f"""
targets:
  - name: t
    kind: openai
    base_url: {sim.url()}
    model: gpt-4o-mini
    probes: [stream]
"""
    )


async def stream_once(cfg: Config) -> ProbeResult:
    target = cfg.targets[0]
    async with ClientPool(cfg) as pool:
        return await run_probe(cfg, target, "stream", pool, Redactor())


@pytest.mark.parametrize(("reported", "flagged"), [(None, False), (60, True)])
async def test_counted_tokens_flag_over_counting(
    sim: SimServer, reported: int | None, flagged: bool
) -> None:
    sim.set("default", answer=ANSWER, completion_tokens=16, reported_completion_tokens=reported)
    cfg = config(sim)
    result = await stream_once(cfg)
    assert result.ok, result.detail
    assert result.output_text == ANSWER
    count_output_tokens(result, cfg.targets[0])
    assert result.output_text is None  # the text is dropped once counted
    assert result.counted_tokens == count_tokens(ANSWER, "gpt-4o-mini").tokens
    verdict = counted_usage_mismatch(
        result.completion_tokens, result.reasoning_tokens, result.counted_tokens, BAND
    )
    assert verdict is flagged
    row = result_to_row(result, uid="u")
    assert "output_text" not in row and row["counted_tokens"] == result.counted_tokens


def test_hidden_reasoning_is_not_over_counting() -> None:
    # 10 visible tokens streamed, 40 reported of which 30 were hidden reasoning: honest.
    assert counted_usage_mismatch(40, 30, 10, BAND) is False
    # The same 40 with no reasoning reported: four times what was streamed.
    assert counted_usage_mismatch(40, 0, 10, BAND) is True
    assert counted_usage_mismatch(3, 0, 2, BAND) is None  # too small to judge


async def test_decode_speed_counts_streamed_tokens_not_reported_usage(sim: SimServer) -> None:
    # Two routes stream the same 16 tokens at the same pace; one reports 3x the usage.
    speeds = {}
    for reported in (None, 48):
        sim.set("default", answer=ANSWER, completion_tokens=16, reported_completion_tokens=reported)
        cfg = config(sim)
        result = await stream_once(cfg)
        assert result.ok, result.detail
        count_output_tokens(result, cfg.targets[0])
        assert result.tokens_per_s is not None and result.counted_tokens is not None
        assert result.ttft_ms is not None and result.latency_ms is not None
        expected = (result.counted_tokens - 1) / ((result.latency_ms - result.ttft_ms) / 1000)
        assert result.tokens_per_s == pytest.approx(expected)
        speeds[reported] = result.tokens_per_s
    # Same pace, same tokenizer: within timing noise of each other, not 3x apart.
    assert 0.5 < speeds[48] / speeds[None] < 2.0
