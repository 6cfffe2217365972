"""OpenAI-compatible probes against the simulator over real loopback sockets: every
ErrorKind a server (or the network path) can cause, usage parsing, and secrecy."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.runner import run_all, run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from tests.builders import config, target
from tests.fixtures_sim import SIM_API_KEY


def make_config(base_url: str, **fields: Any) -> Config:
    return config(target(base_url, **fields))


async def probe(cfg: Config, name: str) -> ProbeResult:
    async with ClientPool(cfg) as pool:
        return await run_probe(cfg, cfg.targets[0], name, pool, Redactor(cfg.secrets()))


@pytest.fixture
def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def full_backlog_port() -> Iterator[int]:
    """A listener that never accepts, with its accept queue full: the kernel drops further
    SYNs, so a connect hangs until the client's connect timeout, all on loopback."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            f.connect(listener.getsockname())
        fillers.append(f)
    time.sleep(0.05)
    yield listener.getsockname()[1]
    for f in fillers:
        f.close()
    listener.close()


# --- success --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["models", "chat", "stream", "known_answer"])
async def test_every_probe_passes_against_a_healthy_route(sim: SimServer, name: str) -> None:
    cfg = make_config(sim.url())
    result = await probe(cfg, name)
    assert result.ok, result.detail
    assert result.error is None and result.detail is None
    assert result.status == 200
    assert result.location == "local"
    assert result.ttfb_ms is not None and result.latency_ms is not None
    assert 0 < result.ttfb_ms <= result.latency_ms
    assert result.connect_ms is not None and result.connect_ms >= 0


async def test_stream_records_usage_model_and_chunks(sim: SimServer) -> None:
    sim.set("default", completion_tokens=8, prompt_tokens=20, cached_tokens=5, model="sim-x")
    result = await probe(make_config(sim.url()), "stream")
    assert result.ok
    assert result.model == "sim-x"
    assert (result.prompt_tokens, result.completion_tokens, result.cached_tokens) == (20, 8, 5)
    assert result.reasoning_tokens == 0
    # role chunk + 8 tokens + finish chunk + usage chunk
    assert result.chunks == 11
    assert result.output_chars == len("one two three four five six seven eight")
    assert result.tokens_per_s is not None and result.tokens_per_s > 0


@pytest.mark.parametrize("name", ["chat", "stream"])
async def test_deepseek_cache_fields_and_reasoning_tokens(sim: SimServer, name: str) -> None:
    sim.set(
        "default",
        cache_style="deepseek",
        prompt_tokens=30,
        cached_tokens=24,
        reasoning_tokens=4,
        completion_tokens=3,
    )
    result = await probe(make_config(sim.url()), name)
    assert result.ok, result.detail
    assert result.prompt_tokens == 30
    assert result.cached_tokens == 24
    assert result.reasoning_tokens == 4
    assert result.completion_tokens == 7


@pytest.mark.parametrize("name", ["chat", "stream"])
async def test_openai_cache_fields(sim: SimServer, name: str) -> None:
    sim.set("default", cache_style="openai", prompt_tokens=50, cached_tokens=32)
    result = await probe(make_config(sim.url()), name)
    assert result.ok
    assert (result.prompt_tokens, result.cached_tokens) == (50, 32)


async def test_stream_without_usage_leaves_tokens_null(sim: SimServer) -> None:
    sim.set("default", usage=False)
    result = await probe(make_config(sim.url()), "stream")
    assert result.ok
    assert result.completion_tokens is None
    assert result.tokens_per_s is None
    assert result.ttft_ms is not None


async def test_expect_model_matching_passes(sim: SimServer) -> None:
    sim.set("default", model="sim-small-2025-01-01")
    result = await probe(
        make_config(sim.url(), expect_model=r"sim-small(-\d{4}-\d\d-\d\d)?"), "stream"
    )
    assert result.ok
    assert result.model == "sim-small-2025-01-01"


# --- every ErrorKind a server can cause -----------------------------------------------------

CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    # (id, probe, simulator behaviour, target overrides, expected kind)
    ("auth-401", "chat", {"status": 401}, {}, "auth"),
    ("auth-403", "stream", {"status": 403}, {}, "auth"),
    ("auth-models", "models", {"status": 401}, {}, "auth"),
    ("quota-402", "chat", {"status": 402}, {}, "quota"),
    ("quota-429", "stream", {"status": 429, "error_code": "insufficient_quota"}, {}, "quota"),
    ("rate-limited", "chat", {"status": 429, "retry_after": "7"}, {}, "rate_limited"),
    ("client-error-400", "chat", {"status": 400}, {}, "client_error"),
    ("client-error-413", "stream", {"status": 413}, {}, "client_error"),
    ("server-error-500", "chat", {"status": 500}, {}, "server_error"),
    ("server-error-503", "stream", {"status": 503}, {}, "server_error"),
    ("server-error-models", "models", {"status": 502}, {}, "server_error"),
    ("error-in-200-body", "chat", {"fault": "stream_error"}, {}, "server_error"),
    ("bad-response-not-json-chat", "chat", {"fault": "not_json"}, {}, "bad_response"),
    ("bad-response-not-json-stream", "stream", {"fault": "not_json"}, {}, "bad_response"),
    ("bad-response-not-json-models", "models", {"fault": "not_json"}, {}, "bad_response"),
    ("bad-response-malformed-stream", "stream", {"fault": "malformed"}, {}, "bad_response"),
    ("bad-response-malformed-chat", "chat", {"fault": "malformed"}, {}, "bad_response"),
    ("empty-stream", "stream", {"fault": "empty"}, {}, "empty"),
    ("empty-chat", "chat", {"fault": "empty"}, {}, "empty"),
    ("empty-known-answer", "known_answer", {"fault": "empty"}, {}, "empty"),
    ("truncated", "stream", {"fault": "truncate"}, {}, "truncated"),
    ("disconnect-stream", "stream", {"fault": "disconnect"}, {}, "disconnect"),
    ("disconnect-chat", "chat", {"fault": "disconnect"}, {}, "disconnect"),
    (
        "stall-stream",
        "stream",
        {"fault": "stall", "stall_s": 5},
        {"read_timeout": "300ms"},
        "stall",
    ),
    ("stall-chat", "chat", {"fault": "stall", "stall_s": 5}, {"read_timeout": "300ms"}, "stall"),
    ("stream-error", "stream", {"fault": "stream_error"}, {}, "stream_error"),
    ("wrong-answer", "known_answer", {"answer": "41"}, {}, "wrong_answer"),
    (
        "model-mismatch-stream",
        "stream",
        {"model": "gpt-4o"},
        {"expect_model": "sim-.*"},
        "model_mismatch",
    ),
    (
        "model-mismatch-chat",
        "chat",
        {"model": "gpt-4o"},
        {"expect_model": "sim-.*"},
        "model_mismatch",
    ),
    ("model-not-listed", "models", {"models": ["other"]}, {}, "not_found"),
    ("too-large-stream-bytes", "stream", {"fault": "huge"}, {"max_body_bytes": 4096}, "too_large"),
    ("too-large-chat-bytes", "chat", {"fault": "huge"}, {"max_body_bytes": 4096}, "too_large"),
    (
        "too-large-stream-events",
        "stream",
        {"completion_tokens": 40, "inter_token_ms": 0},
        {"max_stream_events": 10},
        "too_large",
    ),
    (
        "timeout-deadline-stream",
        "stream",
        {"ttft_ms": 1500},
        {"timeout": "300ms", "read_timeout": "5s"},
        "timeout",
    ),
    ("timeout-deadline-chat", "chat", {"ttft_ms": 1500}, {"timeout": "300ms"}, "timeout"),
    (
        "timeout-no-headers",
        "chat",
        {"headers_delay_ms": 1500},
        {"read_timeout": "300ms"},
        "timeout",
    ),
]


@pytest.mark.parametrize(
    ("probe_name", "behavior", "overrides", "kind"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_server_caused_error_kinds(
    sim: SimServer,
    probe_name: str,
    behavior: dict[str, Any],
    overrides: dict[str, Any],
    kind: str,
) -> None:
    sim.set("default", **behavior)
    started = time.perf_counter()
    result = await probe(make_config(sim.url(), **overrides), probe_name)
    assert result.error == ErrorKind(kind), result.detail
    assert not result.ok
    assert result.detail
    assert time.perf_counter() - started < 3.0  # limits cut hostile endpoints short


async def test_error_detail_carries_the_provider_message(sim: SimServer) -> None:
    sim.set("default", status=429, error_message="Rate limit reached for requests", echo_auth=False)
    result = await probe(make_config(sim.url()), "chat")
    assert result.error == ErrorKind.rate_limited
    assert result.status == 429
    assert result.detail is not None and "Rate limit reached for requests" in result.detail


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"retry_after": "7"}, 7.0), ({"retry_after_ms": "1500"}, 1.5), ({}, None)],
)
async def test_retry_after_from_both_headers(
    sim: SimServer, headers: dict[str, str], expected: float | None
) -> None:
    sim.set("default", status=429, **headers)
    result = await probe(make_config(sim.url()), "stream")
    assert result.error == ErrorKind.rate_limited
    assert result.retry_after_s == expected


async def test_wrong_route_path_is_not_found(sim: SimServer) -> None:
    result = await probe(make_config(f"{sim.root_url}/v2"), "chat")
    assert result.error == ErrorKind.not_found
    assert result.status == 404


async def test_stall_keeps_what_was_measured(sim: SimServer) -> None:
    sim.set("default", fault="stall", stall_s=5, fault_after_tokens=3)
    result = await probe(make_config(sim.url(), read_timeout="300ms"), "stream")
    assert result.error == ErrorKind.stall
    assert result.ttft_ms is not None
    assert result.chunks is not None and result.chunks >= 4  # role chunk + 3 tokens


