"""Capacity: one checker service process on one core, 1,000 / 10,000 / 15,000 / 20,000
streaming probes per minute against the simulator (in its own process on the other core).

The service runs in a child process (`taskset -c 0`) that does what `checker run` does
(checker.service.Service on the loaded config, real SQLite writer, evaluator, deliverer)
and, at the end, dumps its own figures as JSON: scheduler lag (when a probe got its
concurrency slot minus its planned start, from Service.lag), CPU seconds (/proc/self/stat
utime+stime), writer queue depth and RSS sampled every 0.5 s, the load average. The first
interval is a warm-up and not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    SimProcess,
    cpu_seconds,
    fmt,
    percentile,
    provenance,
    rss_mb,
    table,
    write_section,
    write_streaming_config,
)

INTERVAL_S = 6.0
BEHAVIOR = {"ttft_ms": 300.0, "inter_token_ms": 20.0, "completion_tokens": 16}
# probes per minute -> seconds measured (after one warm-up interval)
LEVELS: dict[int, float] = {1000: 20.0, 10000: 30.0, 15000: 30.0, 20000: 40.0}
TARGET_LAG_P99_MS = 100.0
TARGET_RSS_MB = 150.0


def write_config(path: Path, sim_url: str, per_minute: int, db: Path) -> None:
    targets = max(1, round(per_minute * INTERVAL_S / 60))
    write_streaming_config(path, sim_url, targets, INTERVAL_S, db)


# --- the child: the service itself -----------------------------------------------------------


def _watch_gc(pauses: list[float]) -> None:
    """Record each collection's duration (any generation): a pause stops the event loop."""
    started = [0.0]

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - started[0])

    gc.callbacks.append(on_gc)


async def _child(config: Path, warmup: float, seconds: float) -> dict[str, Any]:
    from checker.config import load as config_mod
    from checker.service.wiring import Service

    cfg = config_mod.load(config)
    done = {"ok": 0, "failed": 0}

    def count(result: Any) -> None:
        done["ok" if result.ok else "failed"] += 1

    service = Service(config, cfg, on_result=count)
    await service.start()
    await asyncio.sleep(warmup)
    seen = service.lag.count
    pauses: list[float] = []
    _watch_gc(pauses)
    lags: list[float] = []
    waits: list[float] = []
    cpu0, done0, t0 = cpu_seconds(), dict(done), time.monotonic()
    depth: list[int] = []
    rss: list[float] = []
    while time.monotonic() - t0 < seconds:
        await asyncio.sleep(0.5)
        depth.append(service.writer.queue_depth)
        rss.append(rss_mb())
        # The service keeps only its newest lags: take what came since the last sample.
        if new := service.lag.count - seen:
            lags += service.lag.lags[-new:]
            waits += service.lag.slot_waits[-new:]
        seen = service.lag.count
    pauses: list[float] = []
    _watch_gc(pauses)
    cpu = cpu_seconds() - cpu0
    elapsed = time.monotonic() - t0
    load = os.getloadavg()[0]  # other work on the machine shares the service's core
    probes = sum(done.values()) - sum(done0.values())
    failed = done["failed"] - done0["failed"]
    await service.stop()
    return {
        "lags_s": lags,
        "gc_pauses_s": pauses,
        "load": load,
        "slot_waits_s": waits,
        "max_concurrency": service.max_concurrency,
        "cpu_s": cpu,
        "elapsed_s": elapsed,
        "probes": probes,
        "failed": failed,
        "depth": depth,
        "rss_mb": rss,
        "skipped": service.skipped,
        "written": service.writer.written,
        "dropped": service.writer.dropped,
    }


def child_main(config: Path, warmup: float, seconds: float, out: Path) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(_child(config, warmup, seconds))
    out.write_text(json.dumps(result))


# --- the parent: one level at a time ---------------------------------------------------------


def run_level(sim: SimProcess, per_minute: int, seconds: float, tmp: Path) -> dict[str, Any]:
    config = tmp / f"capacity-{per_minute}.yaml"
    out = tmp / f"capacity-{per_minute}.json"
    db = tmp / f"capacity-{per_minute}.db"
    write_config(config, sim.url("cap"), per_minute, db)
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    cmd = [*pin, PYTHON, "-m", "bench.capacity", "--child", str(config), "--out", str(out)]
    cmd += ["--warmup", str(INTERVAL_S + 2), "--seconds", str(seconds)]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=seconds + 120)
    return json.loads(out.read_text())


