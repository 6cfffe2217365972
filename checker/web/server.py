"""The HTTP server: /metrics, /healthz, the status page, the JSON API and badges (uptime,
latency, health, certificate expiry).

Runs on the service's event loop (aiohttp), so every database read and every page render
goes through asyncio.to_thread: probes in flight must never absorb a slow query. The config
is read per request through `cfg_getter`, so a reload (new targets, new basic-auth
password) applies without restarting the server; only `listen` needs a restart.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.engine import Engine

from checker.alerting.certs import host_port
from checker.compare.build import DEFAULT_PROBE, compare_routes
from checker.compare.view import CompareView
from checker.config.schema import BasicAuth, Config, Target
from checker.redact import Redactor
from checker.render import env
from checker.units import parse_window
from checker.web import status_data
from checker.web.badges import (
    BADGE_WINDOWS,
    badge_health,
    badge_latency,
    badge_svg,
    badge_uptime,
    cert_badge,
    health_badge,
    latency_badge,
)
from checker.web.charts import pct
from checker.web.metrics import Metrics
from checker.web.status_view import redact_tree

__all__ = [
    "OPEN_PATHS",
    "PAGE_CSP",
    "HealthCheck",
    "WebServer",
    "authorized",
    "human_span",
    "parse_listen",
]

log = logging.getLogger("checker.web")

HealthCheck = Callable[[], tuple[bool, str]]
# Days until a target's certificate expires, as of a time (alerting.certs.CertWatch).
CertDaysLeft = Callable[[str, datetime], float | None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HEALTH_TIMEOUT_S = 5.0
REFRESH_S = 60
OPEN_PATHS = frozenset({"/healthz"})
# The page needs nothing but its own inline CSS and data: URIs; anything else is a bug
# (or an injection), and the browser refuses it.
PAGE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_TRUE = frozenset({"1", "true", "yes"})
_FALSE = frozenset({"", "0", "false", "no"})


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` (IPv6 hosts in brackets, `[::1]:9464`) -> (host, port); port 0 allowed."""
    host, sep, port_text = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"server.listen: expected host:port (got {listen!r})")
    return host, int(port_text)


def authorized(header: str | None, auth: BasicAuth) -> bool:
    """Whether an Authorization header carries these basic-auth credentials.

    Both parts are compared in constant time, and both always, so timing tells nothing
    about which part was wrong or how much of it matched.
    """
    if not header:
        return False
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    if not sep:
        return False
    user_ok = hmac.compare_digest(user, auth.username.encode())
    password_ok = hmac.compare_digest(password, auth.password.get_secret_value().encode())
    return user_ok & password_ok


