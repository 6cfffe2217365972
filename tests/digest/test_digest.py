"""The digest against a real database (SQLite and PostgreSQL) and a real SMTP server.

Numbers are checked three ways: against `queries.status` for the same period, against
counts made by hand from the generated results, and before and after rollups (raw rows
only, then a mix of rollups and raw rows), across DST change days and odd time zones.
"""

from __future__ import annotations

import asyncio
import email
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import Message
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from sqlalchemy.engine import Engine

from checker import render
from checker.cli.digest import digest_command
from checker.config.load import parse
from checker.config.schema import Config
from checker.cost.prices import PriceBook
from checker.digest import build as digest
from checker.digest import render as digest_render
from checker.digest import send as digest_send
from checker.digest.inputs import Usage
from checker.digest.models import DigestContext
from checker.digest.period import Period, last_hours, local_day
from checker.probes.base import ErrorKind, ProbeResult
from checker.store import digest_log
from checker.store.db import make_engine
from checker.store.models import IncidentRow
from checker.store.plan import hours_between
from checker.store.queries.status import status
from checker.store.rollup import rollup_hours
from tests.fixtures_db import generate_results, store_results

TARGETS = ("main-route", "relay-route")
SCRIPT = "<script>alert(1)</script>"


# --- a real SMTP server ----------------------------------------------------------------------


@dataclass
class Inbox:
    port: int
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def mailto(port: int) -> str:
    # A plain local SMTP server: no TLS (mode=insecure), no login.
    return f"mailto://127.0.0.1:{port}?from=checker@example.com&to=ops@example.com&mode=insecure"


# --- config and data -------------------------------------------------------------------------


def make_config(db_url: str, timezone: str = "Europe/Berlin", port: int | None = None) -> Config:
    notify = ""
    if port is not None:
        notify = f'notify:\n  - {{url: "{mailto(port)}", tags: [digest]}}\n'
    return parse(
        f"""
targets:
  - name: {TARGETS[0]}
    kind: openai
    base_url: https://api.openai.com/v1
    model: gpt-4o-mini
  - name: {TARGETS[1]}
    kind: openai
    base_url: https://relay.example.com/v1
    model: openai/gpt-4o-mini
    pricing: {{markup: 10%}}
    slo: {{availability: 99%, count_rate_limited: false}}
{notify}digest: {{at: "08:00", timezone: {timezone}, tags: [digest]}}
storage: {{url: "{db_url}"}}
"""
    )


def honest_and_padded_usage(items: list[tuple[ProbeResult, bool]]) -> None:
    """Give stream results a text length; every 10th reports three times the tokens."""
    for i, (r, _) in enumerate(items):
        if r.probe == "stream" and r.completion_tokens is not None:
            r.output_chars = 20
            r.completion_tokens = 60 if i % 10 == 0 else 19


def seed(engine: Engine, start: datetime, end: datetime, step_s: float = 600.0) -> list:
    items = generate_results(list(TARGETS), start, end, step_s=step_s)
    honest_and_padded_usage(items)
    store_results(engine, items)
    return items


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    yield e
    e.dispose()


@pytest.fixture(scope="module")
def prices() -> PriceBook:
    return PriceBook(make_config("sqlite://"))


# --- numbers ---------------------------------------------------------------------------------


def hand_counts(  # type: ignore[no-untyped-def]
    items: list, target: str, since: datetime, until: datetime, count_rl: bool, probe: str = ""
):
    """Counts of one target's results (of one probe, when given)."""
    valid = good = 0
    errors: dict[str, int] = {}
    cost = 0.0
    for r, maintenance in items:
        if r.target != target or not since <= r.started_at < until:
            continue
        if probe and r.probe != probe:
            continue
        if r.error is not None:
            errors[r.error.value] = errors.get(r.error.value, 0) + 1
        cost += r.cost_usd or 0.0
        if maintenance or (r.error is ErrorKind.rate_limited and not count_rl):
            continue
        valid += 1
        good += r.ok
    return valid, good, errors, cost


