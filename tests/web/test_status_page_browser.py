"""The status page in headless Chromium (Debian's `chromium`), driven over the DevTools
protocol through a small aiohttp websocket client.

Asserts the page loads with no console message, script exception or browser log error
(CSP violations, failed loads) and shows every target, at 1280 px and on a 390 px phone
with no horizontal scroll, and takes a full-page screenshot of each (to a temporary
directory; `python -m bench.screenshots` sets CHECKER_SCREENSHOTS=docs to keep them as
docs/status-page.png and docs/status-page-phone.png). Skipped when Chromium is missing,
except under CI=true, where it fails instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from checker.config.load import parse
from checker.config.schema import Config
from checker.store.db import make_engine
from checker.web.metrics import Metrics
from checker.web.server import WebServer
from tests.web.page_scenario import CONFIG, NOW, build_scenario

CHROMIUM = os.environ.get("CHECKER_CHROMIUM", "/usr/bin/chromium")
STEP_TIMEOUT_S = 15.0


def chromium_or_skip() -> str:
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {CHROMIUM} is missing: install Debian's chromium package")
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")


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


NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"


async def _keep(png: bytes, name: str, tmp_path: Path) -> None:
    """Write a screenshot: to CHECKER_SCREENSHOTS (bench.screenshots: docs/) or tmp."""
    assert png.startswith(b"\x89PNG")
    directory = Path(os.environ.get("CHECKER_SCREENSHOTS") or tmp_path)
    await asyncio.to_thread((directory / name).write_bytes, png)


async def test_status_page_in_chromium(served_page: tuple[str, Config], tmp_path: Path) -> None:
    url, cfg = served_page
    by_tag = ["production", "relays", "lab", None]
    names = [t.name for tag in by_tag for t in cfg.targets if (t.tags or [None])[0] == tag]
    async with chromium(tmp_path) as tools:
        await set_viewport(tools, 1280, 1600, mobile=False)
        await tools.load(url)
        shown = await tools.evaluate(
            "[...document.querySelectorAll('section.target h2')].map(e => e.textContent)"
        )
        assert shown == names  # grouped by tag, untagged last
        assert (
            await tools.evaluate("document.title") == "1 of 6 targets failing · Example AI platform"
        )
        text = await tools.evaluate("document.body.innerText")
        assert "<b>Overloaded</b>" in text  # shown as text, not markup
        assert await tools.evaluate("document.querySelectorAll('b').length") == 0
        for section in ("Routes to the same model", "Spend", "Incident history"):
            assert section in text
        bars = await tools.evaluate("document.querySelectorAll('.bars rect').length")
        assert bars == (90 + 25) * len(names)  # daily and hourly buckets, blank ones too
        beats = await tools.evaluate(
            "[...document.querySelectorAll('.beat[title]')].map(e => e.className)"
        )
        assert {"beat b-ok", "beat b-slow", "beat b-failed", "beat b-limited"} <= set(beats)
        assert await tools.evaluate(NO_SIDEWAYS_SCROLL)
        await _keep(await full_page_png(tools, 1280), "status-page.png", tmp_path)

        # A phone: one column, nothing wider than the screen.
        await set_viewport(tools, 390, 844, mobile=True)
        await tools.load(url)
        assert await tools.evaluate(NO_SIDEWAYS_SCROLL)
        columns = await tools.evaluate(
            "getComputedStyle(document.querySelector('.sparks')).gridTemplateColumns"
        )
        assert len(columns.split()) == 1
        await _keep(await full_page_png(tools, 390, mobile=True), "status-page-phone.png", tmp_path)
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