def human_span(seconds: float) -> str:
    """How long something has lasted, coarsely: 45s, 12m, 3h05m, 41h, 12 days."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours, minutes = divmod(seconds // 60, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if hours < 10 else f"{hours}h"
    return f"{hours // 24} days"


# --- the server -----------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


# Below this a response goes as it is: compressing a badge costs more than it saves.
COMPRESS_OVER_BYTES = 8192


@web.middleware
async def _compress(request: web.Request, handler: Handler) -> web.StreamResponse:
    """gzip for clients that accept it: the page at 200 targets is ~7 MB of HTML (60
    heartbeat bars per probe, each with its tooltip) and shrinks about 20-fold; aiohttp
    compresses a body this large in a thread, off the loop the probes run on."""
    response = await handler(request)
    body = getattr(response, "body", None)
    if (
        isinstance(response, web.Response)
        and isinstance(body, bytes)
        and len(body) > COMPRESS_OVER_BYTES
        and "gzip" in request.headers.get("Accept-Encoding", "")
    ):
        response.enable_compression(web.ContentCoding.gzip)
    return response


class WebServer:
    def __init__(
        self,
        cfg_getter: Callable[[], Config],
        engine: Engine,
        metrics: Metrics,
        health: HealthCheck,
        *,
        clock: Callable[[], datetime] = _utcnow,
        cert_days_left: CertDaysLeft | None = None,
    ) -> None:
        self._cfg = cfg_getter
        self._engine = engine
        self._metrics = metrics
        self._health = health
        self._clock = clock
        self._cert_days_left = cert_days_left
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        cfg = self._cfg()
        listen = cfg.server.listen if cfg.server else "127.0.0.1:9464"
        host, port = parse_listen(listen)
        app = web.Application(middlewares=[self._errors, self._auth, _compress])
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/", self._status_page)
        app.router.add_get("/api/status", self._api_status)
        app.router.add_get("/compare", self._compare_page)
        app.router.add_get("/api/compare", self._api_compare)
        app.router.add_get("/api/incidents", self._api_incidents)
        app.router.add_get("/badge/{target}/uptime/{window}.svg", self._badge)
        app.router.add_get("/badge/{target}/latency/{window}.svg", self._latency_badge)
        app.router.add_get("/badge/{target}/health.svg", self._health_badge)
        app.router.add_get("/badge/{target}/cert.svg", self._cert_badge)
        app.on_response_prepare.append(_security_headers)
        # No access log: one line per scrape or page view is noise at info level.
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.host, self.port = host, int(runner.addresses[0][1])
        log.info("http server listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # --- middlewares --------------------------------------------------------------------

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """No traceback ever reaches a client; the log gets the (redacted) cause."""
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except sa.exc.SQLAlchemyError as exc:
            log.warning("%s: database error %s", request.path, type(exc).__name__)
            return web.Response(status=503, text="database unavailable\n")
        except Exception:
            log.exception("%s: internal error", request.path)
            return web.Response(status=500, text="internal error\n")

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        server = self._cfg().server
        auth = server.basic_auth if server else None
        if auth is None or request.path in OPEN_PATHS:
            return await handler(request)
        if authorized(request.headers.get("Authorization"), auth):
            return await handler(request)
        return web.Response(
            status=401,
            text="authentication required\n",
            headers={"WWW-Authenticate": 'Basic realm="checker", charset="UTF-8"'},
        )

    # --- handlers -----------------------------------------------------------------------

    async def _metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(
            # In a thread: at 500 targets one exposition is ~2 MB of text and took a second
            # of CPU, which on the loop delayed every probe due meanwhile.
            body=await asyncio.to_thread(self._metrics.render),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    async def _healthz(self, request: web.Request) -> web.Response:
        try:
            healthy, reason = await asyncio.wait_for(
                asyncio.to_thread(self._health), HEALTH_TIMEOUT_S
            )
        except TimeoutError:
            healthy, reason = False, "health check timed out"
        except Exception as exc:
            healthy, reason = False, f"health check failed ({type(exc).__name__})"
        if healthy:
            return web.Response(text="ok\n")
        reason = Redactor(self._cfg().secrets()).text(reason) or "unhealthy"
        return web.Response(status=503, text=reason.rstrip("\n") + "\n")

    async def _status_page(self, request: web.Request) -> web.Response:
        html = await asyncio.to_thread(self._render_page, self._cfg(), self._clock())
        return web.Response(text=html, content_type="text/html")

    def _render_page(self, cfg: Config, now: datetime) -> str:
        page = status_data.build_page(self._engine, cfg, now)
        template = env().get_template("status.html.j2")
        return template.render(
            page=page,
            refresh_s=REFRESH_S,
            public_url=_public_url(cfg),
            span=human_span,
            pct=pct,
        )

    async def _api_status(self, request: web.Request) -> web.Response:
        window = request.query.get("window", "24h")
        cfg = self._cfg()
        try:
            parse_window(window, cfg.storage.rollup_retention)
        except ValueError as exc:
            return _json_error(400, f"window: {exc}")
        rows = await asyncio.to_thread(
            status_data.api_status, self._engine, cfg, self._clock(), window
        )
        return _json(rows)

    def _compare_view(self, request: web.Request) -> CompareView | web.Response:
        """The comparison the query asks for, or a 400 naming the bad parameter."""
        cfg = self._cfg()
        window = request.query.get("window", "24h")
        probe = request.query.get("probe", DEFAULT_PROBE)
        model = request.query.get("model") or None
        try:
            parse_window(window, cfg.storage.rollup_retention)
        except ValueError as exc:
            return _json_error(400, f"window: {exc}")
        if probe not in {p for t in cfg.targets for p in t.probe_names}:
            return _json_error(400, "probe: expected a probe some target runs")
        return compare_routes(self._engine, cfg, self._clock(), window, probe, model)

    async def _api_compare(self, request: web.Request) -> web.Response:
        view = await asyncio.to_thread(self._compare_view, request)
        if isinstance(view, web.Response):
            return view
        return _json(redact_tree(view.to_json(), Redactor(self._cfg().secrets())))

    async def _compare_page(self, request: web.Request) -> web.Response:
        view = await asyncio.to_thread(self._compare_view, request)
        if isinstance(view, web.Response):
            return view
        html = env().get_template("compare.html.j2").render(view=view, generated_at=self._clock())
        return web.Response(text=html, content_type="text/html")

    async def _api_incidents(self, request: web.Request) -> web.Response:
        flag = request.query.get("open", "").strip().lower()
        if flag not in _TRUE | _FALSE:
            return _json_error(400, "open: expected 1 or 0")
        redactor = Redactor(self._cfg().secrets())
        found = await asyncio.to_thread(
            status_data.incidents, self._engine, redactor, open_only=flag in _TRUE
        )
        return _json([i.to_json() for i in found])

    def _badge_target(self, request: web.Request) -> tuple[Config, Target, str]:
        """The config, the target and the window the badge's path names, or a 404."""
        cfg = self._cfg()
        try:
            target = cfg.target(request.match_info["target"])
        except KeyError:
            raise web.HTTPNotFound(text="unknown target\n") from None
        window = request.match_info.get("window", "")
        if "window" in request.match_info and window not in BADGE_WINDOWS:
            raise web.HTTPNotFound(text="unknown window\n")
        return cfg, target, window

    async def _badge(self, request: web.Request) -> web.Response:
        cfg, target, window = self._badge_target(request)
        uptime = await asyncio.to_thread(
            badge_uptime, self._engine, cfg, target, window, self._clock()
        )
        return _svg(badge_svg(window, uptime))

    async def _latency_badge(self, request: web.Request) -> web.Response:
        cfg, target, window = self._badge_target(request)
        found = await asyncio.to_thread(
            badge_latency, self._engine, cfg, target, window, self._clock()
        )
        return _svg(latency_badge(cfg, target, window, found))

    async def _health_badge(self, request: web.Request) -> web.Response:
        cfg, target, _ = self._badge_target(request)
        state = await asyncio.to_thread(badge_health, self._engine, cfg, target, self._clock())
        return _svg(health_badge(state))

    async def _cert_badge(self, request: web.Request) -> web.Response:
        cfg, target, _ = self._badge_target(request)
        if host_port(target.base_url) is None:
            raise web.HTTPNotFound(text="not an https target\n")
        days = self._cert_days_left(target.name, self._clock()) if self._cert_days_left else None
        return _svg(cert_badge(days, cfg.alerts(target).cert_days))


def _svg(text: str) -> web.Response:
    return web.Response(text=text, content_type="image/svg+xml")


def _public_url(cfg: Config) -> str | None:
    return cfg.server.public_url if cfg.server else None


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data, separators=(",", ":")),
        content_type="application/json",
    )


def _json_error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Content-Security-Policy", PAGE_CSP)
