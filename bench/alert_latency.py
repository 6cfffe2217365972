"""Alert latency: from the start of an outage to the page arriving at a webhook.

`checker run` (the real CLI, its own process) probes one simulated route; the bench turns
the route into a 503 outage at a random moment, notes the time, and waits for the `down`
page to arrive at a local webhook receiver that Apprise (`json://`) posts to. Then it ends
the outage and waits for the resolution, and repeats. Both clocks are perf_counter on one
machine.

Theoretical minimum = interval x failures: the rule needs `failures` consecutive failed
probes, and the first one comes up to one interval after the outage starts (on average
half an interval), so the floor is (failures - 1) x interval plus the time to the first
probe; interval x failures is the bound a user can reason with, and what the ratio uses.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiohttp import web

from bench.common import PYTHON, ROOT, SimProcess, fmt, percentile, provenance, table
from bench.common import write_section as write_perf_section

INTERVAL_S = 2.0
FAILURES = 3
RECOVERIES = 2
HEALTHY = {"ttft_ms": 50.0, "inter_token_ms": 5.0, "completion_tokens": 8}


class Webhook:
    """A loopback receiver on its own thread; records (arrival, title) of every post."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self.port = 0
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    async def _hook(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        body = await request.json()
        with self._lock:
            self.posts.append((arrived, str(body.get("title", ""))))
        return web.Response(text="ok")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = int(runner.addresses[0][1])
        self._ready.set()
        self._loop.run_forever()

    def wait_for(self, word: str, target: str, after: float, within: float) -> float | None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._lock:
                for at, title in self.posts:
                    if at >= after and word in title.upper() and f" {target}:" in title:
                        return at
            time.sleep(0.01)
        return None


def write_config(path: Path, sim: SimProcess, hook_port: int, db: Path, trials: int) -> None:
    # One target per trial: a target that opened 4 incidents within the hour is flapping
    # (alerts.flapping_opens_per_hour) and rightly pages no more.
    targets = "".join(
        f"""
  - name: route-{i}
    kind: openai
    base_url: {sim.url(f"route-{i}")}
    model: sim-large
    probes: [stream]
    interval: {INTERVAL_S:g}s
    timeout: 5s"""
        for i in range(trials)
    )
    path.write_text(
        f"""
targets:{targets}
defaults:
  alerts: {{down: {{failures: {FAILURES}, recoveries: {RECOVERIES}}}, burn: false,
            budget_below: null}}
notify:
  - {{url: "json://127.0.0.1:{hook_port}/hook", tags: [page]}}
storage: {{url: "sqlite:///{db}"}}
"""
    )


def measure(trials: int, seed: int) -> list[dict[str, float]]:
    rng = random.Random(seed)
    hook = Webhook()
    results: list[dict[str, float]] = []
    with SimProcess() as sim, tempfile.TemporaryDirectory() as tmp:
        for i in range(trials):
            sim.set(f"route-{i}", **HEALTHY)
        config = Path(tmp) / "alert.yaml"
        write_config(config, sim, hook.port, Path(tmp) / "alert.db", trials)
        proc = subprocess.Popen(
            [PYTHON, "-m", "checker.cli", "run", "-c", str(config), "--log-level", "warning"],
            cwd=ROOT,
        )
        try:
            time.sleep(3 * INTERVAL_S)  # started, probing, healthy
            for i in range(trials):
                route = f"route-{i}"
                time.sleep(rng.uniform(0, INTERVAL_S))  # outages start at any phase
                sim.set(route, **HEALTHY, status=503)
                started = time.perf_counter()
                paged = hook.wait_for("FIRING", route, started, within=60)
                sim.set(route, **HEALTHY)
                healed = time.perf_counter()
                resolved = hook.wait_for("RESOLVED", route, healed, within=60)
                if paged is None or resolved is None:
                    raise RuntimeError("no page or no resolution within 60 s")
                results.append({"page_s": paged - started, "resolve_s": resolved - healed})
                print(f"alert: paged after {paged - started:.2f} s", file=sys.stderr, flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return results


def report(results: list[dict[str, float]]) -> str:
    floor = INTERVAL_S * FAILURES
    floor_resolve = INTERVAL_S * RECOVERIES
    page = [r["page_s"] for r in results]
    resolve = [r["resolve_s"] for r in results]
    rows = [
        [
            "outage start -> page",
            len(page),
            fmt(percentile(page, 50)),
            fmt(max(page)),
            fmt(floor, 1),
            fmt(percentile(page, 50) / floor),
        ],
        [
            "recovery -> resolved notice",
            len(resolve),
            fmt(percentile(resolve, 50)),
            fmt(max(resolve)),
            fmt(floor_resolve, 1),
            fmt(percentile(resolve, 50) / floor_resolve),
        ],
    ]
    header = ["path", "trials", "median (s)", "max (s)", "bound (s)", "median / bound"]
    return (
        "## Alert latency\n\n"
        f"{provenance()}\n\n"
        f"`checker run` probes one simulated route per trial (`stream`) every {INTERVAL_S:g} s; "
        f"`down` pages after {FAILURES} failures and resolves after {RECOVERIES} successes "
        "(default flush 1 s, evaluation after each flush), through Apprise `json://` to a "
        "webhook on loopback. Outages (HTTP 503) start at a random phase of the interval. "
        f"Bound = interval x failures ({fmt(floor, 1)} s) for the page and interval x "
        f"recoveries for the resolution.\n\n" + table(header, rows)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    text = report(measure(args.trials, args.seed))
    write_perf_section("alert-latency", text)
    print(text)


if __name__ == "__main__":
    main()
