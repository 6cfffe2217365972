"""CPU per probe beside blackbox_exporter: the same endpoint, the same rate, one run.

Issue 17's first target: CPU per HTTP probe <= blackbox_exporter's, per streaming probe
<= 2x that. The simulator (bench.common.SimProcess) is the endpoint, pinned to core 1:
`/peer/health` answers after 100 ms, `/peer-stream/v1` streams 16 tokens after a 300 ms
ttft. On core 0, one process under test at a time, interleaved, ROUNDS rounds (the order
rotates each round):

- blackbox_exporter (Debian's `prometheus-blackbox-exporter`, installed with apt-get when
  missing), driven from this process through `/probe?module=http_2xx&target=...` (a fresh
  connection to the endpoint per probe, as it always does; this process keeps one
  connection to the exporter, as Prometheus would);
- a checker child running `checker.probes.runner.run_probe` (the service's code path:
  one ClientPool built once, a fresh connection per probe, the default) for the `http`
  probe, then for the `stream` probe.

Each drives N probes at RATE per second on a fixed schedule. CPU per probe = the process'
utime + stime (/proc/PID/stat) over the burst / N, after a warm-up burst that is not
counted (start-up, first connections, lazy imports). The exporter's figure includes
serving /probe and formatting its metrics (its normal per-probe work); the checker's
includes its fixed-rate driver, a sleep per probe.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from bench.common import (
    SimProcess,
    cpu_seconds,
    fmt,
    pin_to_core,
    pinned,
    provenance,
    table,
    write_section,
)
from checker.demo import free_port

BLACKBOX = "prometheus-blackbox-exporter"
PROBED_CORE = 0  # the processes under test; the simulator is on bench.common.SIM_CORE
N_DEFAULT = 400
RATE_DEFAULT = 20.0  # probes per second
ROUNDS = 3
WARMUP = 20
ENDPOINT_MS = 100.0
STREAM = {"ttft_ms": 300.0, "inter_token_ms": 20.0, "completion_tokens": 16}
TARGET_HTTP_RATIO = 1.0  # checker http / blackbox http
TARGET_STREAM_RATIO = 2.0  # checker stream / blackbox http
BLACKBOX_CONFIG = "modules:\n  http_2xx:\n    prober: http\n    timeout: 10s\n"


async def fixed_rate(n: int, rate: float, one: Callable[[], Awaitable[bool]]) -> int:
    """Start `one()` n times, the i-th at i / rate seconds (an absolute schedule, so a
    late start does not push back the rest); how many of them came back True."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(n):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one()))
    return sum(await asyncio.gather(*tasks))


# --- blackbox_exporter ------------------------------------------------------------------------


