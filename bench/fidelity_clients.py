"""The clients bench.fidelity measures (the checker's probe, a minimal httpx loop, curl),
the errors of their readings against the server's truth, and the bench's fixed workload.

Error of an interval = client-measured interval - the server's interval for the same
thing, both on CLOCK_MONOTONIC (perf_counter) of one machine (see bench/fidelity.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import httpx

from bench.common import SimProcess, SimTiming
from bench.truth_server import TruthServer
from checker.config.schema import Config
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor

__all__ = [
    "BEHAVIOR",
    "BODY",
    "PROBE_S",
    "Errors",
    "Reading",
    "Server",
    "behave",
    "checker_probe",
    "curl_level",
    "fidelity_config",
    "httpx_probe",
    "match",
    "run_level",
]

TTFT_MS = 1000.0
INTER_TOKEN_MS = 30.0
TOKENS = 16
PROBE_S = (TTFT_MS + (TOKENS - 1) * INTER_TOKEN_MS) / 1000
BEHAVIOR = {"ttft_ms": TTFT_MS, "inter_token_ms": INTER_TOKEN_MS, "completion_tokens": TOKENS}
BODY = {
    "model": "sim-large",
    "messages": [{"role": "user", "content": "Count from 1 to 16."}],
    "max_tokens": 32,
    "stream": True,
    "stream_options": {"include_usage": True},
}

# The truth server, or (to show what its kernel stamps changed) the simulator's own stamps.
Server = TruthServer | SimProcess


def behave(sim: Server, routes: list[str]) -> None:
    """Give every route the bench's behaviour (the truth server serves only that one)."""
    if isinstance(sim, SimProcess):
        for route in routes:
            sim.set(route, **BEHAVIOR)


@dataclass
class Reading:
    """One client measurement (ms; tokens/s), None where the tool cannot see it."""

    ttfb_ms: float | None
    ttft_ms: float | None
    latency_ms: float | None
    tokens_per_s: float | None


@dataclass
class Errors:
    ttfb: list[float] = field(default_factory=list)
    ttft: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    tps_rel: list[float] = field(default_factory=list)
    first_sent: list[float] = field(default_factory=list)  # the truth's, one per ttft
    failed: int = 0
    # The client's loop thread over the measured probes, in % of wall time: on a CPU, and
    # runnable but waiting for one (another process had it). Checker rows only.
    cpu_pct: float | None = None
    wait_pct: float | None = None

    def add(self, r: Reading, t: SimTiming) -> None:
        if t.first_token_sent is None or t.last_byte_sent is None or t.headers_sent is None:
            self.failed += 1
            return
        if r.ttfb_ms is not None:
            self.ttfb.append(r.ttfb_ms - (t.headers_sent - t.received) * 1000)
        if r.ttft_ms is not None:
            self.ttft.append(r.ttft_ms - (t.first_token_sent - t.received) * 1000)
            self.first_sent.append(t.first_token_sent)
        if r.latency_ms is not None:
            self.latency.append(r.latency_ms - (t.last_byte_sent - t.received) * 1000)
        if r.tokens_per_s is not None and t.tokens_sent > 1:
            truth = (t.tokens_sent - 1) / (t.last_byte_sent - t.first_token_sent)
            self.tps_rel.append((r.tokens_per_s / truth - 1) * 100)


# --- the three clients ------------------------------------------------------------------------

Probe = Callable[[int], Awaitable[Reading]]


def fidelity_config(sim: Server, workers: int) -> Config:
    targets = [
        {
            "name": f"w{i}",
            "kind": "openai",
            "base_url": sim.url(f"w{i}"),
            "model": "sim-large",
            "probes": ["stream"],
            "timeout": "10s",
            "max_tokens": 32,
        }
        for i in range(workers)
    ]
    return Config.model_validate(
        {"targets": targets, "scheduler": {"max_concurrency": max(workers, 1)}}
    )


