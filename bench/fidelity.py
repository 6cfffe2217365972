"""Fidelity: does the checker measure what the server did? ttft, latency and tokens/s of
streaming probes against the server's own (kernel) clock, at 1, 50 and 200 probes in flight,
beside two baselines measured the same way in the same run (a minimal httpx loop, curl).

Error of an interval = client-measured interval - the server's interval for the same
thing, both on CLOCK_MONOTONIC (perf_counter) of one machine:
  ttft:    probe ttft_ms      - (first_token_sent - received)
  ttfb:    probe ttfb_ms      - (headers_sent - received)
  latency: probe latency_ms   - (last_byte_sent - received)
  tok/s:   probe tokens_per_s / ((n - 1) / (last_byte_sent - first_token_sent)) - 1
The server is bench.truth_server, not checker.sim: its clock starts at the kernel's receive
timestamp of the request and stops at the kernel's transmit timestamp of each answer, so
no pause of the server moves its truth (see that module for why the simulator's own
stamps did not do).

The clients do not start and stop their clocks at the same points, and the table shows
each as it is defined:
- checker: from the moment its request's first byte goes to the kernel (connect and TLS
  are its separate connect_ms) to the kernel's receive timestamp of the bytes that
  completed the headers, the first token, the end marker (checker/probes/arrival.py). So
  its interval spans the same events as the server's plus the request's and the answer's
  trips through loopback: a faithful reading is slightly MORE than the server's.
- httpx loop and curl: from before they connect to when their code sees the bytes; their
  errors include connect time and their own queueing, as most clients' readings do.

The truth server runs in its own process on its own core with its garbage collector off,
so it never shares the GIL or a CPU with the client being measured. The client freezes
what it built before measuring (gc.collect() then gc.freeze(), after the warm-up round),
as the service does after start-up (checker.service.housekeeping.freeze_startup_objects):
full collections then walk only what the probes made since, not every module and
structure of the process; a 40-77 ms full pass used to hold the client long enough for
the kernel to merge two token segments under the later one's stamp. "N in flight"
is a steady state: N workers, each probing its own route back to back, started staggered
over one probe duration so arrivals are spread as the scheduler spreads them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import httpx

from bench.common import SimTiming, fmt, percentile, pin_to_core, provenance, table
from bench.common import write_section as write_perf_section
from bench.truth_server import TruthServer
from checker.config.schema import Config
from checker.probes.runner import run_probe
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.service.housekeeping import freeze_startup_objects

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
        if r.latency_ms is not None:
            self.latency.append(r.latency_ms - (t.last_byte_sent - t.received) * 1000)
        if r.tokens_per_s is not None and t.tokens_sent > 1:
            truth = (t.tokens_sent - 1) / (t.last_byte_sent - t.first_token_sent)
            self.tps_rel.append((r.tokens_per_s / truth - 1) * 100)


def sched_ns() -> tuple[int, int, float]:
    """(ns on a CPU, ns runnable but waiting for one, perf_counter) of this thread."""
    try:
        cpu, wait, _slices = Path("/proc/thread-self/schedstat").read_text().split()
    except OSError:
        return (0, 0, perf_counter())
    return (int(cpu), int(wait), perf_counter())


def share(before: tuple[int, int, float], errors: Errors) -> Errors:
    """Record the thread's CPU and run-queue shares since `before` on `errors`."""
    cpu, wait, at = sched_ns()
    wall = (at - before[2]) * 1e9
    errors.cpu_pct = (cpu - before[0]) / wall * 100
    errors.wait_pct = (wait - before[1]) / wall * 100
    return errors


# --- the three clients ------------------------------------------------------------------------

Probe = Callable[[int], Awaitable[Reading]]


def _config(sim: TruthServer, workers: int) -> Config:
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


def httpx_probe(sim: TruthServer, client: httpx.AsyncClient) -> Probe:
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


def match(sim: TruthServer, readings: list[list[Reading]]) -> Errors:
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


def curl_level(sim: TruthServer, workers: int, per_worker: int) -> Errors | None:
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


# --- report -----------------------------------------------------------------------------------


def abs_stats(values: list[float]) -> tuple[str, str, str]:
    """p50, p99 and max of |error|."""
    if not values:
        return ("-", "-", "-")
    absolute = [abs(v) for v in values]
    return (fmt(percentile(absolute, 50)), fmt(percentile(absolute, 99)), fmt(max(absolute)))


Row = tuple[int, str, int, Errors]  # run, client, in flight, errors


def verdicts(rows: list[Row]) -> tuple[bool, list[float]]:
    """Whether every run met the target, and each run's checker |ttft error| p99 at 200."""
    p99s = [
        percentile([abs(v) for v in e.ttft], 99)
        for _run, name, level, e in rows
        if name == "checker" and level == max(LEVELS)
    ]
    return bool(p99s) and all(p < TARGET_P99_MS for p in p99s), p99s


