"""Fidelity inside a running service: 1,000 targets, about 200 streaming probes in flight.

bench.fidelity measures the checker's probe code in a bare loop; this runs what `checker
run` runs (checker.service.Service in its own process on core 0, pinned with taskset, with
its SQLite writer, evaluator and deliverer: bench.capacity's child, unchanged) against
bench.truth_server on core 1, and compares each stored result with the server's kernel
stamps for the same request.

Join: target t<i> probes route t<i> only, one probe at a time (a job never overlaps
itself), so a stored result pairs with the one truth on its route whose request arrived
within JOIN_S after the result's started_at (the probe's wall-clock start; the truth's
monotonic stamps are converted with the offset between the two clocks read here).

The probe is longer than bench.fidelity's (ttft 5 s, then the same 16 tokens 30 ms apart)
so that 1,000 targets keep ~200 probes in flight at a rate one core sustains
(1,000 x 5.45 s / 27 s = 202 in flight, 2,222 probes/min); the 30 ms token gap, which is
what a paused client merges, is the same.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.common import PYTHON, ROOT, fmt, percentile, provenance, table, write_section
from bench.fidelity import TARGET_P99_MS, set_niceness
from bench.fidelity_clients import Errors, Reading
from bench.truth_server import Truth, TruthServer

__all__ = ["main", "pair", "run_service"]

TARGETS = 1000
INTERVAL_S = 27.0
BEHAVIOR = {"ttft_ms": 5000.0, "inter_token_ms": 30.0, "completion_tokens": 16}
PROBE_S = (5000.0 + 15 * 30.0) / 1000
JOIN_S = 1.0


def write_config(path: Path, truth: TruthServer, db: Path) -> None:
    targets = [
        {
            "name": f"t{i}",
            "kind": "openai",
            "base_url": truth.url(f"t{i}"),
            "model": "sim-large",
            "probes": ["stream"],
            "interval": f"{INTERVAL_S:g}s",
            "timeout": "15s",
        }
        for i in range(TARGETS)
    ]
    path.write_text(yaml.safe_dump({"targets": targets, "storage": {"url": f"sqlite:///{db}"}}))


def stored_results(db: Path, since: datetime) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT target, started_at, ok, ttfb_ms, ttft_ms, latency_ms, tokens_per_s"
            " FROM probe_results WHERE probe = 'stream'"
        ).fetchall()
    out = []
    for row in rows:
        started = datetime.fromisoformat(row["started_at"]).replace(tzinfo=UTC)
        if started >= since:
            out.append(dict(row) | {"started_at": started.timestamp()})
    return out


def pair(results: list[dict[str, Any]], truths: list[Truth], wall_minus_mono: float) -> Errors:
    """Each successful stored result with the truth of its request (see the docstring)."""
    by_route: dict[str, list[Truth]] = defaultdict(list)
    for t in truths:
        by_route[t.route].append(t)
    errors = Errors()
    for r in results:
        if not r["ok"]:
            errors.failed += 1
            continue
        start = r["started_at"]
        near = [
            t
            for t in by_route.get(r["target"], [])
            if 0 <= t.received + wall_minus_mono - start < JOIN_S
        ]
        if len(near) != 1:
            errors.failed += 1
            continue
        reading = Reading(r["ttfb_ms"], r["ttft_ms"], r["latency_ms"], r["tokens_per_s"])
        errors.add(reading, near[0].timing())
    return errors


# --- the child: bench.capacity's service run, watched ----------------------------------------

STALL_S = 0.02  # a loop held this long can merge two token segments 30 ms apart


async def _watched(config: Path, warmup: float, seconds: float, freeze: bool) -> dict[str, Any]:
    """bench.capacity's run, plus when the loop was held (a heartbeat's late wake-ups) and
    when the collector ran: the two are matched against the results that missed. With
    `freeze`, the bench freezes what exists after the first round of probes (the
    service itself froze only what start() built)."""
    from bench.capacity import _child
    from checker.service.gc_policy import freeze_now

    stalls: list[tuple[float, float]] = []  # (start, end), perf_counter
    pauses: list[tuple[float, float, int]] = []  # (start, end, generation)
    began: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began.append(time.perf_counter())
        elif began:
            start = began.pop()
            if time.perf_counter() - start > 0.002:
                pauses.append((start, time.perf_counter(), info["generation"]))

    async def heartbeat() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            after = time.perf_counter()
            if after - before > STALL_S:
                stalls.append((before + 0.005, after))

    heap: dict[str, int] = {}

    async def count_heap() -> None:
        # What a full collection walks and the frozen objects it skips, once, at the end
        # of the window (past the results compared; stop() unfreezes).
        await asyncio.sleep(warmup + seconds - 1)
        heap.update(gen2_objects=len(gc.get_objects(2)), frozen_objects=gc.get_freeze_count())

    async def freeze_after_first_round() -> None:
        await asyncio.sleep(warmup - 2)
        freeze_now()

    gc.callbacks.append(on_gc)
    tasks = [asyncio.create_task(heartbeat()), asyncio.create_task(count_heap())]
    if freeze:
        tasks.append(asyncio.create_task(freeze_after_first_round()))
    try:
        figures = await _child(config, warmup, seconds)
    finally:
        for task in tasks:
            task.cancel()
        gc.callbacks.remove(on_gc)
    return figures | {"stalls": stalls, "gc_pauses": pauses} | heap


def child_main(config: Path, warmup: float, seconds: float, out: Path, freeze: bool) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    out.write_text(json.dumps(asyncio.run(_watched(config, warmup, seconds, freeze))))


def causes(errors: Errors, figures: dict[str, Any]) -> tuple[int, int, int]:
    """(results off by more than the target, of those while the loop was held, of those
    while a full collection ran): a held loop lets the first token's segment sit until
    the next one arrives and merges it."""
    stalls = figures["stalls"]
    full = [(a, b) for a, b, gen in figures["gc_pauses"] if gen == 2]
    bad = held = by_gc = 0
    for err, first in zip(errors.ttft, errors.first_sent, strict=True):
        if abs(err) < TARGET_P99_MS:
            continue
        bad += 1
        window = (first, first + 0.031)
        if any(a < window[1] and b > window[0] for a, b in stalls):
            held += 1
            if any(a < window[1] and b > window[0] for a, b in full):
                by_gc += 1
    return bad, held, by_gc


def run_service(
    truth: TruthServer, seconds: float, tmp: Path, freeze: bool
) -> tuple[Errors, dict[str, Any]]:
    """One service run: warm-up interval, then `seconds` measured; errors and its figures."""
    config, out, db = tmp / "service.yaml", tmp / "service.json", tmp / "service.db"
    for stale in (db, out):
        stale.unlink(missing_ok=True)
    write_config(config, truth, db)
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    warmup = INTERVAL_S + PROBE_S
    cmd = [*pin, PYTHON, "-m", "bench.fidelity_service", "--child", str(config), "--out", str(out)]
    cmd += ["--warmup", str(warmup), "--seconds", str(seconds)]
    cmd += ["--freeze-after-warmup"] if freeze else []
    truth.reset()
    since = datetime.now(UTC).timestamp() + warmup + 5  # past start-up and the warm-up
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=warmup + seconds + 180)
    wall_minus_mono = time.time() - time.perf_counter()
    results = [
        r
        for r in stored_results(db, datetime.fromtimestamp(since, UTC))
        if r["started_at"] < since + seconds - PROBE_S - 10  # finished before the stop
    ]
    figures = json.loads(out.read_text())
    # The measured window on the monotonic clock, for the pauses and stalls counted in it.
    figures["window"] = (since - wall_minus_mono, since + seconds - PROBE_S - 10 - wall_minus_mono)
    return pair(results, truth.truths(), wall_minus_mono), figures


def report(runs: list[tuple[Errors, dict[str, Any]]], nice: int, freeze: bool, section: str) -> str:
    header = ["run", "results joined", "not joined / failed"]
    for what in ("ttft", "ttfb", "latency"):
        header += [f"{what} abs err p50", "p99", "max"]
    header += ["tok/s err p99 (%)", "lag p99 (ms)", "CPU (% of a core)"]
    header += [f"ttft off > {TARGET_P99_MS:g} ms", "loop held", "full GC", "full GCs > 2 ms"]
    header += ["gen 2 / frozen objects"]
    body = []
    p99s = []
    for i, (e, fig) in enumerate(runs, 1):
        cells: list[str] = []
        for values in (e.ttft, e.ttfb, e.latency):
            absolute = [abs(v) for v in values]
            cells += [fmt(percentile(absolute, q)) for q in (50, 99)]
            cells.append(fmt(max(absolute) if absolute else None))
        p99s.append(percentile([abs(v) for v in e.ttft], 99))
        lag = percentile([x * 1000 for x in fig["lags_s"]], 99)
        cpu = fig["cpu_s"] / fig["elapsed_s"] * 100
        tps = fmt(percentile([abs(v) for v in e.tps_rel], 99))
        lo, hi = fig["window"]
        full = [b - a for a, b, gen in fig["gc_pauses"] if gen == 2 and lo <= a <= hi]
        longest = f" (max {max(full) * 1000:.0f} ms)" if full else ""
        heap = f"{fig.get('gen2_objects', 0):,} / {fig.get('frozen_objects', 0):,}"
        why = [*causes(e, fig), f"{len(full)}{longest}", heap]
        body.append([i, len(e.ttft), e.failed, *cells, tps, fmt(lag), fmt(cpu, 0), *why])
    ok = bool(p99s) and all(p < TARGET_P99_MS for p in p99s)
    return (
        "## Fidelity inside a running service (1,000 targets)"
        + ("" if section == "fidelity-service" else f" (`{section}`)")
        + "\n\n"
        f"{provenance()}\n\n"
        f"`checker.service.Service` (bench.capacity's child, `taskset -c 0`) probes `stream` "
        f"on {TARGETS:,} targets every {INTERVAL_S:g} s against `bench.truth_server` on core "
        f"1 (ttft {BEHAVIOR['ttft_ms']:g} ms, {BEHAVIOR['completion_tokens']} tokens "
        f"{BEHAVIOR['inter_token_ms']:g} ms apart: about "
        f"{TARGETS * PROBE_S / INTERVAL_S:.0f} probes in flight). Each stored result "
        "(SQLite) is joined to the server's kernel stamps of its request; errors are "
        "|stored - truth| in ms. Both processes at scheduling niceness "
        f"{nice}. Lag and CPU are the service's own figures over the measured window. "
        + (
            "**The bench froze the service's objects after its first round of probes** "
            "(`gc.collect()`, `gc.freeze()`), which the service itself does not do: it "
            "freezes what `start()` built. "
            if freeze
            else "The service's GC as the service sets it (it freezes what `start()` built). "
        )
        + f"The last four columns: results whose ttft is off by more than "
        f"{TARGET_P99_MS:g} ms, how many of them had the service's loop held for more than "
        f"{STALL_S * 1000:g} ms (a heartbeat woke late) within 31 ms after the first token "
        "was sent, how many of those overlapped a full (generation 2) collection, and "
        "the full collections over 2 ms in the measured window; then the objects such a collection "
        "walks and the frozen ones it skips, counted at the end of the window.\n\n"
        + table(header, body)
        + f"\n\nTarget (|ttft error| p99 < {TARGET_P99_MS:g} ms in every run): "
        f"**{'met' if ok else 'MISSED'}** ({', '.join(fmt(p) for p in p99s)} ms)."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, per run")
    parser.add_argument("--nice", type=int, default=0, help="as bench.fidelity --nice")
    parser.add_argument("--section", default="fidelity-service")
    parser.add_argument(
        "--freeze-after-warmup",
        action="store_true",
        help="also gc.freeze() the service after its first round (what it does not do yet)",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=INTERVAL_S, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child, args.warmup, args.seconds, args.out, args.freeze_after_warmup)
        return
    if args.nice:
        set_niceness(args.nice)
    runs = []
    with TruthServer(BEHAVIOR) as truth, tempfile.TemporaryDirectory() as tmp:
        for run in range(1, args.runs + 1):
            runs.append(run_service(truth, args.seconds, Path(tmp), args.freeze_after_warmup))
            print(f"fidelity-service: run {run} done", flush=True)
    text = report(runs, args.nice, args.freeze_after_warmup, args.section)
    write_section(args.section, text)
    print(text)


if __name__ == "__main__":
    main()