def checker_probe(cfg: Config, pool: ClientPool) -> Probe:
    redactor = Redactor(cfg.secrets())

    async def probe(i: int) -> Reading:
        r = await run_probe(cfg, cfg.targets[i], "stream", pool, redactor)
        if not r.ok:
            raise RuntimeError(f"probe failed: {r.error} {r.detail}")
        return Reading(r.ttfb_ms, r.ttft_ms, r.latency_ms, r.tokens_per_s)

    return probe


def httpx_probe(sim: Server, client: httpx.AsyncClient) -> Probe:
    """The least a careful person would write: fresh connection, clock before send."""

    async def probe(i: int) -> Reading:
        t0 = perf_counter()
        first = end = None
        tokens = 0
        async with client.stream("POST", f"{sim.url(f'w{i}')}/chat/completions", json=BODY) as r:
            ttfb = perf_counter()
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    end = perf_counter()
                    break
                doc = json.loads(line[6:])
                if doc.get("usage"):
                    tokens = doc["usage"]["completion_tokens"]
                choices = doc.get("choices") or [{}]
                if first is None and choices[0].get("delta", {}).get("content"):
                    first = perf_counter()
        if first is None or end is None:
            raise RuntimeError("httpx baseline: incomplete stream")
        tps = (tokens - 1) / (end - first) if tokens > 1 else None
        return Reading((ttfb - t0) * 1000, (first - t0) * 1000, (end - t0) * 1000, tps)

    return probe


async def run_level(probe: Probe, workers: int, per_worker: int) -> list[list[Reading]]:
    """`workers` probes in flight; each worker probes its own route back to back."""

    async def worker(i: int) -> list[Reading]:
        await asyncio.sleep(PROBE_S * i / workers)  # staggered, as the scheduler spreads
        return [await probe(i) for _ in range(per_worker)]

    return list(await asyncio.gather(*(worker(i) for i in range(workers))))


def match(sim: Server, readings: list[list[Reading]]) -> Errors:
    """Worker i's readings pair with route w<i>'s server timings, in order."""
    errors = Errors()
    by_route: dict[str, list[SimTiming]] = {}
    for t in sim.timings():
        by_route.setdefault(t.route, []).append(t)
    for i, worker in enumerate(readings):
        timings = by_route.get(f"w{i}", [])
        if len(timings) != len(worker):
            raise RuntimeError(f"route w{i}: {len(worker)} readings, {len(timings)} timings")
        for reading, timing in zip(worker, timings, strict=True):
            errors.add(reading, timing)
    return errors


# --- curl -------------------------------------------------------------------------------------


def curl_level(sim: Server, workers: int, per_worker: int) -> Errors | None:
    """curl --parallel with `workers` transfers at a time; -w gives its TTFB and total.

    curl's time_starttransfer is the first response byte (the headers), not the first
    token, so it is compared with the server's headers_sent; there is no curl ttft.
    """
    curl = shutil.which("curl")
    if curl is None:
        return None
    # One route per transfer: curl --parallel starts and ends transfers in any order, so
    # only a unique route pairs a curl line with its server timing.
    count = workers * per_worker
    behave(sim, [f"c{k}" for k in range(count)])
    sim.reset()
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        body.write_text(json.dumps(BODY))
        lines = [
            f'url = "{sim.url(f"c{k}")}/chat/completions"\noutput = "/dev/null"'
            for k in range(count)
        ]
        config = Path(tmp) / "curl.cfg"
        config.write_text("\n".join(lines) + "\n")
        out = subprocess.run(
            [
                curl,
                "-s",
                "--parallel",
                "--parallel-max",
                str(workers),
                "-H",
                "content-type: application/json",
                "--data-binary",
                f"@{body}",
                "-w",
                "%{url_effective} %{time_starttransfer} %{time_total}\\n",
                "-K",
                str(config),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    by_route = {t.route: t for t in sim.timings()}
    errors = Errors()
    for line in out.splitlines():
        url, start, total = line.split()
        timing = by_route.get(url.split("/")[3])
        if timing is None:
            errors.failed += 1
            continue
        errors.add(Reading(float(start) * 1000, None, float(total) * 1000, None), timing)
    return errors
