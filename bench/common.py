"""Shared bench plumbing: machine facts, percentiles, the simulator in its own process,
and the PERFORMANCE.md writer (each bench owns one marked section of the file)."""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import platform
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
PERFORMANCE_MD = ROOT / "docs" / "PERFORMANCE.md"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
SIM_CORE = 1  # the simulator's core when there are two or more; the checker gets core 0


# --- machine and numbers ---------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return math.nan


def machine_line() -> str:
    return (
        f"{os.cpu_count()} CPUs ({cpu_model()}), {ram_gib():.1f} GiB RAM, "
        f"Linux {platform.release()}, Python {platform.python_version()}"
    )


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def command_line() -> str:
    """The command that produced these numbers, as someone would type it from the repo root."""
    module = sys.modules["__main__"].__spec__
    name = module.name if module is not None else sys.argv[0]
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f".venv/bin/python -m {name} {args}".rstrip()


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN when there are no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pin_to_core(core: int) -> None:
    """Best effort: keep the measuring process off the simulator's core."""
    if (os.cpu_count() or 1) > core and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def rss_mb(pid: int | None = None) -> float:
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else math.nan


def cpu_seconds(pid: int | None = None) -> float:
    """utime + stime of a process from /proc/PID/stat."""
    stat = Path(f"/proc/{pid or 'self'}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# --- a generated config ----------------------------------------------------------------------


def write_streaming_config(
    path: Path, sim_url: str, targets: int, interval_s: float, db: Path
) -> None:
    """`targets` targets on one simulated route, each probed with `stream` every `interval_s`,
    stored in SQLite at `db` (the capacity and footprint benches)."""
    import yaml

    cfg = {
        "targets": [
            {
                "name": f"t{i}",
                "kind": "openai",
                "base_url": sim_url,
                "model": "sim-large",
                "probes": ["stream"],
                "interval": f"{interval_s:g}s",
                "timeout": "10s",
            }
            for i in range(targets)
        ],
        "storage": {"url": f"sqlite:///{db}"},
    }
    path.write_text(yaml.safe_dump(cfg))


# --- the simulator in another process --------------------------------------------------------


def _sim_main(conn: Connection, core: int | None) -> None:
    """Child: serve the simulator on its own loop thread; answer control calls on the pipe."""
    from checker.sim import Behavior, SimServer

    if core is not None:
        pin_to_core(core)
    server = SimServer()
    server.start_in_thread()
    conn.send(server.port)
    while True:
        op, args = conn.recv()
        if op == "stop":
            server.stop_thread()
            conn.send(None)
            return
        if op == "set":
            route, fields = args
            server.set(route, Behavior.from_dict(fields))
            conn.send(None)
        elif op == "timings":
            conn.send([t.__dict__ for t in server.timings(args)])
        elif op == "reset":
            server.reset_stats()
            conn.send(None)


@dataclass
class SimTiming:
    route: str
    endpoint: str
    received: float
    headers_sent: float | None
    first_token_sent: float | None
    last_byte_sent: float | None
    tokens_sent: int


class ChildServer:
    """A loopback server in a separate process (multiprocessing spawn: own GIL, own core
    when there is one), controlled over a pipe: `target(conn, core, *args)` sends its port,
    then answers (op, args) messages until "stop"."""

    def __init__(self, target: Any, args: tuple[Any, ...] = (), core: int | None = SIM_CORE):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        use_core = core if core is not None and (os.cpu_count() or 1) > core else None
        self._proc = ctx.Process(target=target, args=(child, use_core, *args), daemon=True)
        self._proc.start()
        self.port: int = self._conn.recv()

    @property
    def pid(self) -> int:
        assert self._proc.pid is not None
        return self._proc.pid

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self.port}/{route}/v1"

    def _call(self, op: str, args: Any = None) -> Any:
        self._conn.send((op, args))
        return self._conn.recv()

    def reset(self) -> None:
        self._call("reset")

    def stop(self) -> None:
        try:
            self._call("stop")
        finally:
            self._proc.join(timeout=10)
            if self._proc.is_alive():
                self._proc.kill()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimProcess(ChildServer):
    """checker.sim.SimServer in a separate process (own GIL, own core when there is one).

    Its timing stamps are time.perf_counter() values: CLOCK_MONOTONIC on Linux, one clock
    for every process on the machine, so they compare directly with the checker's.
    """

    def __init__(self, core: int | None = SIM_CORE) -> None:
        super().__init__(_sim_main, core=core)

    def set(self, route: str, **fields: Any) -> None:
        self._call("set", (route, fields))

    def timings(self, route: str | None = None) -> list[SimTiming]:
        # The simulator's Timing holds more than the benches compare (token times, prompt).
        names = {f.name for f in fields(SimTiming)}
        return [SimTiming(**{k: t[k] for k in names}) for t in self._call("timings", route)]


# --- PERFORMANCE.md ---------------------------------------------------------------------------

_HEAD = """# Performance

Generated by the scripts in `bench/` (`make bench` runs them all). Each section names the
machine, the date and the exact command that produced it; rerun that command to reproduce
the figures. The machine is shared and noisy: compare figures within one section (one run),
not across sections.
"""


def write_section(key: str, body: str) -> None:
    """Replace (or append) the section marked `key` in docs/PERFORMANCE.md."""
    start, end = f"<!-- bench:{key} -->", f"<!-- /bench:{key} -->"
    text = PERFORMANCE_MD.read_text() if PERFORMANCE_MD.exists() else _HEAD
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    PERFORMANCE_MD.parent.mkdir(parents=True, exist_ok=True)
    PERFORMANCE_MD.write_text(text)


def provenance() -> str:
    return f"Machine: {machine_line()}. Date: {now_utc()}. Command: `{command_line()}`."


# --- processes under test ---------------------------------------------------------------------


def pinned(cmd: list[str], core: int) -> list[str]:
    """`cmd` under `taskset -c core`, so every thread it starts stays on that core; as is
    when there is no taskset or no such core."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > core:
        return ["taskset", "-c", str(core), *cmd]
    return cmd
