"""Fidelity: does the checker measure what the server did? ttft, latency and tokens/s of
streaming probes against the simulator's own clock, at 1, 50 and 200 probes in flight,
beside two baselines measured the same way in the same run (a minimal httpx loop, curl).

Error of an interval = client-measured interval - the server's interval for the same
thing, both on CLOCK_MONOTONIC (perf_counter) of one machine:
  ttft:    probe ttft_ms      - (first_token_sent - received)
  ttfb:    probe ttfb_ms      - (headers_sent - received)
  latency: probe latency_ms   - (last_byte_sent - received)
  tok/s:   probe tokens_per_s / ((n - 1) / (last_byte_sent - first_token_sent)) - 1
The server's clock starts when its handler runs and stops just before it writes.

The clients do not start and stop their clocks at the same points, and the table shows
each as it is defined:
- checker: from the moment its request's first byte goes to the kernel (connect and TLS
  are its separate connect_ms) to the kernel's receive timestamp of the bytes that
  completed the headers, the first token, the end marker (checker/probes/arrival.py). So
  its interval spans the same events as the server's plus the request's and the answer's
  trips through loopback: a faithful reading is slightly MORE than the server's.
- httpx loop and curl: from before they connect to when their code sees the bytes; their
  errors include connect time and their own queueing, as most clients' readings do.

The simulator runs in its own process on its own core (bench.common.SimProcess), so its
event loop never shares the GIL or a CPU with the client being measured. "N in flight"
is a steady state: N workers, each probing its own route back to back, started staggered
over one probe duration so arrivals are spread as the scheduler spreads them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import httpx

from bench.common import SimProcess, SimTiming, fmt, percentile, pin_to_core, provenance, table
from bench.common import write_section as write_perf_section
from checker.config.schema import Config
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor

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
TARGET_P99_MS = 2.0


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
    failed: int = 0

    def add(self, r: Reading, t: SimTiming) -> None:
        if t.first_token_sent is None or t.last_byte_sent is None or t.headers_sent is None:
            self.failed += 1
            return
        if r.ttfb_ms is not None:
            self.ttfb.append(r.ttfb_ms - (t.headers_sent - t.received) * 1000)
        if r.ttft_ms is not None:
            self.ttft.append(r.ttft_ms - (t.first_token_sent - t.received) * 1000)
        if r.latency_ms is not None:
            self.latency.append(r.latency_ms - (t.last_byte_sent - t.received) * 1000)
        if r.tokens_per_s is not None and t.tokens_sent > 1:
            truth = (t.tokens_sent - 1) / (t.last_byte_sent - t.first_token_sent)
            self.tps_rel.append((r.tokens_per_s / truth - 1) * 100)


# --- the three clients ------------------------------------------------------------------------

Probe = Callable[[int], Awaitable[Reading]]


def _config(sim: SimProcess, workers: int) -> Config:
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


def httpx_probe(sim: SimProcess, client: httpx.AsyncClient) -> Probe:
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


def match(sim: SimProcess, readings: list[list[Reading]]) -> Errors:
    """Worker i's readings pair with route w<i>'s server timings, in order."""
    errors = Errors()
    by_route: dict[str, list[SimTiming]] = {}
    for t in sim.timings():
        if t.endpoint == "chat":
            by_route.setdefault(t.route, []).append(t)
    for i, worker in enumerate(readings):
        timings = by_route.get(f"w{i}", [])
        if len(timings) != len(worker):
            raise RuntimeError(f"route w{i}: {len(worker)} readings, {len(timings)} timings")
        for reading, timing in zip(worker, timings, strict=True):
            errors.add(reading, timing)
    return errors


# --- curl -------------------------------------------------------------------------------------


def curl_level(sim: SimProcess, workers: int, per_worker: int) -> Errors | None:
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
    for k in range(count):
        sim.set(f"c{k}", **BEHAVIOR)
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
    by_route = {t.route: t for t in sim.timings() if t.endpoint == "chat"}
    errors = Errors()
    for line in out.splitlines():
        url, start, total = line.split()
        timing = by_route.get(url.split("/")[3])
        if timing is None:
            errors.failed += 1
            continue
        errors.add(Reading(float(start) * 1000, None, float(total) * 1000, None), timing)
    return errors


# --- report -----------------------------------------------------------------------------------


def stats(values: list[float]) -> tuple[str, str, str, str]:
    if not values:
        return ("-", "-", "-", "-")
    absolute = [abs(v) for v in values]
    return (
        fmt(percentile(values, 50)),
        fmt(percentile(values, 99)),
        fmt(max(values)),
        fmt(percentile(absolute, 99)),
    )


def report(rows: list[tuple[str, int, Errors]], curl_missing: bool) -> str:
    header = [
        "client",
        "in flight",
        "n",
        "ttft err p50",
        "p99",
        "max",
        "abs p99",
        "ttfb err p50",
        "p99",
        "latency err p50",
        "p99",
        "max",
        "tok/s err p50 (%)",
        "p99 (%)",
    ]
    body = []
    for name, level, e in rows:
        tt = stats(e.ttft)
        fb = stats(e.ttfb)
        lat = stats(e.latency)
        tps = stats(e.tps_rel)
        n = max(len(e.ttft), len(e.ttfb), len(e.latency))
        body.append([name, level, n, *tt, fb[0], fb[1], lat[0], lat[1], lat[2], tps[0], tps[1]])
    checker_200 = [e for name, level, e in rows if name == "checker" and level == max(LEVELS)]
    verdict = ""
    if checker_200:
        p99 = percentile([abs(v) for v in checker_200[0].ttft], 99)
        ok = "met" if p99 < TARGET_P99_MS else "MISSED"
        verdict = (
            f"\n\nTarget (checker |ttft error| p99 < {TARGET_P99_MS:g} ms at "
            f"{max(LEVELS)} in flight): **{ok}** ({fmt(p99)} ms)."
        )
    note = (
        "\n\ncurl is not installed on this machine: its rows are missing."
        if curl_missing
        else "\n\ncurl reports no ttft (its `time_starttransfer` is the first byte, i.e. the "
        "headers), so its ttfb and latency columns are the comparable ones."
    )
    return (
        "## Fidelity: measured versus server truth\n\n"
        f"{provenance()}\n\n"
        f"Simulator: ttft {TTFT_MS:g} ms, {TOKENS} tokens {INTER_TOKEN_MS:g} ms apart, in its "
        "own process pinned to its own core; clients pinned to the other core. Errors in ms "
        "(client interval - server interval, see `bench/fidelity.py`); tok/s error in % of "
        "the server's decode rate. Positive = the client read longer than the server took. "
        "The checker's intervals run from its request's first byte sent to the kernel's "
        "arrival timestamp of the bytes (connect is its separate `connect_ms`); the httpx "
        "loop's and curl's from before they connect to when their code sees the bytes."
        "\n\n" + table(header, body) + verdict + note
    )


LEVELS = (1, 50, 200)


async def measure(sim: SimProcess, samples: int) -> list[tuple[str, int, Errors]]:
    rows: list[tuple[str, int, Errors]] = []
    for level in LEVELS:
        # Sequential probes cost their full duration: the 1-in-flight level gets fewer.
        per_worker = max(2, math.ceil((samples if level > 1 else samples / 16) / level))
        cfg = _config(sim, level)
        for i in range(level):
            sim.set(f"w{i}", **BEHAVIOR)
        async with ClientPool(cfg) as pool:
            probe = checker_probe(cfg, pool)
            await run_level(probe, level, 1)  # warm-up round, not counted
            sim.reset()
            readings = await run_level(probe, level, per_worker)
            rows.append(("checker", level, match(sim, readings)))
        limits = httpx.Limits(max_keepalive_connections=0, max_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            sim.reset()
            readings = await run_level(httpx_probe(sim, client), level, per_worker)
            rows.append(("httpx loop", level, match(sim, readings)))
        sim.reset()
        curl = await asyncio.to_thread(curl_level, sim, level, per_worker)
        if curl is not None:
            rows.append(("curl", level, curl))
        print(f"fidelity: {level} in flight done", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400, help="probes per level and client")
    args = parser.parse_args(argv)
    with SimProcess() as sim:
        pin_to_core(0)
        rows = asyncio.run(measure(sim, args.samples))
    text = report(rows, curl_missing=shutil.which("curl") is None)
    write_perf_section("fidelity", text)
    print(text)


if __name__ == "__main__":
    main()
