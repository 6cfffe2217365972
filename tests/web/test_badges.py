"""Latency, health and certificate badges over real HTTP: a WebServer on loopback, results
in a real database (SQLite and PostgreSQL), a real TLS server for the certificate."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine

from checker.alerting.certs import CertWatch
from checker.config.load import parse
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.db import make_engine
from checker.store.queries.status import status
from checker.web.metrics import Metrics
from checker.web.server import WebServer
from tests.alerting.test_certs import TlsServer, make_cert
from tests.fixtures_db import store_results
from tests.web.test_server import NOW, insert_incident, serving

CONFIG = """
targets:
  - {name: alpha, kind: openai, base_url: "http://127.0.0.1:9/v1", model: m,
     probes: [models, stream], slo: {latency: {latency_ms: 800}}}
  - {name: beta, kind: http, base_url: "http://127.0.0.1:9/"}
  - {name: quiet, kind: http, base_url: "http://127.0.0.1:9/"}
server: {listen: "127.0.0.1:0"}
"""


def result(target: str, probe: str, at: datetime, latency: float, ok: bool = True) -> ProbeResult:
    r = ProbeResult(target=target, probe=probe, started_at=at, ok=True, latency_ms=latency)
    return r if ok else r.fail(ErrorKind.timeout, "no answer")


async def test_latency_badge_is_the_primary_probes_median(db_engine: Engine) -> None:
    cfg = parse(CONFIG)
    at = [NOW - timedelta(minutes=5 * i) for i in range(1, 10)]
    # Streams take 100..900 ms; the models probe (many more, 10 ms) must not pull it down.
    items = [(result("alpha", "stream", t, 100.0 * (i + 1)), False) for i, t in enumerate(at)]
    items += [(result("alpha", "models", t - timedelta(seconds=s), 10.0), False)
              for t in at for s in (1, 2, 3)]  # fmt: skip
    store_results(db_engine, items)
    row = status(db_engine, ["alpha"], NOW, windows=("1h",), main_window="1h",
                 layout=cfg.probe_layout())[0]  # fmt: skip
    p50 = row.probes["stream"].latency_ms["p50"]
    assert p50 is not None and abs(p50 - 500) <= 10
    async with serving(db_engine, cfg) as client:
        svg = (await client.get("/badge/alpha/latency/1h.svg")).text
        empty = (await client.get("/badge/quiet/latency/24h.svg")).text
        bad = await client.get("/badge/alpha/latency/2h.svg")
    assert f"<title>latency 1h: p50 {p50:,.0f} ms of the stream probe, 9 results</title>" in svg
    assert f">{p50:,.0f} ms</text>" in svg and 'fill="#44cc11"' in svg  # within 800 ms
    assert "<title>latency 24h: no successful http result</title>" in empty
    assert bad.status_code == 404


async def test_health_badge_words_the_page_health(db_engine: Engine) -> None:
    cfg = parse(CONFIG)
    # alpha: newest stream failed, a page open -> down. beta: burning, newest ok -> degraded.
    items = [(result("alpha", "stream", NOW - timedelta(minutes=1), 0.0, ok=False), False)]
    for i in range(10):
        items.append(
            (result("beta", "http", NOW - timedelta(minutes=10 - i), 5.0, i % 2 == 1), False)
        )
    store_results(db_engine, items)
    insert_incident(db_engine, "alpha", severity="page", opened_at=NOW - timedelta(minutes=1))
    insert_incident(db_engine, "beta", severity="page", opened_at=NOW - timedelta(minutes=5),
                    group="burn_page")  # fmt: skip
    async with serving(db_engine, cfg) as client:
        found = {
            n: (await client.get(f"/badge/{n}/health.svg")).text for n in ("alpha", "beta", "quiet")
        }
        unknown = await client.get("/badge/nope/health.svg")
    assert "<title>health: down</title>" in found["alpha"] and 'fill="#e05d44"' in found["alpha"]
    assert "<title>health: degraded</title>" in found["beta"]
    assert "<title>health: no data</title>" in found["quiet"]
    assert unknown.status_code == 404


async def test_cert_badge_days_left_from_a_real_certificate(
    sqlite_url: str, tmp_path: Path
) -> None:
    cert = make_cert(tmp_path, 5)
    watch = CertWatch()
    with TlsServer(cert) as tls:
        tls_target = f'  - {{name: tls, kind: http, base_url: "{tls.url}", verify_tls: false}}\n'
        cfg = parse(CONFIG.replace("targets:\n", "targets:\n" + tls_target))
        assert await watch.refresh(cfg) == 1
    engine = make_engine(sqlite_url)  # no result needed: the badge reads the watch
    server = WebServer(lambda: cfg, engine, Metrics(), lambda: (True, "ok"),
                       cert_days_left=watch.days_left)  # fmt: skip
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            svg = (await client.get("/badge/tls/cert.svg")).text
            plain = await client.get("/badge/beta/cert.svg")
    finally:
        await server.stop()
        engine.dispose()
    left = watch.days_left("tls", datetime.now(UTC))
    assert left is not None and 4.9 < left < 5
    assert f"<title>certificate: {math.floor(left)} days</title>" in svg
    assert 'fill="#e05d44"' in svg  # within the cert rule's 14 days
    assert plain.status_code == 404  # plain http has no certificate