def blackbox_binary() -> str:
    """The exporter's binary, installing the Debian package when it is missing."""
    found = shutil.which(BLACKBOX) or shutil.which(BLACKBOX, path="/usr/bin")
    if found:
        return found
    install = ["apt-get", "install", "-y", BLACKBOX]
    if os.geteuid() != 0:
        install = ["sudo", *install]
    if not shutil.which(install[0]):
        raise SystemExit(f"{BLACKBOX} is missing and `{' '.join(install)}` cannot run here")
    print(f"peer: installing {BLACKBOX}: {' '.join(install)}", file=sys.stderr, flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(install, check=True, env=env, stdout=subprocess.DEVNULL)
    found = shutil.which(BLACKBOX, path="/usr/bin:/usr/sbin")
    if not found:
        raise SystemExit(f"{BLACKBOX} is still missing after apt-get install")
    return found


def blackbox_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    # "blackbox_exporter, version 0.23.0 (branch: ...)" -> "0.23.0"
    words = (out.stdout or out.stderr).split()
    return words[2] if len(words) > 2 and words[1] == "version" else "?"


class Blackbox:
    """The exporter on core 0 with a config of one module, on a free loopback port."""

    def __init__(self, binary: str, workdir: Path) -> None:
        config = workdir / "blackbox.yml"
        config.write_text(BLACKBOX_CONFIG)
        self.port = free_port()
        cmd = [
            binary,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=error",
        ]
        self._proc = subprocess.Popen(pinned(cmd, PROBED_CORE), stdout=subprocess.DEVNULL)
        self.pid = self._proc.pid

    async def ready(self, client: httpx.AsyncClient, timeout_s: float = 20.0) -> None:
        """Until it answers /-/healthy (it is not listening yet right after the start)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if (await client.get(f"http://127.0.0.1:{self.port}/-/healthy")).is_success:
                    return
            except httpx.TransportError as exc:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise SystemExit(f"{BLACKBOX} did not start: {exc!r}") from exc
            await asyncio.sleep(0.05)

    def probe_url(self, target: str) -> str:
        return f"http://127.0.0.1:{self.port}/probe?module=http_2xx&target={target}"

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()


async def drive_blackbox(client: httpx.AsyncClient, url: str, n: int, rate: float) -> int:
    async def one() -> bool:
        response = await client.get(url)
        return "\nprobe_success 1" in "\n" + response.text

    return await fixed_rate(n, rate, one)


# --- the checker, in a child process ----------------------------------------------------------


def _checker_config(health_url: str, stream_url: str) -> Any:
    import yaml

    from checker.config.load import parse

    targets = [
        {"name": "web", "kind": "http", "base_url": health_url},
        {
            "name": "llm",
            "kind": "openai",
            "base_url": stream_url,
            "model": "sim-large",
            "probes": ["stream"],
        },
    ]
    return parse(yaml.safe_dump({"targets": targets}))


def _checker_main(conn: Connection, health_url: str, stream_url: str) -> None:
    """Child: one ClientPool for the whole run, as the service keeps one; runs bursts of
    run_probe on command and answers with how many came back ok."""
    pin_to_core(PROBED_CORE)
    from checker.probes.runner import run_probe
    from checker.probes.transport.pool import ClientPool
    from checker.redact import Redactor

    cfg = _checker_config(health_url, stream_url)
    redactor = Redactor(cfg.secrets())
    targets = {"http": cfg.targets[0], "stream": cfg.targets[1]}
    loop = asyncio.new_event_loop()
    pool = ClientPool(cfg)
    loop.run_until_complete(pool.__aenter__())
    frozen = False
    while True:
        op, probe, n, rate = conn.recv()
        if op == "stop":
            loop.run_until_complete(pool.aclose())
            conn.send(None)
            return
        target = targets[probe]

        async def one(target: Any = target, probe: str = probe) -> bool:
            result = await run_probe(cfg, target, probe, pool, redactor)
            return result.ok

        conn.send(loop.run_until_complete(fixed_rate(n, rate, one)))
        if not frozen and op == "warmup" and probe == "stream":
            # What the service does once started (service.housekeeping): what start-up
            # built moves out of the collector's sight.
            gc.collect()
            gc.freeze()
            frozen = True


class CheckerChild:
    def __init__(self, health_url: str, stream_url: str) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_checker_main, args=(child, health_url, stream_url), daemon=True
        )
        self._proc.start()
        assert self._proc.pid is not None
        self.pid = self._proc.pid

    def burst(self, op: str, probe: str, n: int, rate: float) -> int:
        self._conn.send((op, probe, n, rate))
        ok: int = self._conn.recv()
        return ok

    def stop(self) -> None:
        try:
            self.burst("stop", "", 0, 0.0)
        finally:
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Subject:
    """One (process, probe) under test and the CPU ms per probe of each round."""

    label: str
    pid: int
    run: Callable[[int], int]  # n -> how many were ok
    cpu_ms: list[float]
    ok: int = 0
    sent: int = 0

    def measure(self, n: int) -> None:
        before = cpu_seconds(self.pid)
        self.ok += self.run(n)
        self.cpu_ms.append((cpu_seconds(self.pid) - before) / n * 1000)
        self.sent += n


def run(n: int, rate: float, rounds: int, workdir: Path) -> tuple[list[Subject], str]:
    binary = blackbox_binary()
    version = blackbox_version(binary)
    with SimProcess() as sim:
        sim.set("peer", headers_delay_ms=ENDPOINT_MS)
        sim.set("peer-stream", **STREAM)
        health = f"http://127.0.0.1:{sim.port}/peer/health"
        exporter = Blackbox(binary, workdir)
        checker = CheckerChild(health, sim.url("peer-stream"))
        loop = asyncio.new_event_loop()
        client = httpx.AsyncClient(timeout=30.0)
        try:
            loop.run_until_complete(exporter.ready(client))
            url = exporter.probe_url(health)

            def bb(count: int) -> int:
                return loop.run_until_complete(drive_blackbox(client, url, count, rate))

            def probe(name: str) -> Callable[[int], int]:
                return lambda count: checker.burst("run", name, count, rate)

            subjects = [
                Subject(f"blackbox_exporter {version}, http_2xx", exporter.pid, bb, []),
                Subject("checker, http", checker.pid, probe("http"), []),
                Subject("checker, stream", checker.pid, probe("stream"), []),
            ]
            bb(WARMUP)
            checker.burst("warmup", "http", WARMUP, rate)
            checker.burst("warmup", "stream", WARMUP, rate)
            for r in range(rounds):
                for subject in subjects[r % 3 :] + subjects[: r % 3]:
                    subject.measure(n)
                    print(f"peer: round {r + 1} {subject.label} done", file=sys.stderr, flush=True)
        finally:
            loop.run_until_complete(client.aclose())
            loop.close()
            checker.stop()
            exporter.stop()
    return subjects, version


# --- the report -------------------------------------------------------------------------------


def verdicts(http_ratio: float, stream_ratio: float) -> list[str]:
    def word(ok: bool) -> str:
        return "**met**" if ok else "**MISSED**"

    return [
        f"Target (CPU per HTTP probe <= blackbox_exporter's): {word(http_ratio <= 1.0)} "
        f"(checker / blackbox_exporter = {fmt(http_ratio)}).",
        f"Target (CPU per streaming probe <= {TARGET_STREAM_RATIO:g}x blackbox_exporter's HTTP "
        f"probe): {word(stream_ratio <= TARGET_STREAM_RATIO)} (ratio {fmt(stream_ratio)}).",
    ]


def report(subjects: list[Subject], n: int, rate: float, rounds: int) -> str:
    base = median(subjects[0].cpu_ms)
    header = [
        "process, probe",
        "probes measured",
        "ok",
        "CPU ms / probe (median of rounds)",
        "rounds",
        "ratio to blackbox_exporter",
    ]
    rows = [
        [
            s.label,
            f"{s.sent:,} ({rounds} x {n})",
            f"{s.ok:,}",
            fmt(median(s.cpu_ms), 3),
            ", ".join(fmt(x, 3) for x in s.cpu_ms),
            fmt(median(s.cpu_ms) / base),
        ]
        for s in subjects
    ]
    http_ratio = median(subjects[1].cpu_ms) / base
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    stream_ratio = median(subjects[2].cpu_ms) / base
    return (
        "## CPU per probe beside blackbox_exporter\n\n"
        f"{provenance()}\n\n"
        f"One endpoint, the simulator pinned to core 1: `/peer/health` answers after "
        f"{ENDPOINT_MS:g} ms, `/peer-stream/v1` streams {STREAM['completion_tokens']} tokens "
        f"{STREAM['inter_token_ms']:g} ms apart after a {STREAM['ttft_ms']:g} ms ttft. On core "
        f"0, in turn (interleaved, the order rotating each round), blackbox_exporter driven "
        f"through `/probe?module=http_2xx` and a checker process running `run_probe` (the "
        f"service's code path, a fresh connection per probe) for `http` and for `stream`, each "
        f"{n} probes at {rate:g} per second per round. CPU = utime + stime of that process "
        f"(/proc/PID/stat) over the burst / probes, after an uncounted warm-up of {WARMUP}; "
        f"its clock ticks every {tick_ms:g} ms, so a round's figure moves in steps of "
        f"{tick_ms / n:.3f} ms. The exporter's figure includes serving `/probe` and its "
        "metrics; the checker's includes its fixed-rate driver; neither counts the endpoint."
        "\n\n" + table(header, rows) + "\n\n" + "\n".join(verdicts(http_ratio, stream_ratio))
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_DEFAULT, help="probes per round and subject")
    parser.add_argument("--rate", type=float, default=RATE_DEFAULT, help="probes per second")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--section", default="cpu-per-probe", help="PERFORMANCE.md section key")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        subjects, _version = run(args.n, args.rate, args.rounds, Path(tmp))
    text = report(subjects, args.n, args.rate, args.rounds)
    write_section(args.section, text)
    print(text)


if __name__ == "__main__":
    main()
