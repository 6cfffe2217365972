"""Anthropic Messages API probes against the simulator over real loopback sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from tests.builders import config, target
from tests.fixtures_sim import SIM_API_KEY


def make_config(base_url: str, **fields: Any) -> Config:
    return config(target(base_url, name="claude", kind="anthropic", **fields))


async def probe(cfg: Config, name: str) -> ProbeResult:
    async with ClientPool(cfg) as pool:
        return await run_probe(cfg, cfg.targets[0], name, pool, Redactor(cfg.secrets()))


@pytest.mark.parametrize("name", ["models", "chat", "stream", "known_answer"])
async def test_every_probe_passes(sim: SimServer, name: str) -> None:
    result = await probe(make_config(sim.url()), name)
    assert result.ok, result.detail
    assert result.status == 200
    assert result.ttfb_ms is not None and result.latency_ms is not None


@pytest.mark.parametrize("name", ["chat", "stream"])
async def test_base_url_without_v1_reaches_the_same_api(sim: SimServer, name: str) -> None:
    result = await probe(make_config(sim.url().removesuffix("/v1")), name)
    assert result.ok, result.detail


@pytest.mark.parametrize("name", ["chat", "stream"])
async def test_usage_counts_cache_reads_into_the_prompt(sim: SimServer, name: str) -> None:
    sim.set("default", prompt_tokens=40, cached_tokens=30, completion_tokens=6, model="claude-x")
    result = await probe(make_config(sim.url()), name)
    assert result.ok, result.detail
    assert result.prompt_tokens == 40  # input_tokens 10 + cache_read_input_tokens 30
    assert result.cached_tokens == 30
    assert result.completion_tokens == 6
    assert result.model == "claude-x"


async def test_stream_measures_ttft_chunks_and_speed(sim: SimServer) -> None:
    sim.set("default", ttft_ms=200, inter_token_ms=10, completion_tokens=11, keepalive_every_ms=30)
    result = await probe(make_config(sim.url()), "stream")
    assert result.ok, result.detail
    # Pings every 30 ms arrive long before the first token and must not count for ttft
    # (precise fidelity is test_probe_timing's job; this is about the dialect).
    assert result.ttft_ms is not None and result.ttft_ms >= 200
    assert result.tokens_per_s is not None and result.tokens_per_s > 0
    # Pings are keep-alives, not chunks: message_start, block start/stop, 11 deltas,
    # message_delta and message_stop remain.
    assert result.chunks == 1 + 1 + 11 + 1 + 1 + 1


async def test_thinking_deltas_count_for_ttft(sim: SimServer) -> None:
    # Thinking starts at 150 ms; the first text delta only at 150 + 3 * 80 = 390 ms.
    sim.set("default", ttft_ms=150, inter_token_ms=80, reasoning_tokens=3, completion_tokens=2)
    result = await probe(make_config(sim.url()), "stream")
    assert result.ok, result.detail
    assert result.ttft_ms is not None and 150 <= result.ttft_ms < 330


CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    ("auth", "chat", {"status": 401}, {}, "auth"),
    ("rate-limited", "stream", {"status": 429, "retry_after": "3"}, {}, "rate_limited"),
    ("overloaded-529", "stream", {"status": 529}, {}, "server_error"),
    ("overloaded-529-chat", "chat", {"status": 529}, {}, "server_error"),
    (
        "low-credit-400",
        "chat",
        {"status": 400, "error_message": "Your credit balance is too low"},
        {},
        "quota",
    ),
    ("overloaded-in-200-body", "chat", {"fault": "stream_error"}, {}, "server_error"),
    ("stream-error-event", "stream", {"fault": "stream_error"}, {}, "stream_error"),
    ("malformed-event", "stream", {"fault": "malformed"}, {}, "bad_response"),
    ("not-json", "chat", {"fault": "not_json"}, {}, "bad_response"),
    ("truncated", "stream", {"fault": "truncate"}, {}, "truncated"),
    ("disconnect", "stream", {"fault": "disconnect"}, {}, "disconnect"),
    ("stall", "stream", {"fault": "stall", "stall_s": 5}, {"read_timeout": "300ms"}, "stall"),
    ("empty", "stream", {"fault": "empty"}, {}, "empty"),
    ("wrong-answer", "known_answer", {"answer": "24"}, {}, "wrong_answer"),
    (
        "model-mismatch",
        "stream",
        {"model": "claude-3"},
        {"expect_model": "sim-.*"},
        "model_mismatch",
    ),
    ("too-large", "stream", {"fault": "huge"}, {"max_body_bytes": 4096}, "too_large"),
    ("timeout", "stream", {"ttft_ms": 1500}, {"timeout": "300ms", "read_timeout": "5s"}, "timeout"),
    ("model-not-listed", "models", {"models": ["claude-other"]}, {}, "not_found"),
]


@pytest.mark.parametrize(
    ("probe_name", "behavior", "overrides", "kind"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_error_kinds(
    sim: SimServer,
    probe_name: str,
    behavior: dict[str, Any],
    overrides: dict[str, Any],
    kind: str,
) -> None:
    sim.set("default", **behavior)
    result = await probe(make_config(sim.url(), **overrides), probe_name)
    assert result.error == ErrorKind(kind), result.detail
    assert not result.ok and result.detail


async def test_retry_after_is_read(sim: SimServer) -> None:
    sim.set("default", status=429, retry_after="3")
    result = await probe(make_config(sim.url()), "chat")
    assert result.retry_after_s == 3.0


async def test_sends_x_api_key_and_version(sim_with_key: SimServer) -> None:
    cfg = make_config(sim_with_key.url(), api_key=SIM_API_KEY)
    result = await probe(cfg, "stream")
    assert result.ok, result.detail


@pytest.mark.parametrize("name", ["chat", "stream"])
async def test_wrong_key_is_auth_and_never_echoed(sim_with_key: SimServer, name: str) -> None:
    wrong = "sk-ant-wrong-0123456789abcdef"
    result = await probe(make_config(sim_with_key.url(), api_key=wrong), name)
    assert result.error == ErrorKind.auth
    dumped = json.dumps(result.as_dict(), default=str)
    assert wrong not in dumped and "0123456789abcdef" not in dumped
