"""`make demo`: the whole service against the built-in simulator, then `checker status`.

Runs on the embedded defaults (SQLite under ./var/demo, the simulator and the status page on
free loopback ports) for CHECKER_DEMO_SECONDS (default 60) or until Ctrl-C, then prints the
commands to try next, each of which works as printed: read-only commands need the database,
not the demo's API key.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

from checker.sim import Behavior, SimServer

DEMO_DIR = Path("var/demo")

# Five routes, each showing one thing a real provider does.
ROUTES: dict[str, Behavior] = {
    "steady": Behavior(
        ttft_ms=120, inter_token_ms=15, completion_tokens=20, models=["gpt-4o-mini", "sim-large"]
    ),
    "reasoner": Behavior(ttft_ms=300, inter_token_ms=10, reasoning_tokens=15, completion_tokens=10),
    "slow": Behavior(ttft_ms=900, inter_token_ms=40, completion_tokens=12),
    "flaky": Behavior(ttft_ms=150, inter_token_ms=10),
    # Serves another model than it claims, and bills 2.5x the tokens it streams.
    "relay": Behavior(
        ttft_ms=200,
        inter_token_ms=12,
        completion_tokens=12,
        reported_completion_tokens=30,
        model="sim-small-distilled",
    ),
}


def free_port() -> int:
    """A loopback port nothing listens on now (the status page's)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_config(sim: SimServer, db: Path, port: int) -> str:
    def target(name: str, model: str, probes: str, interval: str, extra: str = "") -> str:
        return f"""
  - name: {name}
    kind: openai
    base_url: {sim.url(name)}
    api_key: ${{CHECKER_DEMO_KEY}}
    model: {model}
    probes: [{probes}]
    interval: {interval}
    timeout: 10s{extra}"""

    # Real model names get genai-prices' list prices; the simulator echoes any name.
    override = "\n    pricing: {input_per_mtok: 2.0, output_per_mtok: 8.0}"
    targets = "".join(
        [
            target("steady", "gpt-4o-mini", "models, stream, known_answer", "3s"),
            target("reasoner", "deepseek-reasoner", "stream", "4s"),
            # The direct provider: the other sim-large routes are compared against it.
            target("slow", "sim-large", "stream", "4s", override + "\n    reference: true"),
            target("flaky", "sim-large", "stream, chat", "2s", override),
            target("relay", "sim-large", "stream", "4s", "\n    expect_model: sim-large"),
        ]
    )
    return f"""# Written by `make demo`: five simulated routes and a health endpoint.
targets:{targets}
  - name: sim-health
    kind: http
    base_url: {sim.root_url}/health
    interval: 2s
    http: {{conditions: ["status == 200", 'json.status == "ok"', "latency_ms < 500"]}}
defaults:
  slo: {{availability: 99%, window: 30d, min_bad: 3}}
storage: {{url: "sqlite:///{db}"}}
server: {{listen: "127.0.0.1:{port}"}}
"""


def flaky_script() -> list[Behavior]:
    """Every fourth request fails, each time differently."""
    ok = Behavior(ttft_ms=150, inter_token_ms=10)
    faults = [
        Behavior(status=503, error_message="upstream overloaded"),
        Behavior(status=429, retry_after="2", error_message="slow down"),
        Behavior(fault="truncate", fault_after_tokens=4),
        Behavior(fault="disconnect", fault_after_tokens=2),
    ]
    script: list[Behavior] = []
    for fault in faults * 25:
        script += [ok, ok, ok, fault]
    return script


def prepare(port: int) -> tuple[SimServer, Path]:
    """Start the simulator and write a fresh config and database location."""
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    db = DEMO_DIR / "checker.db"
    for leftover in DEMO_DIR.glob("checker.db*"):
        leftover.unlink()
    key = "sk-demo-0123456789abcdef"
    os.environ["CHECKER_DEMO_KEY"] = key
    sim = SimServer(api_key=key)
    sim.start_in_thread()
    for route, behavior in ROUTES.items():
        sim.set(route, behavior)
    sim.script("flaky", flaky_script())
    path = DEMO_DIR / "demo.yaml"
    path.write_text(demo_config(sim, db, port))
    return sim, path


async def run_service(path: Path, seconds: float) -> None:
    from checker import logs
    from checker.config import load as config_mod
    from checker.redact import Redactor
    from checker.service.wiring import Service

    cfg = config_mod.load(path)
    logs.setup("info", "text", Redactor(cfg.secrets()))
    service = Service(path, cfg)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, service.request_stop)
    await service.start()
    await service.wait_stopped(seconds)
    await service.stop()
    await asyncio.to_thread(rollup_everything, cfg.storage.resolved_url())


def rollup_everything(url: str) -> None:
    """Fold the stored hours into rollups, as the service's rollup job would."""
    from datetime import UTC, datetime, timedelta

    from checker.store import db
    from checker.store.queries import window_cache
    from checker.store.rollup import rollup_hours

    engine = db.make_engine(url)
    try:
        now = datetime.now(UTC)
        rollup_hours(engine, now - timedelta(hours=2), now)
        window_cache.refresh(engine, now)
    finally:
        engine.dispose()


def main() -> None:
    seconds = float(os.environ.get("CHECKER_DEMO_SECONDS", "60"))
    port = free_port()
    sim, path = prepare(port)
    print(f"demo: simulator on {sim.root_url}, config {path}, running {seconds:g}s (Ctrl-C stops)")
    # Printed before the service starts so it is on screen while the page fills in.
    print(f"status page: http://127.0.0.1:{port}/  (metrics: /metrics, while the demo runs)")
    try:
        asyncio.run(run_service(path, seconds))
    finally:
        sim.stop_thread()
    served = sum(sim.stats(r)["completed"] for r in ROUTES)
    print(f"demo: the simulator completed {served} chat responses; what checker stored:")
    from checker.cli import app

    for command in ("status", "compare"):
        if command == "compare":
            print("\ndemo: the sim-large routes side by side (checker compare):")
        try:
            app([command, "-c", str(path)], prog_name="checker")
        except SystemExit as exc:
            if exc.code:
                raise
    print("\n" + next_steps(path))


def next_steps(path: Path) -> str:
    """What to try next; every line runs as printed from the checkout."""
    cli = ".venv/bin/checker"
    return "\n".join(
        [
            "next, try:",
            f"  {cli} status -c {path} --by-location   # uptime and percentiles per probe",
            f"  {cli} compare -c {path}                # routes of one model, with uncertainty",
            f"  {cli} incidents -c {path}              # what paged, what resolved",
            f"  {cli} digest -c {path} --preview var/demo/digest.html   # the daily e-mail",
            f"  {cli} init -o checker.yaml --preset openai   # your own config, commented",
            "  CHECKER_DEMO_SECONDS=300 make demo       # a longer run, the page open meanwhile",
        ]
    )


if __name__ == "__main__":
    main()
