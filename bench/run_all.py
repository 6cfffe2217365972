"""`make bench`: every benchmark, one after the other, each writing its section of
docs/PERFORMANCE.md. Runs in about 15 minutes on 2 cores (footprint about 5 of them); the
storage benchmark and the CPU-per-probe comparison run at a reduced scale here (see their
sections and bench/storage.py, bench/peer.py for the full-size commands)."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.common import PYTHON, ROOT

# Each entry is one command line, recorded verbatim in its PERFORMANCE.md section.
BENCHES: list[list[str]] = [
    ["bench.fidelity"],
    ["bench.capacity"],
    ["bench.memory"],
    ["bench.footprint"],
    ["bench.storage", "--days", "30", "--targets", "10", "--section", "storage-make-bench"],
    ["bench.alert_latency"],
    # 3 rounds x 150 probes at 20/s per process: about 80 s (bench.peer's default is 400).
    ["bench.peer", "--n", "150"],
]


def main() -> int:
    started = time.monotonic()
    failed = []
    for args in BENCHES:
        t0 = time.monotonic()
        print(f"== {' '.join(args)}", flush=True)
        code = subprocess.run([PYTHON, "-m", *args], cwd=ROOT).returncode
        print(f"== {args[0]}: exit {code} after {time.monotonic() - t0:.0f} s", flush=True)
        if code:
            failed.append(args[0])
    print(f"== all benchmarks: {time.monotonic() - started:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