def report(results: dict[int, dict[str, Any]], pinned: bool) -> str:
    header = [
        "probes/min",
        "probes measured",
        "failed",
        "lag p50 (ms)",
        "lag p99 (ms)",
        "lag max (ms)",
        "of which after submission, p99 (ms)",
        "concurrency limit",
        "CPU s / 1,000 probes",
        "CPU use (% of a core)",
        "writer queue max",
        "RSS max (MB)",
        "skipped (busy)",
        "GC pause max / total (ms)",
        "load avg (1 min)",
    ]
    rows = []
    verdicts = []
    for rate, r in results.items():
        lags = [x * 1000 for x in r["lags_s"]]
        waits = [x * 1000 for x in r["slot_waits_s"]]
        gcs = [x * 1000 for x in r["gc_pauses_s"]]
        per_k = r["cpu_s"] / r["probes"] * 1000 if r["probes"] else float("nan")
        rss_max = max(r["rss_mb"]) if r["rss_mb"] else float("nan")
        skipped = r["skipped"].get("max_instances", 0)
        rows.append(
            [
                f"{rate:,}",
                r["probes"],
                r["failed"],
                fmt(percentile(lags, 50)),
                fmt(percentile(lags, 99)),
                fmt(max(lags) if lags else None),
                fmt(percentile(waits, 99)),
                f"{r['max_concurrency']:,}",
                fmt(per_k),
                fmt(r["cpu_s"] / r["elapsed_s"] * 100, 0),
                max(r["depth"] or [0]),
                fmt(rss_max, 0),
                skipped,
                f"{fmt(max(gcs, default=0), 0)} / {fmt(sum(gcs), 0)}",
                fmt(r["load"], 1),
            ]
        )
        if rate == max(results):
            p99 = percentile(lags, 99)
            ok = p99 < TARGET_LAG_P99_MS and skipped == 0
            verdicts.append(
                f"Target ({rate:,} streaming probes/min, lag p99 < {TARGET_LAG_P99_MS:g} ms, "
                f"none skipped): **{'met' if ok else 'MISSED'}** (lag p99 {fmt(p99)} ms, "
                f"{skipped} skipped). RSS < {TARGET_RSS_MB:g} MB: "
                f"**{'met' if rss_max < TARGET_RSS_MB else 'MISSED'}** ({fmt(rss_max, 0)} MB)."
            )
    where = "pinned with `taskset -c 0`" if pinned else "NOT pinned (no taskset or one CPU)"
    return (
        "## Capacity: one service process on one core\n\n"
        f"{provenance()}\n\n"
        f"The service ({where}; the simulator in its own process on core 1) probes "
        f"`stream` every {INTERVAL_S:g} s on probes/min x {INTERVAL_S:g} / 60 targets; the "
        f"simulator answers with ttft {BEHAVIOR['ttft_ms']:g} ms and "
        f"{BEHAVIOR['completion_tokens']} tokens {BEHAVIOR['inter_token_ms']:g} ms apart. "
        "SQLite storage, evaluator and deliverer running as in production. Figures after a "
        "one-interval warm-up. Lag = when the probe got its concurrency slot - its planned "
        "start: APScheduler's lateness plus, after APScheduler submitted the run, the wait "
        "for the event loop to start its task and for one of the concurrency limit's slots "
        "(`scheduler.max_concurrency`, derived from the config when not set); "
        "skipped (busy) = runs APScheduler skipped because the previous run of the same "
        "job had not finished; GC pauses = the garbage collector's runs in the measured "
        "window (each stops the event loop).\n\n"
        + table(header, rows)
        + "\n\n"
        + "\n".join(verdicts)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=INTERVAL_S, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--levels", default=",".join(str(k) for k in LEVELS), help="probes per minute, e.g. 5000"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every duration")
    parser.add_argument("--section", default="capacity", help="PERFORMANCE.md section key")
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child, args.warmup, args.seconds, args.out)
        return
    levels = [int(x) for x in args.levels.split(",")]
    results: dict[int, dict[str, Any]] = {}
    with SimProcess() as sim, tempfile.TemporaryDirectory() as tmp:
        sim.set("cap", **BEHAVIOR)
        for rate in levels:
            seconds = LEVELS.get(rate, 40.0) * args.scale
            results[rate] = run_level(sim, rate, seconds, Path(tmp))
            print(f"capacity: {rate}/min done", file=sys.stderr, flush=True)
    pinned = bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1
    text = report(results, pinned)
    write_section(args.section, text)
    print(text)


if __name__ == "__main__":
    main()
