"""Real notification receivers on loopback: a webhook for Apprise `json://` and an SMTP server.

Both run on their own event loop in their own thread, so they serve the service under test
in-process (sharing the test's loop would not matter), a `checker` subprocess, or a
synchronous CLI test alike. Each can be stopped and started again on the same port, to
play a receiver that is down when an alert fires.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.loop_thread import LoopThread

SMTP_USER = "alerts"
SMTP_PASSWORD = "smtp-PASSWORD-5f0c2b9e"  # a test secret that must never leak


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- webhook -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    path: str
    query: dict[str, str]
    raw: bytes
    payload: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class Webhook(LoopThread):
    """Collects every JSON POST; `url(path)` gives the Apprise json:// URL to reach it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.posts: list[Post] = []
        self.delay_s = 0.0  # answer this late (the POST counts as received at once)
        self._lock = threading.Lock()
        super().__init__()
        self._runner: web.AppRunner | None = None

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def received(self) -> list[Post]:
        with self._lock:
            return list(self.posts)

    def titles(self) -> list[str]:
        return [p.payload.get("title", "") for p in self.received()]

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        with self._lock:
            post = Post(request.path, dict(request.query), raw, payload, dict(request.headers))
            self.posts.append(post)
        await asyncio.sleep(self.delay_s)
        return web.json_response({"ok": True})

    async def _start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        # A short shutdown: a test may leave a request hanging (delay_s) at the end.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.start()
    try:
        yield hook
    finally:
        hook.close()


# --- SMTP --------------------------------------------------------------------------------------


@dataclass
class _Handler:
    box: SmtpInbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.box._add(envelope.content)
        return "250 OK"


@dataclass
class SmtpInbox:
    """A real SMTP server (aiosmtpd) that accepts plain or authenticated mail.

    With a login it insists on SMTP_USER / SMTP_PASSWORD over the plain connection, so a
    test can put a password into the channel URL and prove it was used but never shown.
    """

    port: int = field(default_factory=free_port)
    raw: list[bytes] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _add(self, content: bytes) -> None:
        with self._lock:
            self.raw.append(content)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == SMTP_USER
            and data.password.decode() == SMTP_PASSWORD
        )
        if ok:
            with self._lock:
                self.logins.append(mechanism)
        return AuthResult(success=ok)

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            raw = list(self.raw)
        return [email.message_from_bytes(r, policy=email.policy.default) for r in raw]  # type: ignore[misc]

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages()]

    def url(self, *, login: bool = False) -> str:
        """Apprise mailto:// URL for this server: no TLS (mode=insecure)."""
        who = f"{SMTP_USER}:{SMTP_PASSWORD}@" if login else ""
        return (
            f"mailto://{who}127.0.0.1:{self.port}"
            "?from=checker@example.com&to=ops@example.com&mode=insecure"
        )

    def start(self) -> None:
        if self._controller is not None:
            return
        controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpInbox]:
    box = SmtpInbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()


@pytest.fixture
def smtp_down() -> Iterator[SmtpInbox]:
    """An SMTP server that is not listening yet: call start() to bring it up."""
    box = SmtpInbox()
    try:
        yield box
    finally:
        box.stop()
