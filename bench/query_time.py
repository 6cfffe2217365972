"""`queries.status` over 30 days and `digest.build` of 24 h for all targets of a kept
storage database, best of N.

For before/after pairs on the same data: keep a database with `bench.storage --keep DIR`,
then run this once per source tree, `PYTHONPATH=<tree>` choosing which `checker` is
timed (the tree needs this `bench/` directory):

    .venv/bin/python -m bench.query_time --url sqlite:///DIR/bench.db
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import checker
from bench.storage import _generated_now, target_names, write_config
from checker.config import load as config_mod
from checker.cost.prices import PriceBook
from checker.digest.build import build as build_digest
from checker.store import db
from checker.store.queries.status import status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="a database kept by bench.storage --keep")
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    engine = db.make_engine(args.url)
    now = _generated_now(engine)
    if now is None:
        raise SystemExit(f"{args.url}: no results (make one with bench.storage --keep)")
    names = target_names(args.targets)
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "bench.yaml"
        write_config(config_path, args.url, names)
        cfg = config_mod.load(config_path)
    prices = PriceBook(cfg)
    timed = {
        "status 30d": lambda: status(engine, names, now, main_window="30d"),
        "digest 24 h": lambda: build_digest(
            engine, cfg, now - timedelta(hours=24), now, prices=prices
        ),
    }
    tree = checker.__file__.rsplit("/checker/", 1)[0]
    for name, fn in timed.items():
        fn()  # warm: page cache, compiled statements
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(
            f"{tree}: {engine.dialect.name} {name}, {args.targets} targets: "
            f"best of {args.runs} {min(times) * 1000:.0f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
