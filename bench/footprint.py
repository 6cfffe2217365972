"""Footprint: the resident set of `checker run` after one interval, and its GC pauses.

The real service (`python -m checker.cli run`, pinned with `taskset -c 0`) probes the
simulator (its own process, core 1) with 250 and 5,000 streaming targets every 30 s
(5,000 targets: 10,000 probes/min). The bench waits for the service's READY=1 (sd_notify,
on a socket of its own), samples /proc/PID/status every 0.5 s, takes the RSS one interval
after READY (every target probed once), lets it run a second interval, then stops it with
SIGTERM. `CHECKER_GC_STATS` makes the service time every collection after start-up with
a gc.callbacks callback and write the pauses per generation at exit
(checker/service/gc_stats.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
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
    fmt,
    provenance,
    rss_mb,
    table,
    write_section,
    write_streaming_config,
)

INTERVAL_S = 30.0
BEHAVIOR = {"ttft_ms": 300.0, "inter_token_ms": 20.0, "completion_tokens": 16}
LEVELS = (250, 5000)
TIMEOUT_S = 10.0  # write_streaming_config's: the warm-up freeze comes interval + timeout in
SETTLE_S = 3.0  # after the interval: the last probes finish streaming and are flushed
TARGET_RSS_MB = {250: 80.0, 5000: 150.0}
TARGET_KB_PER_TARGET = 5.0
TARGET_FULL_GC_MS = 10.0


def _wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"checker run exited with {proc.returncode} before READY")
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            continue
        if "READY=1" in message.splitlines():
            return
    raise RuntimeError("checker run sent no READY=1 in time")


def _probed(sim: SimProcess) -> int:
    # The raw rows: bench.common.SimTiming lags the simulator's newer fields.
    return len(sim._call("timings", "fp"))


def run_level(sim: SimProcess, targets: int, intervals: int, tmp: Path) -> dict[str, Any]:
    config, db = tmp / f"fp-{targets}.yaml", tmp / f"fp-{targets}.db"
    gc_out, notify = tmp / f"fp-{targets}-gc.json", tmp / f"fp-{targets}.sock"
    write_streaming_config(config, sim.url("fp"), targets, INTERVAL_S, db)
    sim.reset()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.5)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "CHECKER_GC_STATS": str(gc_out)}
    env["PYTHONPATH"] = str(ROOT)
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    cmd = [*pin, PYTHON, "-m", "checker.cli", "run", "-c", str(config), "--log-level", "warning"]
    began = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=tmp, env=env)
    try:
        _wait_ready(sock, proc, timeout=180)
        ready = time.monotonic()
        rss_ready = rss_mb(proc.pid)
        samples: list[float] = []
        after_one: float | None = None
        probed_one = 0
        while time.monotonic() - ready < intervals * INTERVAL_S + SETTLE_S:
            time.sleep(0.5)
            samples.append(rss_mb(proc.pid))
            if after_one is None and time.monotonic() - ready >= INTERVAL_S + SETTLE_S:
                after_one = samples[-1]
                probed_one = _probed(sim)
        probed = _probed(sim)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=300)  # a loaded 5,000-target service flushes slowly
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    if code != 0:
        raise RuntimeError(f"checker run exited with {code}")
    return {
        "startup_s": ready - began,
        "rss_ready": rss_ready,
        "rss_one_interval": after_one,
        "rss_max": max(samples),
        "probed_first_interval": probed_one,
        "probed": probed,
        "seconds": time.monotonic() - ready,
        "gc": json.loads(gc_out.read_text()),
        "warmup_s": INTERVAL_S + TIMEOUT_S,
    }


def _gen(r: dict[str, Any], generation: int, key: str, clock: str = "generations") -> Any:
    return r["gc"].get(clock, {}).get(str(generation), {}).get(key)


def report(results: dict[int, dict[str, Any]], intervals: int) -> str:
    header = [
        "targets",
        "probes/min",
        "start-up (s)",
        "RSS at READY (MB)",
        "RSS after one interval (MB)",
        "RSS max (MB)",
        "probed in interval 1 / total",
        "full GCs",
        "full GC p50 / p99 / max (ms)",
        "same in CPU time (ms)",
        "gen 0 / gen 1 GCs",
        "gen 1 p99 / max (ms)",
    ]
    rows = []
    for n, r in results.items():
        rows.append(
            [
                f"{n:,}",
                f"{n * 60 / INTERVAL_S:,.0f}",
                fmt(r["startup_s"], 1),
                fmt(r["rss_ready"], 0),
                fmt(r["rss_one_interval"], 0),
                fmt(r["rss_max"], 0),
                f"{r['probed_first_interval']:,} / {r['probed']:,}",
                _gen(r, 2, "collections") or 0,
                " / ".join(fmt(_gen(r, 2, k)) for k in ("p50_ms", "p99_ms", "max_ms")),
                " / ".join(fmt(_gen(r, 2, k, "cpu")) for k in ("p50_ms", "p99_ms", "max_ms")),
                f"{_gen(r, 0, 'collections') or 0:,} / {_gen(r, 1, 'collections') or 0:,}",
                " / ".join(fmt(_gen(r, 1, k)) for k in ("p99_ms", "max_ms")),
            ]
        )
    lines = []
    low, high = min(results), max(results)
    if low != high:
        per_target = (
            (results[high]["rss_one_interval"] - results[low]["rss_one_interval"])
            * 1024
            / (high - low)
        )
        lines.append(
            f"RSS per target (difference of the two levels after one interval): "
            f"**{fmt(per_target, 1)} KB** (target <= {TARGET_KB_PER_TARGET:g} KB)."
        )
    for n, r in results.items():
        if n in TARGET_RSS_MB:
            ok = r["rss_one_interval"] < TARGET_RSS_MB[n]
            lines.append(
                f"Target RSS < {TARGET_RSS_MB[n]:g} MB at {n:,} targets: "
                f"**{'met' if ok else 'MISSED'}** ({fmt(r['rss_one_interval'], 0)} MB)."
            )
    top = results[high]
    full_max, cpu_max = _gen(top, 2, "max_ms"), _gen(top, 2, "max_ms", "cpu")
    ok = full_max is None or full_max < TARGET_FULL_GC_MS
    lines.append(
        f"Target full-GC pause < {TARGET_FULL_GC_MS:g} ms at {high * 60 / INTERVAL_S:,.0f} "
        f"probes/min: **{'met' if ok else 'MISSED'}** (max {fmt(full_max)} ms wall, "
        f"{fmt(cpu_max)} ms CPU, over {_gen(top, 2, 'collections') or 0} full collections; "
        f"gc thresholds {tuple(top['gc']['thresholds'])}, {top['gc']['frozen']:,} objects "
        "frozen)."
    )
    for n, r in results.items():
        if full := r["gc"].get("full"):
            listed = ", ".join(f"{at:g} s: {wall:g} / {cpu:g} ms" for at, wall, cpu in full)
            lines.append(
                f"Full collections at {n:,} targets (seconds after READY: wall / CPU): {listed}."
            )
        if freezes := r["gc"].get("freezes_ms"):
            lines.append(
                f"The service's own collect-and-freeze at {n:,} targets (after start-up, and "
                f"{r['warmup_s']:g} s after READY, the first interval and a timeout; not in "
                "the columns above): "
                f"{', '.join(fmt(f, 0) for f in freezes)} ms."
            )
    return (
        "## Memory and GC: the running service\n\n"
        f"{provenance()}\n\n"
        f"`checker run` (pinned with `taskset -c 0`; the simulator in its own process on core "
        f"1) probes `stream` every {INTERVAL_S:g} s on each target, SQLite storage, no "
        f"`server:` and no notify channel; the simulator answers with ttft "
        f"{BEHAVIOR['ttft_ms']:g} ms and {BEHAVIOR['completion_tokens']} tokens "
        f"{BEHAVIOR['inter_token_ms']:g} ms apart. RSS from /proc, one interval (+"
        f"{SETTLE_S:g} s) after the service's READY=1; it ran {intervals} intervals in all. "
        "GC pauses: every collection after start-up, timed inside the service by a "
        "gc.callbacks callback (`CHECKER_GC_STATS`), nearest-rank percentiles; wall time "
        "is the pause the event loop saw, CPU time the collecting thread's own (the "
        "difference is time the OS gave the core to other processes).\n\n"
        + table(header, rows)
        + "\n\n"
        + "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(str(n) for n in LEVELS), help="targets")
    parser.add_argument("--intervals", type=int, default=2, help="intervals to run (>= 1)")
    parser.add_argument("--section", default="footprint", help="PERFORMANCE.md section key")
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",")]
    results: dict[int, dict[str, Any]] = {}
    with SimProcess() as sim, tempfile.TemporaryDirectory() as tmp:
        sim.set("fp", **BEHAVIOR)
        for n in levels:
            results[n] = run_level(sim, n, max(args.intervals, 1), Path(tmp))
            print(f"footprint: {n} targets done: {results[n]}", file=sys.stderr, flush=True)
    text = report(results, max(args.intervals, 1))
    write_section(args.section, text)
    print(text)


if __name__ == "__main__":
    main()
