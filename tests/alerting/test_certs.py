"""Certificate expiry: the DER reader against the stdlib's decoder, real TLS servers on
loopback with freshly made self-signed certificates, and the `cert` rule in the service."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiohttp import web

from checker.alerting.certs import CertError, CertWatch, fetch_not_after, host_port, not_after
from checker.config.load import load, parse
from checker.service.wiring import Service
from checker.store.models import IncidentRow
from tests.fixtures_notify import Webhook, free_port
from tests.waiting import eventually


@dataclass(frozen=True)
class Cert:
    cert: Path
    key: Path

    def der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert.read_text())

    def stdlib_not_after(self) -> datetime:
        # The stdlib decodes a PEM file fully (a private helper, fine as a test oracle).
        decoded = ssl._ssl._test_decode_cert(str(self.cert))  # type: ignore[attr-defined]
        return datetime.fromtimestamp(ssl.cert_time_to_seconds(decoded["notAfter"]), UTC)


def make_cert(directory: Path, days: int, key: str = "ec") -> Cert:
    """A self-signed certificate for 127.0.0.1, valid from now for `days` days."""
    cert, private = directory / f"{key}-{days}.pem", directory / f"{key}-{days}.key"
    algorithm = (
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        if key == "ec"
        else ["-newkey", "rsa:2048"]
    )
    output = ["-keyout", str(private), "-out", str(cert), "-subj", "/CN=127.0.0.1"]
    subprocess.run(
        ["openssl", "req", "-x509", *algorithm, "-nodes", *output, "-days", str(days)],
        check=True,
        capture_output=True,
    )
    return Cert(cert, private)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cert]:
    directory = tmp_path_factory.mktemp("certs")
    return {
        "five_days": make_cert(directory, 5),
        # Past 2049 notAfter is a GeneralizedTime, not a UTCTime.
        "far": make_cert(directory, 10000),
        "rsa": make_cert(directory, 400, key="rsa"),
    }


async def _health(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


class TlsServer:
    """An HTTPS server on 127.0.0.1 (its own loop and thread) answering GET /health."""

    def __init__(self, cert: Cert) -> None:
        self.port = free_port()
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(cert.cert, cert.key)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/health"

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", _health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self._ctx).start()

    def __enter__(self) -> TlsServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@pytest.fixture
def tls_server(certs: dict[str, Cert]) -> Iterator[TlsServer]:
    with TlsServer(certs["five_days"]) as server:
        yield server


# --- the DER reader ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["five_days", "far", "rsa"])
def test_not_after_matches_the_stdlib_decoder(certs: dict[str, Cert], name: str) -> None:
    cert = certs[name]
    assert not_after(cert.der()) == cert.stdlib_not_after()


def test_five_days_and_generalized_time(certs: dict[str, Cert]) -> None:
    now = datetime.now(UTC)
    left = (not_after(certs["five_days"].der()) - now).total_seconds() / 86400
    assert 4.99 < left <= 5.0
    assert not_after(certs["far"].der()).year > 2050


@pytest.mark.parametrize(
    "der",
    [b"", b"\x30", b"\x02\x01\x00", b"\x30\x03\x02\x01\x00", b"\x30\x84\xff\xff\xff\xff"],
)
def test_garbage_is_a_cert_error(der: bytes) -> None:
    with pytest.raises(CertError):
        not_after(der)


def test_truncated_certificate_is_a_cert_error(certs: dict[str, Cert]) -> None:
    der = certs["five_days"].der()
    with pytest.raises(CertError):
        not_after(der[: len(der) // 3])


def test_host_and_port_of_https_targets_only() -> None:
    assert host_port("https://api.example.com/v1") == ("api.example.com", 443)
    assert host_port("https://127.0.0.1:8443/v1") == ("127.0.0.1", 8443)
    assert host_port("HTTPS://[::1]:9/v1") == ("::1", 9)
    assert host_port("http://api.example.com/v1") is None


# --- over a real TLS connection ----------------------------------------------------------------


async def test_reads_an_untrusted_certificate_from_a_server(
    tls_server: TlsServer, certs: dict[str, Cert]
) -> None:
    expiry = await fetch_not_after("127.0.0.1", tls_server.port, 5.0)
    assert expiry == certs["five_days"].stdlib_not_after()


async def test_no_tls_server_is_an_os_error() -> None:
    with pytest.raises(OSError):
        await fetch_not_after("127.0.0.1", free_port(), 2.0)


def config_for(url: str, db: str = "sqlite:///unused.db", cert_days: str = "14") -> str:
    return f"""
