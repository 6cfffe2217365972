"""The HTTP server over real loopback sockets, on SQLite and PostgreSQL (tests/fixtures_db).

Every request goes through httpx to a WebServer bound to 127.0.0.1:0; the data is
generated results written with the real writer's insert and rolled up with the real
rollups, plus whole-day rollup rows for the older part of the 90-day bars.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from checker.alerting.slo import WindowCounts, budget_remaining
from checker.config.load import parse
from checker.config.schema import Config
from checker.probes.base import ErrorKind, ProbeResult
from checker.store.db import make_engine
from checker.store.models import ProbeResultRow
from checker.store.plan import HOUR, floor_hour
from checker.store.queries.counts import window_counts
from checker.store.queries.page import daily_uptime, streak_since, streaks_since
from checker.store.queries.status import status
from checker.store.rollup import rollup_hours
from checker.store.tables import INCIDENTS, ROLLED, ROLLUPS
from checker.web.badges import badge_value
from checker.web.charts import sparkline
from checker.web.metrics import Metrics
from checker.web.server import WebServer, authorized, parse_listen
from checker.web.status_data import build_page
from checker.web.status_view import DAYS
from tests.fixtures_db import generate_results, store_results

NOW = datetime(2026, 6, 3, 9, 23, 41, 250000, tzinfo=UTC)
API_KEY = "sk-test-VERYSECRETKEY-1234567890"
PASSWORD = "hunter2-correct-horse-battery"
HOSTILE = f"<script>alert('x')</script> upstream said: key {API_KEY}"
TARGETS = ["alpha", "beta", "gamma"]
Items = list[tuple[ProbeResult, bool]]
RAW_TABLE = ProbeResultRow.__table__  # type: ignore[attr-defined]

CONFIG = f"""
targets:
  - name: alpha
    kind: openai
    base_url: http://127.0.0.1:9/v1
    api_key: {API_KEY}
    model: sim-model
    probes: [models, stream]
  - name: beta
    kind: openai
    base_url: http://127.0.0.1:9/v1
    model: sim-model
    slo: {{availability: 99.9%, window: 7d, count_rate_limited: false}}
  - name: gamma
    kind: http
    base_url: http://127.0.0.1:9/health
server:
  listen: "127.0.0.1:0"
"""
AUTH = f"""\
  basic_auth: {{username: ops, password: {PASSWORD}}}
"""


def config(auth: bool = False) -> Config:
    return parse(CONFIG + (AUTH if auth else ""))


# --- data -----------------------------------------------------------------------------------


def insert_day_rollup(
    engine: Engine,
    target: str,
    day: date,
    *,
    total: int,
    maintenance: int = 0,
    ok: int,
    rate_limited: int = 0,
    probe: str = "stream",
) -> None:
    """One whole UTC day's counts as a single rolled-up hour (noon)."""
    hour = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            ROLLUPS.insert(),
            {
                "hour": hour,
                "target": target,
                "probe": probe,
                "location": "",
                "total": total,
                "ok_count": ok,
                "maintenance_count": maintenance,
                "sli_ok_count": ok,
                "sli_rate_limited_count": rate_limited,
                "errors": {"server_error": total - ok} if total > ok else {},
            },
        )
        exists = conn.execute(sa.select(ROLLED.c.hour).where(ROLLED.c.hour == hour)).first()
        if exists is None:
            conn.execute(ROLLED.insert(), {"hour": hour, "rolled_at": hour, "raw_pruned": True})


def insert_incident(
    engine: Engine,
    target: str,
    *,
    severity: str,
    opened_at: datetime,
    resolved_at: datetime | None = None,
    detail: str | None = None,
    group: str = "down",
) -> None:
    with engine.begin() as conn:
        conn.execute(
            INCIDENTS.insert(),
            {
                "target": target,
                "rule_group": group,
                "severity": severity,
                "rules": [group],
                "state": "resolved" if resolved_at else "open",
                "opened_at": opened_at,
                "resolved_at": resolved_at,
                "details": {"detail": detail, "measurements": {}},
            },
        )


def failure(target: str, at: datetime, detail: str, probe: str = "http") -> ProbeResult:
    r = ProbeResult(target=target, probe=probe, started_at=at)
    r.status = 503
    return r.fail(ErrorKind.server_error, detail)


