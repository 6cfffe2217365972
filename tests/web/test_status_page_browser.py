"""The status page in headless Chromium (Debian's `chromium`), driven over the DevTools
protocol through a small aiohttp websocket client.

Asserts the page loads with no console message, script exception or browser log error
(CSP violations, failed loads) and shows every target, on a desktop and a phone viewport,
and takes a full-page screenshot (to a temporary file; set CHECKER_SCREENSHOT to a path,
e.g. docs/status-page.png, to keep it). Skipped when Chromium is missing, except under
CI=true, where it fails instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import shutil
import signal
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.engine import Engine

from checker.config.load import parse
from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.db import make_engine
from checker.store.plan import HOUR, floor_hour
from checker.store.rollup import rollup_hours
from checker.web.metrics import Metrics
from checker.web.server import WebServer
from tests.fixtures_db import store_results
from tests.web.test_server import insert_day_rollup, insert_incident

CHROMIUM = os.environ.get("CHECKER_CHROMIUM", "/usr/bin/chromium")
STEP_TIMEOUT_S = 15.0
NOW = datetime(2026, 6, 3, 14, 20, 5, tzinfo=UTC)

CONFIG = """
location: fra-1
targets:
  - {name: deepseek-direct, kind: openai, base_url: "http://127.0.0.1:9/v1", model: deepseek-chat}
  - {name: openrouter-gpt-4o, kind: openai, base_url: "http://127.0.0.1:9/v1", model: openai/gpt-4o,
     slo: {availability: 99.9%}}
  - {name: anthropic-direct, kind: anthropic, base_url: "http://127.0.0.1:9/v1",
     model: claude-sonnet-4-5}
  - {name: docs-site, kind: http, base_url: "http://127.0.0.1:9/"}
server: {listen: "127.0.0.1:0"}
"""
# name -> (daily failure rate, median latency ms, a few bad days: days ago -> failure rate)
PROFILES: dict[str, tuple[float, float, dict[int, float]]] = {
    "deepseek-direct": (0.0005, 1400.0, {41: 0.06}),
    "openrouter-gpt-4o": (0.0004, 900.0, {12: 0.015, 13: 0.004, 57: 0.03}),
    "anthropic-direct": (0.001, 1800.0, {3: 0.02, 70: 0.12}),
    "docs-site": (0.0, 120.0, {}),
}


def chromium_or_skip() -> str:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {CHROMIUM} is missing: install Debian's chromium package")
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")


# --- a scenario that looks like a real week ------------------------------------------------


def _result(
    target: str, probe: str, at: datetime, rng: random.Random, median: float
) -> ProbeResult:
    r = ProbeResult(target=target, probe=probe, started_at=at, ok=True, status=200)
    # A daily rhythm: slower in the (UTC) afternoon, when the providers are busiest.
    busy = 1.0 + 0.25 * max(0.0, 1 - abs(at.hour - 15) / 6)
    r.latency_ms = median * busy * rng.lognormvariate(0, 0.18) * (0.3 if probe == "models" else 1)
    if probe == "stream":
        r.ttft_ms = r.latency_ms * rng.uniform(0.35, 0.5)
        r.tokens_per_s = rng.uniform(40, 90)
    return r


def build_scenario(engine: Engine, cfg: Config) -> None:
    rng = random.Random(20260603)
    raw_since = NOW - timedelta(hours=26)
    items: list[tuple[ProbeResult, bool]] = []
    for target in cfg.targets:
        rate, median, _ = PROFILES[target.name]
        at = NOW - timedelta(seconds=rng.uniform(30, 120))
        while at >= raw_since:
            for probe in target.probe_names:
                offset = timedelta(seconds=rng.uniform(0, 20))
                r = _result(target.name, probe, at - offset, rng, median)
                if rng.random() < rate * 3:
                    r.fail(ErrorKind.timeout, "no first token within 15s")
                items.append((r, False))
            at -= timedelta(minutes=10)
    # anthropic-direct has been failing for the last 25 minutes; its detail is hostile HTML.
    for r, _ in items:
        if r.target == "anthropic-direct" and r.started_at > NOW - timedelta(minutes=25):
            r.ok, r.latency_ms, r.ttft_ms, r.tokens_per_s, r.error = False, None, None, None, None
            r.status = 529
            r.fail(ErrorKind.server_error, "HTTP 529 overloaded_error: <b>Overloaded</b>")
    store_results(engine, items)
    rollup_hours(engine, raw_since, floor_hour(NOW) - HOUR, now=NOW)
    first_raw_day = raw_since.date()
    for target in cfg.targets:
        rate, _, bad_days = PROFILES[target.name]
        for ago in range(1, 90):
            day = NOW.date() - timedelta(days=ago)
            if day >= first_raw_day or (target.name == "openrouter-gpt-4o" and ago > 75):
                continue  # raw rows cover it; the relay was added 75 days ago
            total = 288 * len(target.probe_names)
            bad = round(total * bad_days.get(ago, rate * rng.uniform(0, 1.5)))
            insert_day_rollup(engine, target.name, day, total=total, ok=total - bad)
    insert_incident(
        engine,
        "anthropic-direct",
        severity="page",
        opened_at=NOW - timedelta(minutes=22),
        detail="HTTP 529 overloaded_error",
    )
    insert_incident(
        engine,
        "openrouter-gpt-4o",
        severity="ticket",
        group="latency",
        opened_at=NOW - timedelta(hours=3, minutes=10),
        detail="p95 TTFT 2.9 s above 2 s over the last 20 probes",
    )


# --- a minimal DevTools protocol client -----------------------------------------------------


class DevTools:
    """Commands and events over one page target's websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._next_id = 0

    async def _receive(self) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.receive_json(), STEP_TIMEOUT_S)
        if "id" not in message:
            self.events.append(message)
        return message

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        call_id = self._next_id
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self._receive()
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def wait_for(self, method: str) -> dict[str, Any]:
        seen = len(self.events)
        for event in self.events[:seen]:
            if event["method"] == method:
                return event
        while True:
            message = await self._receive()
            if message.get("method") == method:
                return message

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def load(self, url: str) -> None:
        self.events.clear()
        await self.call("Page.navigate", url=url)
        await self.wait_for("Page.loadEventFired")

    def problems(self) -> list[str]:
        """Console calls, uncaught exceptions and browser log errors/warnings seen so far."""
        found: list[str] = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                texts = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
                found.append(f"console.{params['type']}: {' '.join(texts)}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                entry = params["entry"]
                found.append(f"log {entry['level']}: {entry['text']} {entry.get('url', '')}")
        return found


@contextlib.asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[DevTools]:
    binary = chromium_or_skip()
    profile = tmp_path / "chromium-profile"
    log_path = tmp_path / "chromium.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: the wrapper script and children
        )
    try:
        port = await _devtools_port(profile / "DevToolsActivePort", process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                pages = [t for t in await response.json() if t["type"] == "page"]
            assert pages, "chromium opened no page"
            async with session.ws_connect(
                pages[0]["webSocketDebuggerUrl"], max_msg_size=64 * 2**20
            ) as ws:
                tools = DevTools(ws)
                for domain in ("Page", "Runtime", "Log"):
                    await tools.call(f"{domain}.enable")
                yield tools
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_port(path: Path, process: asyncio.subprocess.Process) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP_TIMEOUT_S
    while loop.time() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"chromium exited with {process.returncode}")
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = await asyncio.to_thread(path.read_text)
            return int(text.splitlines()[0])
        await asyncio.sleep(0.05)
    raise TimeoutError("chromium did not open its DevTools port")


