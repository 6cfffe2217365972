"""Hostile bodies: a gzip bomb ends as too_large with bounded memory; compressed bodies of
every encoding httpx would decode still read right."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib

import pytest
from aiohttp import web

from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from tests.builders import config, target
from tests.tools import ROOT

# A child process measures its own peak RSS: this process's peak is whatever earlier tests
# left it at. 1 MB of gzip that inflates to 1 GiB, served to ten probes at once.
BOMB_CHILD = r"""
import asyncio, gzip, resource, threading, zlib
from aiohttp import web
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from tests.builders import config, target

def bomb():
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join([c.compress(zeros) for _ in range(1024)] + [c.flush()])

BODY = bomb()

async def serve(request):
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return web.Response(body=BODY, headers=headers)

async def main():
    app = web.Application()
    app.router.add_get("/", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    url = f"http://127.0.0.1:{port}/"
    cfg = config(*[target(url, name=f"b{i}", kind="http") for i in range(10)])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with ClientPool(cfg) as pool:
        probes = [run_probe(cfg, t, "http", pool, Redactor()) for t in cfg.targets]
        results = await asyncio.gather(*probes)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await runner.cleanup()
    print(len(BODY), (after - before) // 1024, *sorted({str(r.error) for r in results}))

asyncio.run(main())
"""


def test_a_gzip_bomb_is_too_large_and_memory_stays_bounded() -> None:
    res = subprocess.run(
        [sys.executable, "-c", BOMB_CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    size, growth_mb, *errors = res.stdout.split()
    assert int(size) < 1_200_000  # about 1 MB on the wire
    assert errors == ["too_large"]
    assert int(growth_mb) < 20, f"peak RSS grew {growth_mb} MB"


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, no zlib header
        ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
        ("identity", lambda b: b),
    ],
)
async def test_compressed_bodies_read_whole(encoding: str, encode: object) -> None:
    payload = json.dumps({"status": "ok", "pad": "x" * 300_000}).encode()

    async def serve(request: web.Request) -> web.Response:
        body = encode(payload)  # type: ignore[operator]
        return web.Response(body=body, headers={"Content-Encoding": encoding})

    app = web.Application()
    app.router.add_get("/", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        cfg = config(
            target(
                f"http://127.0.0.1:{port}/",
                kind="http",
                http={"conditions": ['json.status == "ok"']},
            )
        )
        async with ClientPool(cfg) as pool:
            result = await run_probe(cfg, cfg.targets[0], "http", pool, Redactor())
        assert result.ok, (result.error, result.detail)
    finally:
        await runner.cleanup()
