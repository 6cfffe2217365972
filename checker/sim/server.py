"""Simulated OpenAI- and Anthropic-compatible endpoint with exact, scriptable behaviour.

A real aiohttp server on loopback. Tests, `make demo` and the benchmarks point probes at it
to get known latencies (TTFT, inter-token delay), known token counts and every fault a real
route can produce, so the checker's measurements and classifications can be verified
against ground truth (`SimServer.timings()`).

URL layout: `/v1/...` is route "default", `/<route>/v1/...` any other route. Each route
has a standing Behavior and an optional script queue consumed one Behavior per chat or
messages request. Control works from Python (`SimServer.set/script/stats`) and over HTTP
(`/_sim/...`) for a simulator running in another process.

This module holds the sockets, the lifecycle and the URL wiring; what a route does is in
behaviour.py, the wire shapes in dialects.py, the timed writing of one response in
exchange.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from checker.sim.behaviour import Behavior, plan_tokens, prompt_parts
from checker.sim.dialects import (
    OPENAI_STREAM_ERROR,
    AnthropicStream,
    ErrorShape,
    OpenAIStream,
    anthropic_error,
    anthropic_message,
    health_error,
    last_user_text,
    models_list,
    openai_completion,
    openai_error,
)
from checker.sim.exchange import (
    EXCHANGE_KEY,
    Exchange,
    prelude,
    received_credential,
    run_stream,
    send_body,
)
from checker.sim.routes import DEFAULT_ROUTE, ROUTE_PATTERN, Registry, Timing, check_route

__all__ = ["SHUTDOWN_TIMEOUT_S", "SimServer", "run_forever"]

SHUTDOWN_TIMEOUT_S = 0.5


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SimServer:
    """The simulator: many independent routes on one loopback port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> None:
        self.host = host
        self._requested_port = port
        self.api_key = api_key
        self._registry = Registry()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # lifecycle

    async def start(self) -> None:
        app = web.Application(middlewares=[self._keep_quiet_on_disconnect])
        self._add_routes(app)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self._requested_port)
        await site.start()
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            # A stalled or slow handler would otherwise hold shutdown for its whole delay.
            for task in list(self._handlers):
                task.cancel()
            await self._runner.cleanup()
            self._runner = None

    def start_in_thread(self) -> None:
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="checker-sim", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]

    def stop_thread(self) -> None:
        if self._thread is None or self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    # addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("SimServer is not started")
        return self._port

    @property
    def root_url(self) -> str:
        """Scheme, host and port without any path, e.g. for /health and /_sim."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, route: str = DEFAULT_ROUTE) -> str:
        check_route(route)
        prefix = "" if route == DEFAULT_ROUTE else f"/{route}"
        return f"{self.root_url}{prefix}/v1"

    # control (thread-safe)

    def set(self, route: str, behavior: Behavior | None = None, **fields: Any) -> None:
        """Replace the route's standing behaviour; `fields` override `behavior` (or defaults)."""
        check_route(route)
        base = behavior.to_dict() if behavior is not None else {}
        self._registry.set(route, Behavior.from_dict(base | fields))

    def script(self, route: str, behaviors: list[Behavior]) -> None:
        """Queue behaviours for the next chat/messages requests, one each, in order."""
        check_route(route)
        self._registry.script(route, list(behaviors))

    def stats(self, route: str | None = None) -> dict[str, Any]:
        return self._registry.stats(route)

    def timings(self, route: str | None = None) -> list[Timing]:
        return self._registry.timings(route)

    def reset_stats(self) -> None:
        self._registry.reset_stats()

    # HTTP wiring

    def _add_routes(self, app: web.Application) -> None:
        r = f"/{{route:{ROUTE_PATTERN}}}"
        for prefix in ("", r):
            app.router.add_get(f"{prefix}/v1/models", self._models)
            app.router.add_post(f"{prefix}/v1/chat/completions", self._chat)
            app.router.add_post(f"{prefix}/v1/messages", self._messages)
            app.router.add_get(f"{prefix}/health", self._health)
        app.router.add_get(f"/_sim/routes{r}", self._control_get)
        app.router.add_put(f"/_sim/routes{r}", self._control_put)
        app.router.add_post(f"/_sim/routes{r}/script", self._control_script)
        app.router.add_get("/_sim/stats", self._control_stats)
        app.router.add_delete("/_sim/stats", self._control_reset)

    @web.middleware
    async def _keep_quiet_on_disconnect(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        # A client that hangs up mid-response is normal here (huge, stall, probes'
        # limits); hand aiohttp the prepared response instead of logging a traceback.
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            return await handler(request)
        except ConnectionError:
            exchange = request.get(EXCHANGE_KEY)
            if exchange is not None and exchange.resp is not None:
                return exchange.resp
            return web.Response(status=499)
        finally:
            self._handlers.discard(task)

    def _authorized(self, request: web.Request, *, allow_x_api_key: bool) -> bool:
        if self.api_key is None:
            return True
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return True
        return allow_x_api_key and request.headers.get("x-api-key") == self.api_key

    async def _reject(self, ex: Exchange, shape: ErrorShape) -> web.StreamResponse:
        message = "Incorrect API key provided"
        credential = received_credential(ex.request)
        if self._registry.standing(ex.route).echo_auth:
            message = f"{message}: {credential or '(none)'}"
        return await ex.send_json(401, shape(401, message, "invalid_api_key"))

    async def _json_request(
        self, ex: Exchange, shape: ErrorShape
    ) -> dict[str, Any] | web.StreamResponse:
        """The request's JSON object, or the 400 already sent when it is not one."""
        try:
            body = await ex.request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            return body
        return await ex.send_json(400, shape(400, "request body must be a JSON object", None))

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    async def _models(self, request: web.Request) -> web.StreamResponse:
        ex = Exchange(self._registry, request, "models")
        if not self._authorized(request, allow_x_api_key=False):
            return await self._reject(ex, openai_error)
        b = self._registry.standing(ex.route)
        if (done := await prelude(ex, b, openai_error)) is not None:
            return done
        body = models_list([] if b.fault == "empty" else b.models)
        error = openai_error(500, "simulated error", None)
        return await send_body(ex, b, body, ready_at=ex.loop.time(), tokens=0, error_body=error)

    async def _health(self, request: web.Request) -> web.StreamResponse:
        ex = Exchange(self._registry, request, "health")
        b = self._registry.standing(ex.route)
        if (done := await prelude(ex, b, health_error)) is not None:
            return done
        body = {"status": "ok"}
        return await send_body(
            ex, b, body, ready_at=ex.loop.time(), tokens=0, error_body={"status": "error"}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        ex = Exchange(self._registry, request, "chat")
        if not self._authorized(request, allow_x_api_key=False):
            return await self._reject(ex, openai_error)
        payload = await self._json_request(ex, openai_error)
        if isinstance(payload, web.StreamResponse):
            return payload
        prompt = last_user_text(payload.get("messages"))
        b = self._for_prompt(ex, self._registry.next_for_chat(ex.route), prompt)
        ex.timing.asked = {
            k: payload[k] for k in ("max_tokens", "reasoning_effort", "temperature") if k in payload
        }
        if (done := await prelude(ex, b, openai_error)) is not None:
            return done
        plan = plan_tokens(b, prompt)
        model = b.model or str(payload.get("model") or "sim")
        ident = self._next_id("chatcmpl-sim-")
        if payload.get("stream"):
            options = payload.get("stream_options")
            asked = isinstance(options, dict) and bool(options.get("include_usage"))
            dialect = OpenAIStream(b, plan, ident, model, usage=b.usage and asked)
            return await run_stream(ex, b, plan, dialect)
        body = openai_completion(b, plan, ident, model)
        ready_at = ex.at(b.ttft_ms + max(plan.total - 1, 0) * b.inter_token_ms)
        return await send_body(
            ex, b, body, ready_at=ready_at, tokens=plan.total, error_body=OPENAI_STREAM_ERROR
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        ex = Exchange(self._registry, request, "messages")
        if not self._authorized(request, allow_x_api_key=True):
            return await self._reject(ex, anthropic_error)
        payload = await self._json_request(ex, anthropic_error)
        if isinstance(payload, web.StreamResponse):
            return payload
        prompt = last_user_text(payload.get("messages"))
        b = self._for_prompt(ex, self._registry.next_for_chat(ex.route), prompt)
        if (done := await prelude(ex, b, anthropic_error)) is not None:
            return done
        plan = plan_tokens(b, prompt)
        model = b.model or str(payload.get("model") or "sim")
        ident = self._next_id("msg_sim_")
        if payload.get("stream"):
            return await run_stream(ex, b, plan, AnthropicStream(b, plan, ident, model))
        body = anthropic_message(b, plan, ident, model)
        ready_at = ex.at(b.ttft_ms + max(plan.total - 1, 0) * b.inter_token_ms)
        error = anthropic_error(529, "simulated error", "overloaded_error")
        return await send_body(ex, b, body, ready_at=ready_at, tokens=plan.total, error_body=error)

    def _for_prompt(self, ex: Exchange, b: Behavior, prompt: str) -> Behavior:
        """The behaviour for this prompt: its prefill time and cache hit, when the route
        models them; the prompt's digest and token counts go into the request's Timing."""
        head, head_words, words = prompt_parts(prompt)
        if b.prefill_tokens_per_s is not None:
            prefill_ms = words / b.prefill_tokens_per_s * 1000
            b = dataclasses.replace(b, prompt_tokens=words, ttft_ms=b.ttft_ms + prefill_ms)
        if b.cache is not None:
            digest = hashlib.sha256(head.encode()).hexdigest()
            hit = self._registry.cache_lookup(ex.route, digest) and b.cache == "prefix"
            b = dataclasses.replace(
                b,
                prompt_tokens=max(b.prompt_tokens, words),
                cached_tokens=head_words if hit else 0,
            )
        ex.timing.prompt_sha = hashlib.sha256(prompt.encode()).hexdigest()[:16]
        ex.timing.prompt_tokens = b.prompt_tokens
        ex.timing.cached_tokens = b.cached_tokens
        return b

    # HTTP control

    async def _control_get(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        return web.json_response(self._registry.standing(route).to_dict())

    async def _control_put(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        try:
            behavior = Behavior.from_dict(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self._registry.set(route, behavior)
        return web.json_response(behavior.to_dict())

    async def _control_script(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        try:
            items = await request.json()
            if not isinstance(items, list):
                raise ValueError("script must be a JSON list of behavior objects")
            behaviors = [Behavior.from_dict(item) for item in items]
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self._registry.script(route, behaviors)
        return web.json_response({"queued": len(behaviors)})

    async def _control_stats(self, request: web.Request) -> web.Response:
        stats = {name: self._registry.stats(name) for name in self._registry.route_names()}
        return web.json_response(stats)

    async def _control_reset(self, request: web.Request) -> web.Response:
        self._registry.reset_stats()
        return web.json_response({"reset": True})


# --- command line -------------------------------------------------------------------------


async def _serve(host: str, port: int, api_key: str | None, behaviors: dict[str, Behavior]) -> None:
    server = SimServer(host, port, api_key)
    for route, behavior in behaviors.items():
        server.set(route, behavior)
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    print(f"checker sim listening on {server.url()}", flush=True)
    try:
        await stopping.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()


def run_forever(host: str, port: int, api_key: str | None, behaviors: dict[str, Behavior]) -> None:
    """Serve until SIGINT or SIGTERM, then stop cleanly (for `checker sim`)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port, api_key, behaviors))
