"""The `http` probe (conditions, limits, transport failures) and the client pool, over real
loopback sockets against the simulator."""

from __future__ import annotations

import json
import socket
from typing import Any

from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.sim.server import SimServer
from tests.builders import config, target


def make_config(url: str, targets: list[dict[str, Any]] | None = None, **fields: Any) -> Config:
    return config(target(url, name="web", kind="http", **fields), *(targets or []))


async def probe(cfg: Config) -> ProbeResult:
    async with ClientPool(cfg) as pool:
        return await run_probe(cfg, cfg.targets[0], "http", pool, Redactor(cfg.secrets()))


def health(sim: SimServer) -> str:
    return f"{sim.root_url}/health"


async def test_default_condition_passes_on_200(sim: SimServer) -> None:
    result = await probe(make_config(health(sim)))
    assert result.ok, result.detail
    assert result.status == 200
    assert result.ttfb_ms is not None and result.latency_ms is not None
    assert result.connect_ms is not None
    assert result.ttft_ms is None and result.completion_tokens is None


async def test_all_condition_subjects_pass(sim: SimServer) -> None:
    conditions = [
        "status == 200",
        'json.status == "ok"',
        'body contains "ok"',
        "latency_ms < 5000",
        "ttfb_ms < 5000",
        'header.content-type contains "json"',
    ]
    result = await probe(make_config(health(sim), http={"conditions": conditions}))
    assert result.ok, result.detail


async def test_failing_json_condition(sim: SimServer) -> None:
    cfg = make_config(health(sim), http={"conditions": ['json.status == "down"']})
    result = await probe(cfg)
    assert result.error == ErrorKind.condition
    assert result.detail == "json.status == \"down\" (got 'ok')"


async def test_first_failing_condition_is_reported(sim: SimServer) -> None:
    conditions = ["status == 200", 'body contains "nope"', "latency_ms < 0.001"]
    result = await probe(make_config(health(sim), http={"conditions": conditions}))
    assert result.error == ErrorKind.condition
    assert result.detail is not None and result.detail.startswith('body contains "nope"')


async def test_server_error_fails_the_default_condition(sim: SimServer) -> None:
    sim.set("default", status=503, retry_after="5")
    result = await probe(make_config(health(sim)))
    assert result.error == ErrorKind.condition
    assert result.status == 503
    assert result.detail == "status == 200 (got 503)"
    assert result.retry_after_s == 5.0


async def test_conditions_can_accept_an_error_status(sim: SimServer) -> None:
    sim.set("default", status=503)
    result = await probe(make_config(health(sim), http={"conditions": ["status == 503"]}))
    assert result.ok, result.detail


async def test_post_json_body(sim: SimServer) -> None:
    sim.set("default", answer="pong", completion_tokens=1)
    cfg = make_config(
        sim.url() + "/chat/completions",
        http={
            "method": "POST",
            "json": {"model": "m", "messages": [{"role": "user", "content": "ping"}]},
            "conditions": ["status == 200", 'json.choices[0].message.content == "pong"'],
        },
    )
    result = await probe(cfg)
    assert result.ok, result.detail


async def test_post_raw_body(sim: SimServer) -> None:
    # Not a JSON object, so the simulator answers 400: the raw body was sent as is.
    cfg = make_config(
        sim.url() + "/chat/completions",
        http={"method": "POST", "body": "plain text", "conditions": ["status == 400"]},
    )
    result = await probe(cfg)
    assert result.ok, result.detail


async def test_body_over_the_limit_is_too_large(sim: SimServer) -> None:
    sim.set("default", fault="huge")
    result = await probe(make_config(health(sim), max_body_bytes=4096))
    assert result.error == ErrorKind.too_large
    assert result.detail == "response body over 4096 bytes"


async def test_stall_mid_body(sim: SimServer) -> None:
    sim.set("default", fault="stall", stall_s=5)
    result = await probe(make_config(health(sim), read_timeout="300ms"))
    assert result.error == ErrorKind.stall