def figures_of(ctx: DigestContext) -> list[tuple]:
    return [
        (
            t.name,
            t.results,
            t.uptime,
            t.uptime_7d,
            t.uptime_30d,
            t.latency_p50,
            t.latency_p95,
            t.ttft_p50,
            t.ttft_p95,
            t.tokens_per_s_p50,
            t.errors,
            t.budget_remaining,
            t.burn_rate,
            round(t.spend_usd or 0.0, 12),
            round(t.month_to_date_usd or 0.0, 12),
            t.tokens.checked,
            t.tokens.mismatched,
            t.tokens.median_ratio_to_chars4,
            t.error_details,
            [(b.start, b.valid, b.good) for b in t.uptime_chart.bars],
            [(h.start, h.count, h.p50, h.p95) for h in t.ttft_chart.hours],
        )
        for t in ctx.targets
    ]


CASES = {
    # DST starts in Berlin: the local day has 23 hours.
    "berlin-spring": ("Europe/Berlin", date(2025, 3, 30)),
    # DST ends: 25 hours.
    "berlin-autumn": ("Europe/Berlin", date(2025, 10, 26)),
    # Half-hour offset: the day starts at 18:30 UTC, mid-hour.
    "kolkata": ("Asia/Kolkata", date(2025, 6, 3)),
    # The last 24 hours up to a moment that is not on the hour.
    "new-york-rolling": ("America/New_York", None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_digest_numbers_equal_status_for_the_same_period(
    case: str, db_url: str, engine: Engine, prices: PriceBook
) -> None:
    timezone, day = CASES[case]
    cfg = make_config(db_url, timezone)
    if day is not None:
        period = local_day(day, timezone)
    else:
        period = last_hours(datetime(2025, 11, 2, 14, 37, 12, tzinfo=UTC), timezone)
    items = seed(
        engine, period.since - timedelta(days=3), period.until + timedelta(hours=1), step_s=900.0
    )
    names = list(TARGETS)
    rate_limits = {t.name: cfg.slo(t).count_rate_limited for t in cfg.targets}

    def check(ctx: DigestContext) -> None:
        key = period.window_key
        expected = {
            s.target: s
            for s in status(
                engine,
                names,
                period.until,
                windows=(key, "7d", "30d"),
                main_window=key,
                count_rate_limited=rate_limits,
                layout=cfg.probe_layout(),
            )
        }
        html = digest_render.render_html(ctx)
        for t in ctx.targets:
            s = expected[t.name]
            assert t.results == s.results
            assert (t.uptime, t.uptime_7d, t.uptime_30d) == (
                s.uptime[key],
                s.uptime["7d"],
                s.uptime["30d"],
            )
            assert (t.latency_p50, t.latency_p95) == (s.latency_ms["p50"], s.latency_ms["p95"])
            assert (t.ttft_p50, t.ttft_p95) == (s.ttft_ms["p50"], s.ttft_ms["p95"])
            assert t.tokens_per_s_p50 == s.tokens_per_s_p50
            assert t.errors == s.errors
            # And by hand, from the generated results themselves.
            # The headline figures are the primary probe's; the SLO and spend count every probe.
            primary = cfg.targets[names.index(t.name)].primary
            valid, good, errors, _ = hand_counts(
                items, t.name, period.since, period.until, rate_limits[t.name], primary
            )
            assert t.uptime == good / valid
            assert t.errors == errors
            valid, good, _, cost = hand_counts(
                items, t.name, period.since, period.until, rate_limits[t.name]
            )
            assert t.burn_rate == pytest.approx((valid - good) / valid / (1 - t.objective))
            assert t.spend_usd == pytest.approx(cost, rel=1e-9)
            stream_ok = [
                r
                for r, _ in items
                if r.target == t.name
                and r.ok
                and r.output_chars is not None
                and period.since <= r.started_at < period.until
            ]
            assert t.tokens.checked == len(stream_ok)
            assert t.tokens.mismatched == sum(1 for r in stream_ok if r.completion_tokens == 60)
            assert t.tokens.mismatched > 0
            hours = len(list(hours_between(period.since, period.until)))
            assert len(t.uptime_chart.bars) == len(t.ttft_chart.hours) == hours
            assert f"{t.uptime * 100:.2f}%" in html

    before = digest.build_period(engine, cfg, period, prices=prices, now=period.until)
    check(before)
    assert period.hours in (23, 24, 25)
    # Roll up part of the data: windows are then answered from rollups and raw rows alike
    # (the period, the day before, and the 7d and 30d windows all straddle the edges).
    rollup_hours(engine, period.since - timedelta(hours=5), period.since + timedelta(hours=13))
    after = digest.build_period(engine, cfg, period, prices=prices, now=period.until)
    check(after)
    assert figures_of(after) == figures_of(before)


# --- sending ---------------------------------------------------------------------------------

NOW = datetime(2025, 3, 31, 6, 0, 30, tzinfo=UTC)  # 08:00:30 in Berlin, after the DST change


def seed_for_mail(engine: Engine) -> None:
    items = seed(engine, NOW - timedelta(hours=26), NOW, step_s=900.0)
    bad = ProbeResult(target=TARGETS[0], probe="stream", started_at=NOW - timedelta(hours=2))
    bad.fail(ErrorKind.bad_response, f"provider said {SCRIPT} <img src=http://evil.example/x.png>")
    store_results(engine, [(bad, False)])
    with engine.begin() as conn:
        conn.execute(
            sa.insert(IncidentRow.__table__),  # type: ignore[arg-type]
            [
                {
                    "target": TARGETS[1],
                    "rule_group": "down",
                    "severity": "page",
                    "rules": ["down"],
                    "state": "open",
                    "opened_at": NOW - timedelta(hours=1),
                    "details": {},
                }
            ],
        )
    assert items


class Tags(HTMLParser):
    """Every tag name, and every src/href/background attribute, of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.names.add(tag)
        self.refs += [v or "" for k, v in attrs if k in {"src", "href", "background", "srcset"}]


def parts(message: Message) -> dict[str, str]:
    out = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[part.get_content_type()] = payload.decode(part.get_content_charset() or "utf-8")
    return out


async def test_digest_email_arrives_with_html_and_text_and_no_external_refs(
    db_url: str, engine: Engine, inbox: Inbox, prices: PriceBook
) -> None:
    seed_for_mail(engine)
    cfg = make_config(db_url, port=inbox.port)
    ctx = await asyncio.to_thread(
        digest.build, engine, cfg, NOW - timedelta(hours=24), NOW, prices=prices, now=NOW
    )
    relay = next(t for t in ctx.targets if t.name == TARGETS[1])
    assert relay.breaching and "page incident open" in relay.reasons
    outcome = await digest_send.send_now(engine, cfg, ctx)
    assert list(outcome.values()) == ["delivered"]
    assert len(inbox.messages) == 1
    message = inbox.messages[0]
    assert message.get_content_type() == "multipart/alternative"
    assert "checker digest" in message["Subject"]
    bodies = parts(message)
    assert set(bodies) == {"text/plain", "text/html"}
    html, text = bodies["text/html"], bodies["text/plain"]
    assert ctx.verdict in html
    assert ctx.verdict in text
    # Provider text is escaped, never markup.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    # Nothing is fetched from anywhere: no src at all, no links out, no stylesheets.
    tags = Tags()
    tags.feed(html)
    assert "script" not in tags.names and "link" not in tags.names and "img" not in tags.names
    assert tags.refs == []
    assert "@import" not in html
    assert "url(" not in html
    # The CSS is inlined for mail clients that drop <style> blocks.
    assert 'style="' in html and "max-width: 640px" in html


async def test_chat_channels_get_the_markdown_summary(engine: Engine, db_url: str) -> None:
    seed_for_mail(engine)
    cfg = make_config(db_url)
    ctx = await asyncio.to_thread(digest.build, engine, cfg, NOW - timedelta(hours=24), NOW)
    chat = digest_render.render_chat(ctx)
    assert chat.splitlines()[1] == ctx.verdict
    assert f"**{TARGETS[1]}**" in chat and "page incident open" in chat
    text = digest_render.render_text(ctx)
    assert SCRIPT in text  # plain text is not HTML: shown as it is
    assert "BREACHING" in text


async def test_run_scheduled_sends_exactly_once_per_day(
    db_url: str, engine: Engine, inbox: Inbox, prices: PriceBook
) -> None:
    seed_for_mail(engine)
    cfg = make_config(db_url, port=inbox.port)
    assert await digest_send.run_scheduled(engine, cfg, NOW, prices=prices) is True
    assert (
        await digest_send.run_scheduled(engine, cfg, NOW + timedelta(hours=2), prices=prices)
        is False
    )
    # Two nodes (or a restart racing the timer) at the same moment: still one digest.
    raced = await asyncio.gather(
        digest_send.run_scheduled(engine, cfg, NOW + timedelta(minutes=1), prices=prices),
        digest_send.run_scheduled(engine, cfg, NOW + timedelta(minutes=1), prices=prices),
    )
    assert raced == [False, False]
    assert len(inbox.messages) == 1
    assert digest_log.day_status(engine, "2025-03-31") == "sent"
    # Before the next day's send time nothing goes; at it, the next digest does (it holds
    # the next day's results: a period without any is not sent, see tests/service).
    assert (
        await digest_send.run_scheduled(engine, cfg, NOW + timedelta(hours=23), prices=prices)
        is False
    )
    seed(engine, NOW, NOW + timedelta(hours=1), step_s=900.0)
    assert (
        await digest_send.run_scheduled(engine, cfg, NOW + timedelta(days=1), prices=prices) is True
    )
    assert len(inbox.messages) == 2


async def test_a_failed_digest_is_retried_the_same_day(
    db_url: str, engine: Engine, inbox: Inbox, prices: PriceBook
) -> None:
    seed_for_mail(engine)
    down = make_config(db_url, port=_free_port())  # nothing listens there
    assert await digest_send.run_scheduled(engine, down, NOW, prices=prices) is False
    assert digest_log.day_status(engine, "2025-03-31") == "failed"
    up = make_config(db_url, port=inbox.port)
    assert (
        await digest_send.run_scheduled(engine, up, NOW + timedelta(minutes=5), prices=prices)
        is True
    )
    assert digest_log.day_status(engine, "2025-03-31") == "sent"
    assert (
        await digest_send.run_scheduled(engine, up, NOW + timedelta(minutes=10), prices=prices)
        is False
    )
    assert len(inbox.messages) == 1


async def test_concurrent_first_runs_send_once(
    db_url: str, engine: Engine, inbox: Inbox, prices: PriceBook
) -> None:
    seed_for_mail(engine)
    cfg = make_config(db_url, port=inbox.port)
    results = await asyncio.gather(
        *(digest_send.run_scheduled(engine, cfg, NOW, prices=prices) for _ in range(3))
    )
    assert sorted(results) == [False, False, True]
    assert len(inbox.messages) == 1


# --- the CLI verb ----------------------------------------------------------------------------


def write_config(tmp_path: Path, db_url: str, port: int | None = None) -> Path:
    path = tmp_path / "checker.yaml"
    targets = "\n".join(
        f"  - {{name: {name}, kind: openai, base_url: 'https://api.openai.com/v1', "
        "model: gpt-4o-mini}"
        for name in TARGETS
    )
    notify = f'notify:\n  - {{url: "{mailto(port)}", tags: [digest]}}\n' if port else ""
    path.write_text(
        f"targets:\n{targets}\n{notify}digest: {{timezone: Europe/Berlin}}\n"
        f'storage: {{url: "{db_url}"}}\n'
    )
    return path


def test_digest_command_preview_and_errors(
    tmp_path: Path, db_url: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_for_mail(engine)
    config = write_config(tmp_path, db_url)
    out = tmp_path / "digest.html"
    assert digest_command(config, out, False, "2025-03-30") == 0
    html = out.read_text()
    assert "2025-03-30 (Europe/Berlin)" in html and "23h" in html
    text_out = tmp_path / "digest.txt"
    assert digest_command(config, text_out, False, None) == 0
    assert text_out.read_text().startswith("checker digest - 24 hours to ")
    capsys.readouterr()

    assert digest_command(config, out, False, "30.03.2025") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --date: expected a date like 2025-03-30 (got '30.03.2025')"]
    assert digest_command(config, None, False, None) == 2
    assert capsys.readouterr().err.startswith("error: nothing to do")
    assert digest_command(config, None, True, None) == 2
    assert "no notify channel is tagged digest" in capsys.readouterr().err
    assert digest_command(tmp_path / "missing.yaml", out, False, None) == 2
    assert "file not found" in capsys.readouterr().err


def test_digest_command_send(
    tmp_path: Path, db_url: str, engine: Engine, inbox: Inbox, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_for_mail(engine)
    config = write_config(tmp_path, db_url, inbox.port)
    assert digest_command(config, None, True, "2025-03-30") == 0
    assert capsys.readouterr().out.strip().endswith(": delivered")
    assert len(inbox.messages) == 1
    assert "2025-03-30 (Europe/Berlin)" in inbox.messages[0]["Subject"]


def test_period_value_object_is_what_build_uses(db_url: str, engine: Engine) -> None:
    cfg = make_config(db_url)
    ctx = digest.build(engine, cfg, NOW - timedelta(hours=24), NOW, now=NOW)
    assert isinstance(ctx.period, Period)
    assert ctx.period.hours == 24
    assert ctx.no_data == list(TARGETS)
    # Not one result in the period: the digest says so once, not per empty table.
    assert ctx.empty and ctx.verdict == "No data yet: no route has a result in this period."


def test_number_formats() -> None:
    assert render.fmt_usd(None) == "no price"
    assert render.fmt_usd(0.0) == "$0.00"
    assert render.fmt_usd(0.0000123) == "$0.0000123"
    assert render.fmt_usd(0.0439) == "$0.0439"
    assert render.fmt_usd(2.7) == "$2.70"
    assert render.fmt_usd(1234.5) == "$1,234"
    assert render.fmt_pct(0.99931) == "99.93%"
    assert render.fmt_ms(812.4) == "812 ms" and render.fmt_ms(12_500) == "12.50 s"
    assert render.sparkline([0.0, 0.5, 1.0, None]) == "\u2581\u2585\u2588."


def test_usage_samples_are_every_successful_result_once(db_engine: Engine) -> None:
    """Grouped in SQL (raw rows) or in the rollups: one count per stored result, either way."""
    minute = timedelta(minutes=1)
    t0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
    items = []
    for i in range(200):
        r = ProbeResult(target="a" if i % 3 else "b", probe="stream", started_at=t0 + i * minute)
        r.ok, r.status = i % 7 != 0, 200
        r.completion_tokens, r.reasoning_tokens = 10 + i % 2, (i % 4 == 0) * 3 or None
        r.output_chars, r.counted_tokens = 30 + i % 2, 10 if i % 5 else None
        items.append((r, False))
    store_results(db_engine, items)
    since, until = t0 + 30 * minute, t0 + 170 * minute  # partial hours at both ends

    def expected(name: str) -> Counter[Usage]:
        return Counter(
            Usage(r.completion_tokens, r.reasoning_tokens or 0, r.output_chars, r.counted_tokens)
            for r, _ in items
            if r.target == name and r.ok and since <= r.started_at < until
        )

    raw = digest.usage_samples(db_engine, ["a", "b", "c"], since, until)
    rollup_hours(db_engine, t0, t0 + 4 * timedelta(hours=1))
    mixed = digest.usage_samples(db_engine, ["a", "b", "c"], since, until)
    for name in ("a", "b", "c"):
        assert raw[name] == mixed[name] == expected(name)
    assert sum(raw["a"].values()) > 50
