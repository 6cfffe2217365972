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


def run_service(truth: TruthServer, seconds: float, tmp: Path) -> tuple[Errors, dict[str, Any]]:
    """One service run: warm-up interval, then `seconds` measured; errors and its figures."""
    config, out, db = tmp / "service.yaml", tmp / "service.json", tmp / "service.db"
    for stale in (db, out):
        stale.unlink(missing_ok=True)
    write_config(config, truth, db)
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
    warmup = INTERVAL_S + PROBE_S
    cmd = [*pin, PYTHON, "-m", "bench.capacity", "--child", str(config), "--out", str(out)]
    cmd += ["--warmup", str(warmup), "--seconds", str(seconds)]
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
    return pair(results, truth.truths(), wall_minus_mono), figures


def report(runs: list[tuple[Errors, dict[str, Any]]], nice: int) -> str:
    header = ["run", "results joined", "not joined / failed"]
    for what in ("ttft", "ttfb", "latency"):
        header += [f"{what} abs err p50", "p99", "max"]
    header += ["tok/s err p99 (%)", "lag p99 (ms)", "CPU (% of a core)"]
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
        body.append([i, len(e.ttft), e.failed, *cells, tps, fmt(lag), fmt(cpu, 0)])
    ok = bool(p99s) and all(p < TARGET_P99_MS for p in p99s)
    return (
        "## Fidelity inside a running service (1,000 targets)\n\n"
        f"{provenance()}\n\n"
        f"`checker.service.Service` (bench.capacity's child, `taskset -c 0`) probes `stream` "
        f"on {TARGETS:,} targets every {INTERVAL_S:g} s against `bench.truth_server` on core "
        f"1 (ttft {BEHAVIOR['ttft_ms']:g} ms, {BEHAVIOR['completion_tokens']} tokens "
        f"{BEHAVIOR['inter_token_ms']:g} ms apart: about "
        f"{TARGETS * PROBE_S / INTERVAL_S:.0f} probes in flight). Each stored result "
        "(SQLite) is joined to the server's kernel stamps of its request; errors are "
        "|stored - truth| in ms. Both processes at scheduling niceness "
        f"{nice}. Lag and CPU are the service's own figures over the measured window.\n\n"
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
    args = parser.parse_args(argv)
    if args.nice:
        set_niceness(args.nice)
    runs = []
    with TruthServer(BEHAVIOR) as truth, tempfile.TemporaryDirectory() as tmp:
        for run in range(1, args.runs + 1):
            runs.append(run_service(truth, args.seconds, Path(tmp)))
            print(f"fidelity-service: run {run} done", flush=True)
    text = report(runs, args.nice)
    write_section(args.section, text)
    print(text)


if __name__ == "__main__":
    main()