async def test_closed_port_is_connect() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result = await probe(make_config(f"http://127.0.0.1:{port}/health"))
    assert result.error == ErrorKind.connect


async def test_echoed_secret_never_reaches_the_condition_detail(sim_with_key: SimServer) -> None:
    secret = "sk-http-probe-SECRET-42424242"
    cfg = make_config(
        sim_with_key.url() + "/chat/completions",
        api_key=secret,
        http={"method": "POST", "json": {"model": "m"}, "conditions": ['body contains "zzz"']},
    )
    result = await probe(cfg)
    assert result.error == ErrorKind.condition
    assert result.status == 401
    assert secret not in json.dumps(result.as_dict(), default=str)
    assert "42424242" not in (result.detail or "")


async def test_echoed_secret_is_redacted_inside_the_quoted_body(sim: SimServer) -> None:
    # The secret sits where the condition's 60-character quote of the body would cut it.
    secret = "relay-token-SECRET-7777777777"
    sim.set("default", status=400, error_message="x" * 5, echo_auth=True)
    cfg = make_config(
        sim.url() + "/chat/completions",
        headers={"authorization": secret},
        http={"method": "POST", "json": {"model": "m"}, "conditions": ['body contains "zzz"']},
    )
    result = await probe(cfg)
    assert result.error == ErrorKind.condition
    assert result.detail is not None and "relay" not in result.detail
    assert "7777" not in result.detail


# --- client pool ----------------------------------------------------------------------------


def two_targets(url: str, **first: Any) -> Config:
    return make_config(url, targets=[{"name": "other", "kind": "http", "base_url": url}], **first)


async def test_pool_builds_one_client_per_target_and_reuses_it() -> None:
    cfg = two_targets("http://127.0.0.1:1/")
    async with ClientPool(cfg) as pool:
        web, other = cfg.targets
        assert pool.client(web) is pool.client(web)
        assert pool.client(web) is not pool.client(other)
        clients = [pool.client(web), pool.client(other)]
    assert all(c.is_closed for c in clients)


async def test_pool_client_settings_follow_the_config() -> None:
    cfg = make_config("http://127.0.0.1:1/", connect_timeout="2s", read_timeout="3s", timeout="9s")
    async with ClientPool(cfg) as pool:
        timeout = pool.client(cfg.targets[0]).timeout
        assert (timeout.connect, timeout.read, timeout.pool) == (2.0, 3.0, 9.0)


async def test_update_rebuilds_changed_and_closes_removed_clients() -> None:
    cfg = two_targets("http://127.0.0.1:1/")
    async with ClientPool(cfg) as pool:
        web, other = cfg.targets
        old_web, old_other = pool.client(web), pool.client(other)
        changed = make_config("http://127.0.0.1:1/", read_timeout="1s")
        pool.update(changed)
        await pool.settle()
        assert old_other.is_closed  # target removed
        assert old_web.is_closed  # settings changed: rebuilt
        new_web = pool.client(changed.targets[0])
        assert new_web is not old_web and not new_web.is_closed
        assert new_web.timeout.read == 1.0


async def test_update_keeps_unchanged_clients() -> None:
    cfg = two_targets("http://127.0.0.1:1/")
    async with ClientPool(cfg) as pool:
        kept = pool.client(cfg.targets[0])
        pool.update(make_config("http://127.0.0.1:1/"))
        await pool.settle()
        assert pool.client(cfg.targets[0]) is kept and not kept.is_closed


async def test_a_leased_client_outlives_its_retirement(sim: SimServer) -> None:
    cfg = make_config(health(sim))
    async with ClientPool(cfg) as pool:
        async with pool.lease(cfg.targets[0]) as client:
            pool.update(make_config(health(sim), read_timeout="2s"))
            await pool.settle()
            assert not client.is_closed  # a probe in flight is never cut by a reload
            response = await client.get(health(sim))
            assert response.status_code == 200
        assert client.is_closed