async def test_deadline_keeps_ttfb(sim: SimServer) -> None:
    sim.set("default", ttft_ms=1500)
    cfg = make_config(sim.url(), timeout="300ms", read_timeout="5s")
    result = await probe(cfg, "stream")
    assert result.error == ErrorKind.timeout
    assert result.detail == "no complete answer within 300ms"
    assert result.ttfb_ms is not None and result.ttfb_ms < 300
    assert result.ttft_ms is None


# --- failures of the path to the server -----------------------------------------------------


async def test_closed_port_is_connect(closed_port: int) -> None:
    result = await probe(make_config(f"http://127.0.0.1:{closed_port}/v1"), "models")
    assert result.error == ErrorKind.connect
    assert result.detail is not None and "refused" in result.detail.lower()
    assert result.status is None and result.ttfb_ms is None


async def test_unresolvable_name_is_dns() -> None:
    result = await probe(make_config("http://api.checker-test.invalid/v1"), "models")
    assert result.error == ErrorKind.dns
    assert result.detail is not None and result.detail.startswith("DNS lookup failed")


async def test_tls_to_a_plain_http_port_is_tls(sim: SimServer) -> None:
    result = await probe(make_config(f"https://127.0.0.1:{sim.port}/v1"), "models")
    assert result.error == ErrorKind.tls
    assert result.detail is not None and result.detail.startswith("TLS handshake failed")


async def test_unanswered_connect_is_connect_timeout(full_backlog_port: int) -> None:
    cfg = make_config(f"http://127.0.0.1:{full_backlog_port}/v1", connect_timeout="200ms")
    started = time.perf_counter()
    result = await probe(cfg, "models")
    assert result.error == ErrorKind.connect_timeout
    assert time.perf_counter() - started < 2.0


# --- secrets --------------------------------------------------------------------------------

WRONG_KEY = "sk-wrong-KEY-9876543210abcdef"


def _dump(result: ProbeResult) -> str:
    return json.dumps(result.as_dict(), default=str)


@pytest.mark.parametrize("name", ["models", "chat", "stream", "known_answer"])
async def test_wrong_key_is_auth_and_never_echoed(sim_with_key: SimServer, name: str) -> None:
    cfg = make_config(sim_with_key.url(), api_key=WRONG_KEY)
    result = await probe(cfg, name)
    assert result.error == ErrorKind.auth
    assert WRONG_KEY not in _dump(result)
    assert "9876543210" not in _dump(result)
    assert result.detail is not None and "***" in result.detail


async def test_right_key_echoed_in_an_error_is_redacted(sim_with_key: SimServer) -> None:
    sim_with_key.set("default", status=500, echo_auth=True)
    cfg = make_config(sim_with_key.url(), api_key=SIM_API_KEY)
    for name in ("chat", "stream"):
        result = await probe(cfg, name)
        assert result.error == ErrorKind.server_error
        assert SIM_API_KEY not in _dump(result)
        assert result.detail is not None and "***" in result.detail


async def test_right_key_passes(sim_with_key: SimServer) -> None:
    cfg = make_config(sim_with_key.url(), api_key=SIM_API_KEY)
    result = await probe(cfg, "stream")
    assert result.ok, result.detail


async def test_header_secret_is_sent_and_redacted(sim: SimServer) -> None:
    # A relay that wants its token in a custom header and echoes it back in an error.
    sim.set("default", status=400, echo_auth=True)
    cfg = make_config(sim.url(), headers={"authorization": "Bearer relay-token-ABCDEF123456"})
    result = await probe(cfg, "chat")
    assert result.error == ErrorKind.client_error
    assert "relay-token-ABCDEF123456" not in _dump(result)


# --- runner ---------------------------------------------------------------------------------


async def test_run_all_runs_concurrently_in_order(sim: SimServer) -> None:
    sim.set("default", ttft_ms=300, inter_token_ms=1, completion_tokens=3)
    cfg = make_config(sim.url())
    selection = [(cfg.targets[0], name) for name in ("stream", "chat", "known_answer", "models")]
    started = time.perf_counter()
    async with ClientPool(cfg) as pool:
        results = await run_all(cfg, selection, pool, Redactor(cfg.secrets()))
    elapsed = time.perf_counter() - started
    assert [r.probe for r in results] == ["stream", "chat", "known_answer", "models"]
    assert all(r.ok for r in results), [r.detail for r in results]
    assert elapsed < 0.9  # three 300 ms answers in parallel, not in series


async def test_unexpected_exception_becomes_a_result(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checker.probes import openai

    async def broken(*args: object) -> None:
        raise RuntimeError(f"boom with {SIM_API_KEY}")

    monkeypatch.setattr(openai, "probe_chat", broken)
    result = await probe(make_config(sim.url(), api_key=SIM_API_KEY), "chat")
    assert not result.ok
    assert result.detail == "internal error: RuntimeError"
