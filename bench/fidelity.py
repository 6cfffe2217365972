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
as the service does after start-up (checker.service.gc_policy.freeze_now):
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
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import httpx

from bench.common import SimProcess, fmt, percentile, pin_to_core, provenance, table
from bench.common import write_section as write_perf_section
from bench.fidelity_clients import (
    BEHAVIOR,
    INTER_TOKEN_MS,
    TOKENS,
    TTFT_MS,
    Errors,
    Server,
    behave,
    checker_probe,
    curl_level,
    fidelity_config,
    httpx_probe,
    match,
    run_level,
)
from bench.truth_server import TruthServer
from checker.probes.transport.pool import ClientPool
from checker.service.gc_policy import freeze_now

TARGET_P99_MS = 2.0

__all__ = ["LEVELS", "Setup", "main", "measure", "report", "set_niceness"]


@dataclass(frozen=True)
class Setup:
    """What a run measures with: the truth's source, the client's GC, its CPU weight."""

    server: str = "truth"  # "truth": bench.truth_server; "sim": checker.sim's own stamps
    freeze: bool = True  # gc.freeze() after the warm-up round, as the service does
    nice: int = 0

    def describe(self) -> str:
        server = (
            "`bench.truth_server` (kernel receive and transmit timestamps, its GC off)"
            if self.server == "truth"
            else "`checker.sim` in `bench.common.SimProcess` (its own perf_counter stamps)"
        )
        gc_text = "frozen after warm-up" if self.freeze else "left as it is (no freeze)"
        return f"server {server}; client GC {gc_text}; scheduling niceness {self.nice}"


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


def report(
    rows: list[Row],
    curl_missing: bool,
    setup: Setup,
    loads: list[tuple[float, float]],
    section: str = "fidelity",
) -> str:
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
        "## Fidelity: measured versus server truth"
        + ("" if section == "fidelity" else f" (`{section}`)")
        + "\n\n"
        f"{provenance()} Machine load (1-minute load average, before and after each run): "
        + ", ".join(f"{a:.1f} -> {b:.1f}" for a, b in loads)
        + ".\n\n"
        f"Setup: {setup.describe()}. The server answers with ttft {TTFT_MS:g} ms and "
        f"{TOKENS} tokens {INTER_TOKEN_MS:g} ms apart, in its own process pinned to its own "
        "core; the clients are pinned to the other core. Absolute errors in ms (|client "
        "interval - server interval|, see `bench/fidelity.py`); tok/s error in % of the "
        "server's decode rate; client CPU and waiting: the checker's loop thread on a CPU "
        "and runnable but waiting for one, in % of the measured wall time (schedstat). "
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
    sim: Server, samples: int, run: int, levels: tuple[int, ...], setup: Setup
) -> list[Row]:
    rows: list[Row] = []
    for level in levels:
        # Sequential probes cost their full duration: the 1-in-flight level gets fewer.
        per_worker = max(2, math.ceil((samples if level > 1 else samples / 16) / level))
        cfg = fidelity_config(sim, level)
        behave(sim, [f"w{i}" for i in range(level)])
        async with ClientPool(cfg) as pool:
            probe = checker_probe(cfg, pool)
            await run_level(probe, level, 1)  # warm-up round, not counted
            if setup.freeze:
                freeze_now()
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
    parser.add_argument("--runs", type=int, default=1, help="runs in a row, each reported")
    parser.add_argument("--section", default="fidelity", help="PERFORMANCE.md section key")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="e.g. 200")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling niceness of the client and the server (negative needs root): on a "
        "machine that other work keeps busy, what measures the checker, not its neighbours",
    )
    parser.add_argument("--server", choices=("truth", "sim"), default="truth")
    parser.add_argument("--no-freeze", action="store_true", help="leave the client's GC alone")
    args = parser.parse_args(argv)
    levels = tuple(int(x) for x in args.levels.split(","))
    setup = Setup(args.server, not args.no_freeze, args.nice)
    if args.nice:
        set_niceness(args.nice)
    rows: list[Row] = []
    loads: list[tuple[float, float]] = []  # 1-minute load average before and after each run
    with TruthServer(BEHAVIOR) if setup.server == "truth" else SimProcess() as sim:
        pin_to_core(0)
        for run in range(1, args.runs + 1):
            load = os.getloadavg()[0]
            rows += asyncio.run(measure(sim, args.samples, run, levels, setup))
            loads.append((load, os.getloadavg()[0]))
    text = report(
        rows,
        curl_missing=shutil.which("curl") is None,
        setup=setup,
        loads=loads,
        section=args.section,
    )
    write_perf_section(args.section, text)
    print(text)


if __name__ == "__main__":
    main()