def report(rows: list[Row], curl_missing: bool, nice: int = 0) -> str:
    header = ["run", "client", "in flight", "n"]
    for what in ("ttft", "ttfb", "latency"):
        header += [f"{what} abs err p50", "p99", "max"]
    header += ["tok/s err p50 (%)", "p99 (%)", "client CPU %", "client waiting %"]
    body = []
    for run, name, level, e in rows:
        tps = [fmt(percentile(e.tps_rel, q)) if e.tps_rel else "-" for q in (50, 99)]
        n = max(len(e.ttft), len(e.ttfb), len(e.latency))
        errs = (*abs_stats(e.ttft), *abs_stats(e.ttfb), *abs_stats(e.latency))
        shares = [fmt(e.cpu_pct, 0), fmt(e.wait_pct, 0)]
        body.append([run, name, level, n, *errs, *tps, *shares])
    ok, p99s = verdicts(rows)
    verdict = (
        f"\n\nTarget (checker |ttft error| p99 < {TARGET_P99_MS:g} ms at {max(LEVELS)} in "
        f"flight, every run): **{'met' if ok else 'MISSED'}** "
        f"(runs 1-{len(p99s)}: {', '.join(fmt(p) for p in p99s)} ms)."
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
        f"Server: `bench.truth_server`, ttft {TTFT_MS:g} ms, {TOKENS} tokens "
        f"{INTER_TOKEN_MS:g} ms apart, in its own process pinned to its own core with its "
        "garbage collector off; its truth is the kernel's receive timestamp of each request "
        "and transmit timestamp of each answer. Clients pinned to the other core; the "
        "checker's process frozen (`gc.freeze()`) after each level's warm-up round, as the "
        f"service does after start-up. Both at scheduling niceness {nice}. Absolute errors "
        "in ms (|client interval - server interval|, see `bench/fidelity.py`); tok/s error "
        "in % of the server's decode rate. "
        "The checker's intervals run from its request's first byte sent to the kernel's "
        "arrival timestamp of the bytes (connect is its separate `connect_ms`); the httpx "
        "loop's and curl's from before they connect to when their code sees the bytes."
        "\n\n" + table(header, body) + verdict + note
    )


LEVELS = (1, 50, 200)


def set_niceness(nice: int) -> None:
    """This process's and its later children's CPU weight (negative needs root).

    Linux with autogroup weighs sessions against each other, not processes, so a plain
    nice value changes nothing against other sessions' work: the bench takes a session
    of its own and sets that group's niceness (/proc/self/autogroup); setpriority covers
    kernels without autogroup. Children spawned later (the truth server) inherit both.
    """
    with contextlib.suppress(OSError):
        os.setsid()  # fails only for a process group leader, which keeps its session
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))
    os.setpriority(os.PRIO_PROCESS, 0, nice)


async def measure(
    sim: TruthServer, samples: int, run: int, levels: tuple[int, ...] = LEVELS
) -> list[Row]:
    rows: list[Row] = []
    for level in levels:
        # Sequential probes cost their full duration: the 1-in-flight level gets fewer.
        per_worker = max(2, math.ceil((samples if level > 1 else samples / 16) / level))
        cfg = _config(sim, level)
        async with ClientPool(cfg) as pool:
            probe = checker_probe(cfg, pool)
            await run_level(probe, level, 1)  # warm-up round, not counted
            freeze_startup_objects()
            sim.reset()
            before = sched_ns()
            readings = await run_level(probe, level, per_worker)
            rows.append((run, "checker", level, share(before, match(sim, readings))))
        limits = httpx.Limits(max_keepalive_connections=0, max_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=10) as client:
            sim.reset()
            readings = await run_level(httpx_probe(sim, client), level, per_worker)
            rows.append((run, "httpx loop", level, match(sim, readings)))
        sim.reset()
        curl = await asyncio.to_thread(curl_level, sim, level, per_worker)
        if curl is not None:
            rows.append((run, "curl", level, curl))
        print(f"fidelity: run {run}, {level} in flight done", flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400, help="probes per level and client")
    parser.add_argument("--runs", type=int, default=3, help="runs in a row, each reported")
    parser.add_argument("--section", default="fidelity", help="PERFORMANCE.md section key")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="e.g. 200")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling niceness of the client and the server (negative needs root): on a "
        "machine that other work keeps busy, what measures the checker, not its neighbours",
    )
    args = parser.parse_args(argv)
    levels = tuple(int(x) for x in args.levels.split(","))
    if args.nice:
        set_niceness(args.nice)
    rows: list[Row] = []
    with TruthServer(BEHAVIOR) as sim:
        pin_to_core(0)
        for run in range(1, args.runs + 1):
            rows += asyncio.run(measure(sim, args.samples, run, levels))
    text = report(rows, curl_missing=shutil.which("curl") is None, nice=args.nice)
    write_perf_section(args.section, text)
    print(text)


if __name__ == "__main__":
    main()