OLD_DAYS = {  # days ago -> (total, maintenance, ok, rate_limited), for the older bars
    5: (288, 0, 288, 0),
    6: (288, 12, 270, 4),
    9: (288, 0, 250, 30),
}


@pytest.fixture(scope="module")
def loaded(module_db_url: str) -> Iterator[tuple[Engine, Items]]:
    """Two days of generated results (rolled up but for the last three hours), older whole
    days as rollups, a hostile failure as gamma's newest result, and three incidents."""
    engine = make_engine(module_db_url)
    items = generate_results(TARGETS, NOW - timedelta(days=2), NOW, step_s=600)
    # Newest results: alpha and beta ok, gamma failed with a hostile detail.
    for target in ("alpha", "beta"):
        last = ProbeResult(
            target=target, probe="models", started_at=NOW - timedelta(milliseconds=2)
        )
        last.ok, last.latency_ms = True, 120.0
        items.append((last, False))
    items.append((failure("gamma", NOW - timedelta(milliseconds=1), HOSTILE), False))
    store_results(engine, items)
    rollup_hours(engine, NOW - timedelta(days=3), floor_hour(NOW) - 3 * HOUR, now=NOW)
    for target in TARGETS:
        for ago, (total, maint, ok, rl) in OLD_DAYS.items():
            day = (NOW - timedelta(days=ago)).date()
            insert_day_rollup(
                engine, target, day, total=total, maintenance=maint, ok=ok, rate_limited=rl
            )
    insert_incident(engine, "gamma", severity="page", opened_at=NOW - HOUR, detail=HOSTILE)
    insert_incident(engine, "alpha", severity="ticket", opened_at=NOW - 2 * HOUR, group="latency")
    insert_incident(
        engine, "beta", severity="page", opened_at=NOW - 5 * HOUR, resolved_at=NOW - 4 * HOUR
    )
    yield engine, items
    engine.dispose()


