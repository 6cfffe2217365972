"""The simulator over real loopback sockets, read with plain httpx."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from checker.sim import Behavior, SimServer, split_even
from tests.fixtures_sim import SIM_API_KEY
from tests.tools import ROOT

STREAM_BODY = {
    "model": "sim-small",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "Say something."}],
}


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": "sim-small", "messages": [{"role": "user", "content": "Hi"}], **extra}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    # One client for the module: building one costs tens of milliseconds.
    with httpx.Client(timeout=5) as client:
        yield client


def stream_lines(http: httpx.Client, sim: SimServer, **kwargs: Any) -> list[str]:
    """All non-blank SSE lines of one streamed chat completion."""
    body = kwargs.pop("json", STREAM_BODY)
    with http.stream("POST", f"{sim.url()}/chat/completions", json=body, **kwargs) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return [line for line in r.iter_lines() if line]


def data_objects(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def content_of(chunks: list[dict[str, Any]], key: str = "content") -> list[str]:
    return [
        c["choices"][0]["delta"][key]
        for c in chunks
        if c["choices"] and c["choices"][0]["delta"].get(key)
    ]


# --- behaviour model ----------------------------------------------------------------------


def test_behavior_from_dict_rejects_unknown_and_invalid_values() -> None:
    assert Behavior.from_dict({"ttft_ms": 300}).ttft_ms == 300
    with pytest.raises(ValueError, match="ttft"):
        Behavior.from_dict({"ttft": 300})
    with pytest.raises(ValueError, match="fault"):
        Behavior.from_dict({"fault": "explode"})
    with pytest.raises(ValueError, match="status"):
        Behavior(status=42)
    b = Behavior(fault="stall", models=["a"], retry_after="3")
    assert Behavior.from_dict(json.loads(json.dumps(b.to_dict()))) == b


def test_split_even_keeps_text_and_balances_pieces() -> None:
    assert split_even("abcdefg", 3) == ["abc", "de", "fg"]
    assert split_even("42", 10) == ["4", "2"]
    assert split_even("", 5) == []
    assert "".join(split_even("The answer is 42.", 4)) == "The answer is 42."


# --- OpenAI streaming ---------------------------------------------------------------------


def test_stream_has_openai_chunk_order_and_usage(sim: SimServer, http: httpx.Client) -> None:
    lines = stream_lines(http, sim)
    chunks = data_objects(lines)
    assert lines[-1] == "data: [DONE]"
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(content_of(chunks)) == "one two three four five six seven eight nine ten"
    assert len(content_of(chunks)) == 10
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "stop"
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 10
    assert usage["usage"]["prompt_tokens"] == 12
    assert usage["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert all(c["model"] == "sim-small" for c in chunks)


def test_stream_without_include_usage_has_no_usage_chunk(
    sim: SimServer, http: httpx.Client
) -> None:
    chunks = data_objects(stream_lines(http, sim, json=chat_body(stream=True)))
    assert all(c["choices"] for c in chunks)
    assert "usage" not in chunks[-1]


def test_reasoning_deltas_come_first_and_are_counted_deepseek_style(
    sim: SimServer, http: httpx.Client
) -> None:
    sim.set(
        "default", reasoning_tokens=3, completion_tokens=2, cached_tokens=5, cache_style="deepseek"
    )
    chunks = data_objects(stream_lines(http, sim))
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]][1:-1]
    assert [list(d) for d in deltas] == [["reasoning_content"]] * 3 + [["content"]] * 2
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 5
    assert usage["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert usage["prompt_cache_hit_tokens"] == 5
    assert usage["prompt_cache_miss_tokens"] == 7


def test_keepalives_and_empty_deltas_precede_the_first_token(
    sim: SimServer, http: httpx.Client
) -> None:
    sim.set("default", ttft_ms=120, keepalive_every_ms=30, empty_deltas=2, role_chunk=False)
    lines = stream_lines(http, sim)
    first_token = next(i for i, line in enumerate(lines) if '"content":"one"' in line)
    before = lines[:first_token]
    assert before.count(": keep-alive") >= 3
    empties = [
        json.loads(line[6:])["choices"][0]["delta"] for line in before if line.startswith("data")
    ]
    assert empties == [{}, {"content": ""}]
    assert ": keep-alive" not in lines[first_token:]


def test_answer_override_reported_tokens_and_wrong_model(
    sim: SimServer, http: httpx.Client
) -> None:
    sim.set(
        "default",
        answer="hello world",
        completion_tokens=4,
        reported_completion_tokens=99,
        model="other",
    )
    chunks = data_objects(stream_lines(http, sim))
    assert content_of(chunks) == ["hel", "lo ", "wor", "ld"]
    assert chunks[-1]["usage"]["completion_tokens"] == 99
    assert {c["model"] for c in chunks} == {"other"}


# --- non-streaming and other endpoints ----------------------------------------------------


def test_non_streaming_answers_the_known_sum(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", reasoning_tokens=2)
    body = chat_body(
        messages=[{"role": "user", "content": "What is 17 + 25? Reply with the number."}]
    )
    r = http.post(f"{sim.url()}/chat/completions", json=body)
    data = r.json()
    assert r.status_code == 200
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "42"
    assert data["choices"][0]["message"]["reasoning_content"] == "think1 think2"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] == 4  # 2 reasoning + "4", "2"


def test_models_and_health(sim: SimServer, http: httpx.Client) -> None:
    models = http.get(f"{sim.url()}/models").json()
    assert [m["id"] for m in models["data"]] == ["sim-small", "sim-large"]
    assert http.get(f"{sim.root_url}/health").json() == {"status": "ok"}
    sim.set("r1", status=503)
    r = http.get(f"{sim.root_url}/r1/health")
    assert r.status_code == 503
    assert r.json()["status"] == "error"
    assert sim.stats()["requests"] == {"models": 1, "health": 2}


def test_status_fault_carries_retry_headers_and_openai_error(
    sim: SimServer, http: httpx.Client
) -> None:
    sim.set(
        "default",
        status=429,
        error_code="rate_limit_exceeded",
        retry_after="7",
        retry_after_ms="6500",
    )
    r = http.post(f"{sim.url()}/chat/completions", json=chat_body(stream=True))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert r.headers["retry-after-ms"] == "6500"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert r.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.timing
def test_headers_delay_is_the_time_to_headers(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", headers_delay_ms=150, ttft_ms=0)
    stream_lines(http, sim)
    timing = sim.timings()[-1]
    assert timing.headers_sent is not None
    assert 0.150 <= timing.headers_sent - timing.received < 0.160


# --- timing fidelity ----------------------------------------------------------------------


@pytest.mark.timing
def test_stream_timing_follows_the_plan(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", ttft_ms=300, inter_token_ms=20, completion_tokens=10)
    arrivals: list[float] = []
    with (
        http.stream("POST", f"{sim.url()}/chat/completions", json=STREAM_BODY) as r,
    ):
        for line in r.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                arrivals.append(time.perf_counter())
    t = sim.timings()[-1]
    assert t.tokens_sent == 10
    assert t.first_token_sent is not None and t.last_byte_sent is not None
    assert abs((t.first_token_sent - t.received) - 0.300) < 0.005
    # Last token at 300 + 9 * 20 ms; the closing chunks follow at once.
    assert abs((t.last_byte_sent - t.received) - 0.480) < 0.008
    # perf_counter is one clock across threads: the client sees a token after it was sent.
    assert 0 <= arrivals[0] - t.first_token_sent < 0.020
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert abs(sum(gaps) / len(gaps) - 0.020) < 0.003


@pytest.mark.timing
def test_non_streaming_response_waits_for_the_whole_generation(
    sim: SimServer, http: httpx.Client
) -> None:
    sim.set("default", ttft_ms=100, inter_token_ms=10, completion_tokens=5)
    http.post(f"{sim.url()}/chat/completions", json=chat_body())
    t = sim.timings()[-1]
    assert t.first_token_sent is not None
    # A sleep is never early; a busy machine may wake it a few ms late.
    assert -0.002 < (t.first_token_sent - t.received) - 0.140 < 0.015


# --- faults -------------------------------------------------------------------------------


def test_truncate_ends_cleanly_without_finish_or_done(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="truncate", fault_after_tokens=3)
    lines = stream_lines(http, sim)
    chunks = data_objects(lines)
    assert content_of(chunks) == ["one", " two", " three"]
    assert "data: [DONE]" not in lines
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)


def test_disconnect_breaks_the_chunked_body(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="disconnect", fault_after_tokens=3)
    received: list[str] = []
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", f"{sim.url()}/chat/completions", json=STREAM_BODY) as r,
    ):
        received.extend(line for line in r.iter_lines() if line)
    assert len(content_of(data_objects(received))) == 3
    assert sim.stats()["completed"] == 0


def test_disconnect_in_non_streaming_body(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="disconnect")
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"{sim.url()}/chat/completions", json=chat_body())


def test_stall_trips_a_short_read_timeout(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="stall", fault_after_tokens=2, stall_s=2, ttft_ms=0, inter_token_ms=0)
    received: list[str] = []
    started = time.perf_counter()
    with (
        pytest.raises(httpx.ReadTimeout),
        http.stream(
            "POST",
            f"{sim.url()}/chat/completions",
            json=STREAM_BODY,
            timeout=httpx.Timeout(5, read=0.2),
        ) as r,
    ):
        received.extend(line for line in r.iter_lines() if line)
    assert time.perf_counter() - started < 1.0
    assert len(content_of(data_objects(received))) == 2


def test_stall_ends_the_stream_after_stall_s(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="stall", fault_after_tokens=1, stall_s=0.3, ttft_ms=0)
    started = time.perf_counter()
    lines = stream_lines(http, sim)
    assert time.perf_counter() - started >= 0.3
    assert "data: [DONE]" not in lines


def test_malformed_chunk_is_sent_in_the_stream(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="malformed", fault_after_tokens=1)
    lines = stream_lines(http, sim)
    assert lines.index("data: {not json") == 2  # after the role chunk and one token


def test_stream_error_object_ends_the_stream(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="stream_error", fault_after_tokens=2)
    lines = stream_lines(http, sim)
    last = json.loads(lines[-1][6:])
    assert last["error"]["type"] == "server_error"
    assert "data: [DONE]" not in lines


def test_empty_fault_has_no_content_but_finishes(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="empty")
    lines = stream_lines(http, sim)
    chunks = data_objects(lines)
    assert content_of(chunks) == []
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 0
    assert lines[-1] == "data: [DONE]"


def test_not_json_answers_html_for_both_modes(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="not_json")
    for body in (chat_body(), chat_body(stream=True)):
        r = http.post(f"{sim.url()}/chat/completions", json=body)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert r.text.startswith("<html>")


@pytest.mark.parametrize("stream", [False, True])
def test_huge_body_exceeds_ten_megabytes(sim: SimServer, http: httpx.Client, stream: bool) -> None:
    sim.set("default", fault="huge")
    read = 0
    with (
        http.stream("POST", f"{sim.url()}/chat/completions", json=chat_body(stream=stream)) as r,
    ):
        for piece in r.iter_bytes():
            read += len(piece)
            if read > 10 * 1024 * 1024:
                break
    assert read > 10 * 1024 * 1024


# --- auth, routes, scripts, control -------------------------------------------------------


def test_auth_rejects_and_echoes_the_received_header(
    sim_with_key: SimServer, http: httpx.Client
) -> None:
    url = f"{sim_with_key.url()}/chat/completions"
    r = http.post(url, json=chat_body(), headers={"Authorization": "Bearer sk-wrong-777"})
    assert r.status_code == 401
    assert "Bearer sk-wrong-777" in r.json()["error"]["message"]
    ok = http.post(url, json=chat_body(), headers={"Authorization": f"Bearer {SIM_API_KEY}"})
    assert ok.status_code == 200
    # A status fault echoes the real key, as careless relays do: the checker must redact it.
    sim_with_key.set("default", status=500)
    r = http.post(url, json=chat_body(), headers={"Authorization": f"Bearer {SIM_API_KEY}"})
    assert r.status_code == 500
    assert SIM_API_KEY in r.json()["error"]["message"]


def test_echo_auth_off_keeps_the_header_out(sim_with_key: SimServer, http: httpx.Client) -> None:
    sim_with_key.set("default", echo_auth=False)
    r = http.get(f"{sim_with_key.url()}/models", headers={"Authorization": "Bearer sk-wrong-777"})
    assert r.status_code == 401
    assert "sk-wrong-777" not in r.text


def test_routes_are_independent(sim: SimServer, http: httpx.Client) -> None:
    sim.set("r1", status=503)
    assert sim.url("r1") == f"http://127.0.0.1:{sim.port}/r1/v1"
    assert http.post(f"{sim.url('r1')}/chat/completions", json=chat_body()).status_code == 503
    assert http.post(f"{sim.url()}/chat/completions", json=chat_body()).status_code == 200
    assert sim.stats("r1")["status"] == {503: 1}
    assert sim.stats("default")["status"] == {200: 1}
    assert {t.route for t in sim.timings()} == {"r1", "default"}
    with pytest.raises(ValueError):
        sim.url("Bad_Route")


def test_script_queue_is_consumed_in_order_then_standing(
    sim: SimServer, http: httpx.Client
) -> None:
    sim.script("default", [Behavior(status=500), Behavior(status=429), Behavior(model="m2")])
    url = f"{sim.url()}/chat/completions"
    # A models request does not consume the script.
    assert http.get(f"{sim.url()}/models").status_code == 200
    replies = [http.post(url, json=chat_body()) for _ in range(4)]
    assert [r.status_code for r in replies] == [500, 429, 200, 200]
    assert [replies[2].json()["model"], replies[3].json()["model"]] == ["m2", "sim-small"]


def test_http_control_endpoints(sim: SimServer, http: httpx.Client) -> None:
    root = sim.root_url
    r = http.put(f"{root}/_sim/routes/r2", json={"status": 429, "retry_after": "3"})
    assert r.status_code == 200
    assert http.put(f"{root}/_sim/routes/r2", json={"stauts": 1}).status_code == 400
    assert http.get(f"{root}/_sim/routes/r2").json()["status"] == 429
    reply = http.post(f"{sim.url('r2')}/chat/completions", json=chat_body())
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "3"
    queued = http.post(f"{root}/_sim/routes/r2/script", json=[{"status": 200}, {"status": 502}])
    assert queued.json() == {"queued": 2}
    codes = [
        http.post(f"{sim.url('r2')}/chat/completions", json=chat_body()).status_code
        for _ in range(3)
    ]
    assert codes == [200, 502, 429]
    stats = http.get(f"{root}/_sim/stats").json()
    assert stats["r2"]["status"] == {"429": 2, "200": 1, "502": 1}
    assert stats["r2"]["requests"] == {"chat": 4}
    assert http.delete(f"{root}/_sim/stats").status_code == 200
    assert sim.stats() == {"requests": {}, "status": {}, "completed": 0}
    assert sim.timings() == []


def test_bad_request_body_is_a_400(sim: SimServer, http: httpx.Client) -> None:
    r = http.post(f"{sim.url()}/chat/completions", content=b"[1, 2]")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


# --- Anthropic Messages -------------------------------------------------------------------


def anthropic_events(
    http: httpx.Client, sim: SimServer, **headers: str
) -> list[tuple[str, dict[str, Any]]]:
    body = {
        "model": "claude-sim",
        "max_tokens": 16,
        "stream": True,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    events: list[tuple[str, dict[str, Any]]] = []
    with http.stream("POST", f"{sim.url()}/messages", json=body, headers=headers) as r:
        assert r.status_code == 200
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    return events


def test_anthropic_stream_format_with_thinking(sim_with_key: SimServer, http: httpx.Client) -> None:
    sim_with_key.set("default", reasoning_tokens=2, completion_tokens=3, cached_tokens=4)
    events = anthropic_events(http, sim_with_key, **{"x-api-key": SIM_API_KEY})
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",  # signature
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert [d["type"] for d in deltas] == ["thinking_delta"] * 2 + ["signature_delta"] + [
        "text_delta"
    ] * 3
    assert "".join(d.get("text", "") for d in deltas) == "one two three"
    assert events[0][1]["message"]["usage"]["cache_read_input_tokens"] == 4
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] == 5


def test_anthropic_stream_error_event_and_error_shape(sim: SimServer, http: httpx.Client) -> None:
    sim.set("default", fault="stream_error", fault_after_tokens=1)
    events = anthropic_events(http, sim)
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "overloaded_error"
    sim.set("default", status=529)
    r = http.post(f"{sim.url()}/messages", json={"model": "m", "max_tokens": 5, "messages": []})
    assert r.status_code == 529
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "overloaded_error"


def test_anthropic_non_streaming_message(sim: SimServer, http: httpx.Client) -> None:
    body = {
        "model": "claude-sim",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "What is 2 + 2?"}]}],
    }
    data = http.post(f"{sim.url()}/messages", json=body).json()
    assert data["type"] == "message"
    assert data["content"] == [{"type": "text", "text": "4"}]
    assert data["stop_reason"] == "end_turn"
    assert data["usage"]["output_tokens"] == 1


# --- lifecycle ----------------------------------------------------------------------------


async def test_start_and_stop_in_the_current_loop() -> None:
    server = SimServer()
    await server.start()
    async with httpx.AsyncClient() as client:
        try:
            r = await client.get(f"{server.url()}/models")
            assert r.status_code == 200
        finally:
            await server.stop()
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{server.url()}/models")


def test_run_forever_stops_cleanly_on_sigterm(http: httpx.Client) -> None:
    code = "from checker.sim import run_forever; run_forever('127.0.0.1', 0, None, {})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        assert http.get(f"{url}/models").status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()