targets:
  - name: tls-route
    kind: http
    base_url: {url}
    verify_tls: false
    interval: 500ms
    timeout: 2s
  - name: plain-route
    kind: http
    base_url: http://127.0.0.1:{free_port()}/health
defaults:
  alerts: {{cert_days: {cert_days}, budget_below: null, burn: false}}
storage: {{url: "{db}", flush_every: 200ms}}
scheduler: {{evaluate_every: 300ms}}
"""


async def test_cert_watch_keeps_the_last_reading_and_forgets_removed_targets(
    certs: dict[str, Cert],
) -> None:
    watch = CertWatch()
    with TlsServer(certs["five_days"]) as server:
        cfg = parse(config_for(server.url))
        assert await watch.refresh(cfg) == 1
        assert set(watch.expiry) == {"tls-route"}  # plain http has no certificate
        left = watch.days_left("tls-route")
        assert left is not None and 4.99 < left <= 5.0
        later = watch.days_left("tls-route", datetime.now(UTC) + timedelta(days=2))
        assert later is not None and 2.99 < later <= 3.0
    # The server is gone: the last reading stays (reachability is the down rule's job).
    assert await watch.refresh(cfg) == 0
    assert watch.days_left("tls-route") == pytest.approx(left, abs=0.01)
    assert watch.days_left("plain-route") is None
    # The target moved to another host: the old certificate is forgotten.
    moved = config_for(f"https://localhost:{server.port}/health")
    assert await watch.refresh(parse(moved)) == 0
    assert watch.days_left("tls-route") is None
    assert await watch.refresh(cfg) == 0
    with TlsServer(certs["five_days"]) as again:
        assert await watch.refresh(parse(config_for(again.url))) == 1
    # The rule switched off: nothing is watched any more.
    assert await watch.refresh(parse(config_for(server.url, cert_days="null"))) == 0
    assert watch.expiry == {}


# --- the cert rule in the running service ------------------------------------------------------


async def test_an_expiring_certificate_opens_one_cert_ticket(
    tls_server: TlsServer, webhook: Webhook, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'checker.db'}"
    channel = f'notify:\n  - {{url: "{webhook.url("tickets")}", tags: [ticket]}}\n'
    config = tmp_path / "checker.yaml"
    # First the target points where no TLS server listens: no certificate, no ticket.
    config.write_text(config_for(f"https://127.0.0.1:{free_port()}/health", db) + channel)
    service = Service(config, load(config))
    await service.start()
    try:
        await eventually(lambda: service.judging.evaluator.rounds >= 2)
        assert webhook.received() == [] and service.certs.expiry == {}
        # A reload that moves it to the server reads the certificate at once.
        config.write_text(config_for(tls_server.url, db) + channel)
        assert await service.reload() is True
        await eventually(lambda: len(webhook.received()) >= 1, within=15)
        await asyncio.sleep(1.0)  # more evaluation rounds: still one ticket
    finally:
        await service.stop()
    [post] = webhook.received()
    assert post.payload["title"] == "[FIRING TICKET] tls-route: cert"
    assert post.payload["type"] == "warning"
    assert "cert days left 5 days (threshold <= 14 days)" in post.payload["message"]
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(IncidentRow.__table__)).mappings().all()
    finally:
        engine.dispose()
    assert [(r["target"], r["rule_group"], r["severity"], r["state"]) for r in rows] == [
        ("tls-route", "cert", "ticket", "open")
    ]