@contextlib.asynccontextmanager
async def serving(
    engine: Engine,
    cfg: Config,
    *,
    health: Callable[[], tuple[bool, str]] = lambda: (True, "ok"),
    metrics: Metrics | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    server = WebServer(lambda: cfg, engine, metrics or Metrics(), health, clock=lambda: NOW)
    await server.start()
    try:
        assert server.port > 0
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            yield client
    finally:
        await server.stop()


def brute_days(items: Items, cfg: Config) -> dict[tuple[str, date], tuple[int, int]]:
    """(valid, good) per target and UTC day, from the raw items and OLD_DAYS."""
    out: dict[tuple[str, date], list[int]] = defaultdict(lambda: [0, 0])
    for r, maintenance in items:
        counts_rl = cfg.slo(cfg.target(r.target)).count_rate_limited
        if maintenance or (r.error is ErrorKind.rate_limited and not counts_rl):
            continue
        cell = out[(r.target, r.started_at.date())]
        cell[0] += 1
        cell[1] += r.ok
    for target in TARGETS:
        counts_rl = cfg.slo(cfg.target(target)).count_rate_limited
        for ago, (total, maint, ok, rl) in OLD_DAYS.items():
            cell = out[(target, (NOW - timedelta(days=ago)).date())]
            cell[0] += total - maint - (0 if counts_rl else rl)
            cell[1] += ok
    return {k: (v[0], v[1]) for k, v in out.items()}


# --- /metrics and /healthz ------------------------------------------------------------------


async def test_metrics_are_valid_exposition(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded
    metrics = Metrics()
    ok = ProbeResult(target="alpha", probe="stream", ok=True, latency_ms=812.0, ttft_ms=240.0)
    metrics.observe(ok)
    metrics.observe(failure("gamma", NOW, "down"))
    async with serving(engine, config(), metrics=metrics) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name in ("checker_probe_results", "checker_probe_latency_seconds", "checker_probe_up"):
        assert name in families
    results = {
        (s.labels["target"], s.labels["result"]): s.value
        for s in families["checker_probe_results"].samples
        if s.name == "checker_probe_results_total"
    }
    assert results == {("alpha", "ok"): 1.0, ("gamma", "server_error"): 1.0}


async def test_healthz_reports_health_and_reason(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded
    state = {"healthy": True}

    def health() -> tuple[bool, str]:
        return (True, "ok") if state["healthy"] else (False, "scheduler is not running")

    async with serving(engine, config(), health=health) as client:
        assert (await client.get("/healthz")).text == "ok\n"
        state["healthy"] = False
        response = await client.get("/healthz")
        assert response.status_code == 503
        assert response.text == "scheduler is not running\n"


async def test_healthz_is_503_when_the_check_itself_fails(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded

    def broken() -> tuple[bool, str]:
        raise RuntimeError(f"boom {API_KEY}")

    async with serving(engine, config(), health=broken) as client:
        response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.text == "health check failed (RuntimeError)\n"


# --- the JSON API ---------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["24h", "7d"])
async def test_api_status_is_the_cli_json(loaded: tuple[Engine, Items], window: str) -> None:
    engine, _ = loaded
    cfg = config()
    expected = status(
        engine,
        [t.name for t in cfg.targets],
        NOW,
        main_window=window,
        count_rate_limited={t.name: cfg.slo(t).count_rate_limited for t in cfg.targets},
        layout=cfg.probe_layout(),
    )
    async with serving(engine, cfg) as client:
        response = await client.get("/api/status", params={"window": window})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    # The CLI's JSON, but the one stored secret (in gamma's detail) is masked.
    cli_json = json.dumps([r.to_json() for r in expected])
    assert API_KEY in cli_json
    assert response.json() == json.loads(cli_json.replace(API_KEY, "***"))
    assert [row["target"] for row in response.json()] == TARGETS
    assert response.json()[2]["last"]["detail"] == HOSTILE.replace(API_KEY, "***")


async def test_api_incidents_open_and_all(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded
    async with serving(engine, config()) as client:
        open_now = (await client.get("/api/incidents", params={"open": "1"})).json()
        everything = (await client.get("/api/incidents")).json()
        bad = await client.get("/api/incidents", params={"open": "maybe"})
    assert [(i["target"], i["severity"], i["state"]) for i in open_now] == [
        ("alpha", "ticket", "open"),
        ("gamma", "page", "open"),
    ]
    assert {i["target"] for i in everything} == {"alpha", "beta", "gamma"}
    assert next(i for i in everything if i["target"] == "beta")["resolved_at"] == (
        (NOW - 4 * HOUR).isoformat().replace("+00:00", "Z")
    )
    gamma = next(i for i in open_now if i["target"] == "gamma")
    assert gamma["detail"] == HOSTILE.replace(API_KEY, "***")
    assert bad.status_code == 400
    assert bad.json() == {"error": "open: expected 1 or 0"}


# --- the page -------------------------------------------------------------------------------


async def test_page_shows_targets_and_escapes_details(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded
    async with serving(engine, config()) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    for name in TARGETS:
        assert f'id="target-{name}"' in html
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert API_KEY not in html
    assert '<meta http-equiv="refresh" content="60">' in html
    assert "1 of 3 targets failing" in html  # gamma: open page incident, newest result failed
    assert html.count("<rect x=") >= 3 * DAYS  # one bar per day per target
    # Heartbeats: gamma's newest result is the failure, its error class in the tooltip.
    assert 'class="beat b-failed" title="2026-06-03 09:23:41 UTC · failed: server_error"' in html


async def test_large_answers_are_gzipped_for_clients_that_accept_it(
    loaded: tuple[Engine, Items],
) -> None:
    engine, _ = loaded
    async with serving(engine, config()) as client:
        plain = await client.get("/", headers={"Accept-Encoding": "identity"})
        packed = await client.get("/", headers={"Accept-Encoding": "gzip"})
        badge = await client.get("/badge/alpha/uptime/24h.svg", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.text == plain.text  # the same page, decoded
    wire = int(packed.headers["content-length"])
    assert wire * 4 < len(plain.content), (wire, len(plain.content))
    assert "content-encoding" not in badge.headers  # small: sent as it is


def test_page_data_matches_brute_force(loaded: tuple[Engine, Items]) -> None:
    engine, items = loaded
    cfg = config()
    page = build_page(engine, cfg, NOW)
    expected = brute_days(items, cfg)
    for t in page.targets:
        assert len(t.days) == DAYS
        assert t.days[-1].day == NOW.date()
        assert t.days[0].day == NOW.date() - timedelta(days=DAYS - 1)
        for d in t.days:
            assert (d.valid, d.good) == expected.get((t.name, d.day), (0, 0)), (t.name, d.day)
            assert d.uptime is None if d.valid == 0 else d.uptime == d.good / d.valid
        # The SLO budget over the target's own window.
        slo = cfg.slo(cfg.target(t.name))
        valid, bad = window_counts(
            engine, t.name, NOW - timedelta(seconds=slo.window), NOW, slo.count_rate_limited
        )
        assert (t.budget.valid, t.budget.bad) == (valid, bad)
        assert t.budget.remaining == budget_remaining(WindowCounts(valid, bad), slo.availability)
        assert len(t.latency.hours) == 25  # each hour start from 24h ago to now
    by_name = {t.name: t for t in page.targets}
    # beta: no open incident, its newest probe ok, but 8 % failures overspend a 99.9 % budget.
    assert by_name["beta"].budget.remaining is not None and by_name["beta"].budget.remaining < 0
    assert [t.health for t in page.targets] == ["degraded", "degraded", "down"]
    assert by_name["gamma"].state.ok is False
    assert by_name["gamma"].state.detail == HOSTILE.replace(API_KEY, "***")
    assert by_name["gamma"].ttft is None and by_name["alpha"].ttft is not None
    assert page.level == "down"


def test_daily_uptime_none_without_data(db_engine: Engine) -> None:
    days = daily_uptime(db_engine, ["quiet"], NOW, days=3)
    assert [d.uptime for d in days["quiet"]] == [None, None, None]
    assert [d.day for d in days["quiet"]] == [NOW.date() - timedelta(days=i) for i in (2, 1, 0)]


def test_streak_since_raw_and_through_rollups(db_engine: Engine) -> None:
    def ok(at: datetime) -> ProbeResult:
        return ProbeResult(target="t", probe="http", started_at=at, ok=True, latency_ms=5.0)

    start = NOW - timedelta(days=3)
    steps = [start + timedelta(minutes=10 * i) for i in range(6 * 24 * 3)]
    # Failures at steps 30-32 (two and a half days ago), then ok until the last two steps.
    items = [
        (failure("t", at, "x") if 30 <= i <= 32 or i >= len(steps) - 2 else ok(at), False)
        for i, at in enumerate(steps)
    ]
    # And "u", ok all along, to read both in one batch at the end.
    items += [(replace(ok(at), target="u"), False) for at in steps]
    store_results(db_engine, items)
    lookback = NOW - timedelta(days=90)
    with db_engine.connect() as conn:
        # Failing now: since the first of the two newest failures.
        assert streak_since(conn, "t", False, steps[-1], lookback) == steps[-2]
        # Ok as of step -3: since the first ok after the failures, found only through the
        # rollups (older than the raw lookback); none rolled up yet -> the first result.
        assert streak_since(conn, "t", True, steps[-3], lookback) == steps[0]
    rollup_hours(db_engine, start, NOW, now=NOW)
    with db_engine.connect() as conn:
        assert streak_since(conn, "t", True, steps[-3], lookback) == steps[33]
        # Failing at step 31: since the first failure, found in the raw rows.
        assert streak_since(conn, "t", False, steps[31], lookback) == steps[30]
    # The raw rows of those hours are gone: the rollup hour's end bounds the start.
    with db_engine.begin() as conn:
        conn.execute(sa.delete(RAW_TABLE).where(RAW_TABLE.c.started_at < steps[40]))
    with db_engine.connect() as conn:
        assert streak_since(conn, "t", True, steps[-3], lookback) == floor_hour(steps[32]) + HOUR
        # Both targets in one batch: the same answers as one by one.
        both = streaks_since(conn, {"t": (True, steps[-3]), "u": (True, steps[-1])}, lookback)
        assert both == {"t": floor_hour(steps[32]) + HOUR, "u": floor_hour(steps[0])}
        assert streak_since(conn, "u", True, steps[-1], lookback) == floor_hour(steps[0])


def test_sparkline_breaks_at_gaps_and_scales_from_zero() -> None:
    line = sparkline([10.0, None, 20.0, 40.0], ["a", "b", "c", "d"], width=30, height=44, pad=2)
    # A lone value is a tick one step wide (kept inside the chart), not a dot.
    assert line.path == "M0.0,32.0 L10.0,32.0 M20.0,22.0 L30.0,2.0"
    assert (line.latest, line.high) == (40.0, 40.0)
    assert [h.label for h in line.hours] == ["a", "b", "c", "d"]
    empty = sparkline([None, None], ["a", "b"])
    assert (empty.path, empty.latest, empty.high) == ("", None, None)


# --- badges ---------------------------------------------------------------------------------


@pytest.mark.parametrize("window", ["1h", "24h", "7d", "30d"])
async def test_badge_shows_uptime(loaded: tuple[Engine, Items], window: str) -> None:
    engine, _ = loaded
    cfg = config()
    span = {"1h": HOUR, "24h": 24 * HOUR, "7d": timedelta(days=7), "30d": timedelta(days=30)}
    valid, bad = window_counts(engine, "beta", NOW - span[window], NOW, False)
    async with serving(engine, cfg) as client:
        response = await client.get(f"/badge/beta/uptime/{window}.svg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/svg+xml; charset=utf-8"
    assert f"<title>uptime {window}: {badge_value((valid - bad) / valid)}</title>" in response.text


async def test_badge_unknown_target_or_window_is_404(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded
    async with serving(engine, config()) as client:
        for path in (
            "/badge/nope/uptime/24h.svg",
            "/badge/alpha/uptime/2h.svg",
            "/badge/alpha/uptime/24h.png",
            "/badge/%3Cscript%3E/uptime/24h.svg",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert "<script>" not in response.text


def test_badge_value_never_rounds_a_failure_up() -> None:
    assert badge_value(1.0) == "100%"
    assert badge_value(0.999996) == "99.999%"
    assert badge_value(0.95) == "95%"
    assert badge_value(None) == "no data"


# --- auth and bad input ---------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_basic_auth_guards_everything_but_healthz(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded
    paths = ["/", "/metrics", "/api/status", "/api/incidents?open=1", "/badge/alpha/uptime/1h.svg"]
    seen: list[httpx.Response] = []
    async with serving(engine, config(auth=True)) as client:
        for path in paths:
            for headers in ({}, basic("ops", "wrong"), basic("root", PASSWORD), basic("ops", "")):
                response = await client.get(path, headers=headers)
                seen.append(response)
                assert response.status_code == 401, (path, headers)
                assert response.headers["www-authenticate"].startswith('Basic realm="checker"')
            response = await client.get(path, headers=basic("ops", PASSWORD))
            seen.append(response)
            assert response.status_code == 200, path
        for headers in ({"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}):
            response = await client.get("/", headers=headers)
            seen.append(response)
            assert response.status_code == 401
        response = await client.get("/healthz")
        seen.append(response)
        assert response.status_code == 200
    for response in seen:
        assert PASSWORD not in response.text
        assert PASSWORD not in str(response.headers)
        assert API_KEY not in response.text


def test_authorized_parses_strictly() -> None:
    auth = config(auth=True).server.basic_auth  # type: ignore[union-attr]
    assert auth is not None
    good = basic("ops", PASSWORD)["Authorization"]
    assert authorized(good, auth)
    assert authorized(good.replace("Basic", "basic"), auth)
    for header in (None, "", "Basic", "Basic ====", "Basic " + "é" * 8, good + "x", "Digest x"):
        assert not authorized(header, auth), header


async def test_bad_input_gets_4xx_without_traceback(loaded: tuple[Engine, Items]) -> None:
    engine, _ = loaded
    async with serving(engine, config()) as client:
        for path, code in (
            ("/api/status?window=%3Cscript%3E", 400),
            ("/api/status?window=401d", 400),  # past the rollup retention
            ("/api/status?window=0s", 400),
            ("/api/incidents?open=%ff", 400),
            ("/nowhere", 404),
            ("/badge/alpha/uptime/", 404),
        ):
            response = await client.get(path)
            assert response.status_code == code, path
            assert "Traceback" not in response.text
            assert "<script>" not in response.text
        response = await client.post("/api/status")
        assert response.status_code == 405


async def test_database_away_is_503_not_a_traceback() -> None:
    away = make_engine("postgresql+psycopg://checker@127.0.0.1:9/none?connect_timeout=2")
    try:
        async with serving(away, config()) as client:
            for path in ("/", "/api/status", "/api/incidents", "/badge/alpha/uptime/1h.svg"):
                response = await client.get(path)
                assert response.status_code == 503, path
                assert response.text == "database unavailable\n"
    finally:
        away.dispose()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:0", ("::1", 0)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", [":80", "host:99999", "host"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError, match=r"server\.listen"):
        parse_listen(listen)