async def set_viewport(tools: DevTools, width: int, height: int, mobile: bool) -> None:
    await tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=height,
        deviceScaleFactor=2 if mobile else 1,
        mobile=mobile,
    )


async def full_page_png(tools: DevTools, width: int, mobile: bool = False) -> bytes:
    metrics = await tools.call("Page.getLayoutMetrics")
    height = int(metrics["cssContentSize"]["height"])
    await set_viewport(tools, width, height, mobile)
    shot = await tools.call("Page.captureScreenshot", format="png")
    return base64.b64decode(shot["data"])


# --- tests ----------------------------------------------------------------------------------


@pytest.fixture
async def served_page(sqlite_url: str) -> AsyncIterator[tuple[str, Config]]:
    cfg = parse(CONFIG)
    engine = make_engine(sqlite_url)
    await asyncio.to_thread(build_scenario, engine, cfg)
    server = WebServer(lambda: cfg, engine, Metrics(), lambda: (True, "ok"), clock=lambda: NOW)
    await server.start()
    try:
        yield server.url + "/", cfg
    finally:
        await server.stop()
        engine.dispose()


async def test_status_page_in_chromium(served_page: tuple[str, Config], tmp_path: Path) -> None:
    url, cfg = served_page
    names = [t.name for t in cfg.targets]
    async with chromium(tmp_path) as tools:
        await set_viewport(tools, 1200, 1600, mobile=False)
        await tools.load(url)
        shown = await tools.evaluate(
            "[...document.querySelectorAll('section.target h2')].map(e => e.textContent)"
        )
        assert shown == names
        text = await tools.evaluate("document.body.innerText")
        assert "1 of 4 targets failing" in text
        assert "<b>Overloaded</b>" in text  # shown as text, not markup
        assert await tools.evaluate("document.querySelectorAll('b').length") == 0
        bars = await tools.evaluate("document.querySelectorAll('.bars rect').length")
        assert bars == (90 + 25) * len(names)  # daily and hourly buckets, blank ones too
        png = await full_page_png(tools, 1200)
        assert png.startswith(b"\x89PNG")
        target = Path(os.environ.get("CHECKER_SCREENSHOT") or tmp_path / "status-page.png")
        await asyncio.to_thread(target.write_bytes, png)

        # A phone: one column, nothing wider than the screen.
        await set_viewport(tools, 390, 844, mobile=True)
        await tools.load(url)
        overflow = await tools.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow == 0
        columns = await tools.evaluate(
            "getComputedStyle(document.querySelector('.sparks')).gridTemplateColumns"
        )
        assert len(columns.split()) == 1
        assert tools.problems() == []


async def test_console_problems_are_seen(tmp_path: Path) -> None:
    """The harness itself: a page with a console error, an uncaught exception and a failed
    load must report all three (otherwise "no problems" above would prove nothing)."""
    app = web.Application()
    broken = (
        "<!doctype html><title>x</title><img src='/missing.png'>"
        "<script>console.error('boom'); throw new Error('uncaught');</script>"
    )

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=broken, content_type="text/html")

    app.router.add_get("/", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with chromium(tmp_path) as tools:
            await tools.load(f"http://127.0.0.1:{port}/")
            await asyncio.sleep(0.2)  # the failed image load is reported asynchronously
            await tools.evaluate("1")  # drain pending events
            problems = tools.problems()
    finally:
        await runner.cleanup()
    assert any(p.startswith("console.error: boom") for p in problems), problems
    assert any(p.startswith("exception:") for p in problems), problems
    assert any("missing.png" in p for p in problems), problems
