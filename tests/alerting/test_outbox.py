"""The outbox and its delivery through Apprise, against real receivers over loopback.

Receivers: a webhook for Apprise `json://` and an SMTP server (tests/fixtures_notify.py).
Outbox tests run on SQLite and PostgreSQL (`db_url`).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from checker.alerting import deliver
from checker.alerting import outbox as notify
from checker.alerting.channels import Channel, channel_id, load_channels, route
from checker.alerting.deliver import Deliverer
from checker.alerting.outbox import Message, enqueue
from checker.config.load import ConfigError, parse
from checker.config.schema import Config
from checker.redact import Redactor
from checker.store.models import OutboxRow
from tests.fixtures_notify import SMTP_PASSWORD, SmtpInbox, Webhook, free_port
from tests.waiting import eventually

OUTBOX = OutboxRow.__table__
HOOK_TOKEN = "hook-TOKEN-9a7c1e55d0"


def make_config(db_url: str, *channels: tuple[str, list[str]]) -> Config:
    notify_yaml = "".join(f'  - {{url: "{url}", tags: {tags}}}\n' for url, tags in channels)
    return parse(
        "targets:\n"
        "  - {name: main-route, kind: http, base_url: 'http://127.0.0.1:9/health'}\n"
        f"notify:\n{notify_yaml}"
        f'storage: {{url: "{db_url}"}}\n'
    )


def message(key: str, title: str = "[FIRING PAGE] main-route: down") -> Message:
    return Message(
        dedup_key=key,
        kind="alert",
        notify_type="failure",
        title=title,
        body_markdown=f"**main-route** is failing ({key}).\n",
        body_html=f"<p><strong>main-route</strong> is failing ({key}).</p>",
        tags=("page",),
    )


def queue(engine: Engine, channels: list[Channel], *keys: str) -> int:
    with engine.begin() as conn:
        return sum(enqueue(conn, message(k), channels) for k in keys)


def outbox(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(OUTBOX).order_by(OUTBOX.c.id)).mappings()]


def deliverer(engine: Engine, cfg: Config, **kwargs: float) -> Deliverer:
    channels = load_channels(cfg)
    redactor = Redactor(cfg.secrets())
    return Deliverer(engine, lambda: channels, lambda: redactor, **kwargs)


# --- channels and routing ----------------------------------------------------------------------


def test_routing_by_tag_untagged_channels_get_alerts_but_not_digests() -> None:
    page = Channel("a", "json://x/a", frozenset({"page"}))
    ticket = Channel("b", "json://x/b", frozenset({"ticket", "digest"}))
    everything = Channel("c", "json://x/c", frozenset())
    channels = [page, ticket, everything]
    assert route(channels, ["page"], "alert") == [page, everything]
    assert route(channels, ["ticket"], "alert") == [ticket, everything]
    assert route(channels, ["page", "ticket"], "alert") == channels
    assert route(channels, ["digest"], "digest") == [ticket]
    assert route(channels, ["other"], "alert") == [everything]


def test_channels_from_notify_and_an_apprise_config_file(tmp_path: Path, webhook: Webhook) -> None:
    yaml_file = tmp_path / "apprise.yml"
    yaml_file.write_text(
        f"urls:\n  - {webhook.url('from-yaml')}:\n      - tag: ticket, ops\n"
        f"  - {webhook.url('untagged')}\n"
    )
    cfg = parse(
        "targets:\n"
        "  - {name: main-route, kind: http, base_url: 'http://127.0.0.1:9/health'}\n"
        f'notify:\n  - {{url: "{webhook.url("direct")}", tags: [page]}}\n'
        f"apprise_config: {yaml_file}\n"
    )
    channels = load_channels(cfg)
    tags = {c.url.split("/")[-1].split("?")[0]: c.tags for c in channels}
    assert tags == {
        "direct": frozenset({"page"}),
        "from-yaml": frozenset({"ticket", "ops"}),
        "untagged": frozenset(),
    }
    assert len({c.id for c in channels}) == 3
    assert all(c.id == channel_id(c.url) and c.id not in c.url for c in channels)
    # A TEXT config file works the same way.
    text_file = tmp_path / "apprise.txt"
    text_file.write_text(f"ticket={webhook.url('from-text')}\n")
    cfg_text = cfg.model_copy(update={"notify": [], "apprise_config": str(text_file)})
    [only] = load_channels(cfg_text)
    assert only.tags == frozenset({"ticket"}) and "from-text" in only.url


def test_an_unreadable_apprise_config_is_a_clear_error(tmp_path: Path) -> None:
    text = (
        "targets:\n"
        "  - {name: main-route, kind: http, base_url: 'http://127.0.0.1:9/health'}\n"
        f"apprise_config: {tmp_path / 'missing.yml'}\n"
    )
    # Caught when the config is loaded (validate, run, reload), naming the line and field.
    with pytest.raises(ConfigError) as info:
        parse(text, "c.yaml")
    assert info.value.problems == [
        f"c.yaml:3: apprise_config: cannot read the Apprise config file "
        f"'{tmp_path / 'missing.yml'}'"
    ]
    # And by load_channels, should the file vanish after the config was loaded.
    (tmp_path / "missing.yml").write_text("urls:\n  - json://127.0.0.1:9/x\n")
    cfg = parse(text)
    (tmp_path / "missing.yml").unlink()
    with pytest.raises(ValueError, match="apprise_config: cannot read"):
        load_channels(cfg)


# --- the outbox --------------------------------------------------------------------------------


def test_enqueue_is_idempotent_and_rows_hold_no_channel_url(
    db_url: str, db_engine: Engine, webhook: Webhook, smtp: SmtpInbox
) -> None:
    hook_url = webhook.url(f"hook/{HOOK_TOKEN}")
    cfg = make_config(db_url, (hook_url, ["page"]), (smtp.url(login=True), ["page"]))
    channels = load_channels(cfg)
    assert queue(db_engine, channels, "main-route:page:1:opened:0") == 2
    # The same notice again (a second evaluation, a second node): nothing new.
    assert queue(db_engine, channels, "main-route:page:1:opened:0") == 0
    assert queue(db_engine, channels, "main-route:page:1:resolved:0") == 2
    rows = outbox(db_engine)
    assert len(rows) == 4
    by_channel = {r["channel"]: r for r in rows if r["dedup_key"].startswith("main-route:page:1:o")}
    email = next(c for c in channels if c.is_email)
    chat = next(c for c in channels if not c.is_email)
    # Email gets the HTML body, chat the markdown one.
    assert by_channel[email.id]["body_format"] == "html"
    assert by_channel[chat.id]["body_format"] == "markdown"
    dumped = repr(rows)
    for secret in (HOOK_TOKEN, SMTP_PASSWORD, hook_url, str(webhook.port), str(smtp.port)):
        assert secret not in dumped


async def test_each_row_is_delivered_once_with_the_right_body(
    db_url: str, db_engine: Engine, webhook: Webhook, smtp: SmtpInbox
) -> None:
    cfg = make_config(
        db_url, (webhook.url(f"hook/{HOOK_TOKEN}"), ["page"]), (smtp.url(login=True), ["page"])
    )
    queue(db_engine, load_channels(cfg), "k1", "k2")
    worker = deliverer(db_engine, cfg)
    assert await worker.run_once() == 4
    assert await worker.run_once() == 0  # nothing is due any more
    assert [p.path for p in webhook.received()] == [f"/hook/{HOOK_TOKEN}"] * 2
    assert sorted(p.payload["message"].strip() for p in webhook.received()) == [
        "**main-route** is failing (k1).",
        "**main-route** is failing (k2).",
    ]
    assert {p.payload["type"] for p in webhook.received()} == {"failure"}
    mails = smtp.messages()
    assert len(mails) == 2 and len(smtp.logins) == 2  # the password was used
    html = mails[0].get_body(("html",))
    assert html is not None and "<strong>main-route</strong>" in html.get_content()
    rows = outbox(db_engine)
    assert all(r["delivered_at"] is not None and r["attempts"] == 1 for r in rows)
    # One notification, one id on every channel: in the webhook's JSON and headers, and
    # in a header of the email (Apprise writes the Message-ID itself).
    ids = {deliver.notification_id(k) for k in ("k1", "k2")}
    assert len(ids) == 2
    assert {p.payload["notification_id"] for p in webhook.received()} == ids
    assert {p.headers[deliver.ID_HEADER] for p in webhook.received()} == ids
    assert {m[deliver.ID_HEADER] for m in mails} == ids
    assert all(r["claimed_by"] is None for r in rows)


async def test_two_workers_never_send_a_row_twice(
    db_url: str, db_engine: Engine, webhook: Webhook
) -> None:
    cfg = make_config(db_url, (webhook.url("hook"), ["page"]))
    keys = [f"k{i}" for i in range(30)]
    queue(db_engine, load_channels(cfg), *keys)
    # Two workers with engines of their own, as two processes would have.
    engines = [db_engine, sa.create_engine(db_engine.url)]
    try:
        workers = [deliverer(e, cfg) for e in engines]
        assert workers[0].worker != workers[1].worker
        # Claim rounds of both workers at the same time, until the queue is empty.
        for _ in range(20):
            await asyncio.gather(*(w.run_once(limit=7) for w in workers for _ in range(3)))
            if notify.pending_count(db_engine) == 0:
                break
    finally:
        engines[1].dispose()
    sent = [p.payload["message"].strip() for p in webhook.received()]
    assert sorted(sent) == sorted(f"**main-route** is failing ({k})." for k in keys)
    assert sum(w.delivered for w in workers) == 30
    assert all(r["attempts"] == 1 for r in outbox(db_engine))


async def test_a_failed_delivery_is_kept_and_retried_with_backoff(
    db_url: str, db_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = Webhook()  # not started: nothing listens yet
    try:
        hook_url = hook.url(f"hook/{HOOK_TOKEN}")
        cfg = make_config(db_url, (hook_url, ["page"]))
        queue(db_engine, load_channels(cfg), "k1")
        monkeypatch.setattr(notify, "BACKOFF_FIRST_S", 0.3)
        worker = deliverer(db_engine, cfg)
        before = datetime.now(UTC)
        assert await worker.run_once() == 0
        [row] = outbox(db_engine)
        assert row["attempts"] == 1 and row["delivered_at"] is None and row["failed_at"] is None
        assert row["next_attempt_at"] >= before + timedelta(seconds=0.3)
        assert row["last_error"] and HOOK_TOKEN not in row["last_error"]
        # Not due yet: the backoff holds it back.
        assert await worker.run_once() == 0
        assert outbox(db_engine)[0]["attempts"] == 1
        await asyncio.sleep(0.35)
        assert await worker.run_once() == 0
        assert outbox(db_engine)[0]["attempts"] == 2
        # The second wait doubles.
        assert notify.backoff_s(2) == pytest.approx(0.6)
        hook.start()
        await asyncio.sleep(0.65)
        assert await worker.run_once() == 1
        [row] = outbox(db_engine)
        assert row["attempts"] == 3 and row["delivered_at"] is not None
        assert row["last_error"] is None
        assert len(hook.received()) == 1
    finally:
        hook.close()


async def test_stopping_during_a_send_records_it_so_it_is_not_sent_again(
    db_url: str, db_engine: Engine, webhook: Webhook
) -> None:
    """A stop (a restart) while a page is on its way: the send finishes and is recorded,
    rather than being cut off after the receiver got it, and repeated after the lease."""
    cfg = make_config(db_url, (webhook.url("hook"), ["page"]))
    queue(db_engine, load_channels(cfg), "k1")
    webhook.delay_s = 0.5
    worker = deliverer(db_engine, cfg)
    worker.start()
    await eventually(lambda: len(webhook.received()) == 1)
    await worker.close()
    [row] = outbox(db_engine)
    assert row["delivered_at"] is not None and row["claimed_by"] is None
    assert worker.delivered == 1


async def test_close_does_not_wait_long_for_a_hanging_receiver(
    db_url: str, db_engine: Engine, webhook: Webhook
) -> None:
    cfg = make_config(db_url, (webhook.url("hook"), ["page"]))
    queue(db_engine, load_channels(cfg), "k1")
    webhook.delay_s = 5
    worker = deliverer(db_engine, cfg)
    worker.start()
    await eventually(lambda: len(webhook.received()) == 1)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await worker.close(grace_s=0.3)
    assert loop.time() - began < 2
    # Not recorded: the lease runs out and another worker tries again (at-least-once).
    [row] = outbox(db_engine)
    assert row["delivered_at"] is None and row["claimed_by"] == worker.worker


async def test_past_its_deadline_a_row_is_marked_failed(db_url: str, db_engine: Engine) -> None:
    cfg = make_config(db_url, (f"json://127.0.0.1:{free_port()}/hook", ["page"]))
    queue(db_engine, load_channels(cfg), "k1")
    with db_engine.begin() as conn:
        conn.execute(OUTBOX.update().values(deadline_at=datetime.now(UTC) + timedelta(seconds=1)))
    worker = deliverer(db_engine, cfg)
    assert await worker.run_once() == 0
    [row] = outbox(db_engine)
    assert row["failed_at"] is not None and row["attempts"] == 1
    assert await worker.run_once() == 0  # given up: never claimed again
    assert outbox(db_engine)[0]["attempts"] == 1
    assert notify.pending_count(db_engine) == 0


async def test_a_row_whose_channel_was_edited_follows_its_route(
    db_url: str, db_engine: Engine, webhook: Webhook
) -> None:
    """A reload fixed the page channel's URL: the page still pending for the old URL goes
    to the channel its tags route to now, once, instead of failing against the old one."""
    old = make_config(db_url, (webhook.url("old"), ["page"]))
    queue(db_engine, load_channels(old), "k1")
    new = make_config(db_url, (webhook.url("new"), ["page"]), (webhook.url("tix"), ["ticket"]))
    worker = deliverer(db_engine, new)
    worker.start()
    try:
        await eventually(lambda: [p.path for p in webhook.received()] == ["/new"])
        await asyncio.sleep(0.5)
        assert [p.path for p in webhook.received()] == ["/new"]  # once, and not to tickets
    finally:
        await worker.close()
    rows = outbox(db_engine)
    assert sorted(r["last_error"] or "" for r in rows) == [
        "",
        "channel no longer configured: rerouted by its tags",
    ]
    assert notify.pending_count(db_engine) == 0


async def test_a_receiver_slower_than_apprises_default_gets_one_copy(
    db_url: str, db_engine: Engine, webhook: Webhook
) -> None:
    # Apprise's own read timeout is 4 s: a 5 s receiver used to get the page on every retry.
    cfg = make_config(db_url, (webhook.url("hook"), ["page"]))
    queue(db_engine, load_channels(cfg), "k1")
    webhook.delay_s = 5
    worker = deliverer(db_engine, cfg)
    assert await worker.run_once() == 1
    assert len(webhook.received()) == 1


async def test_a_receiver_slower_than_its_timeout_gets_at_most_one_duplicate(
    db_url: str, db_engine: Engine, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "BACKOFF_FIRST_S", 0.1)
    cfg = parse(
        "targets:\n"
        "  - {name: main-route, kind: http, base_url: 'http://127.0.0.1:9/health'}\n"
        f'notify:\n  - {{url: "{webhook.url("hook")}", tags: [page], timeout: 1s}}\n'
        f'storage: {{url: "{db_url}"}}\n'
    )
    queue(db_engine, load_channels(cfg), "k1")
    webhook.delay_s = 3
    worker = deliverer(db_engine, cfg)
    for _ in range(4):
        await worker.run_once()
        await asyncio.sleep(0.3)
    copies = webhook.received()
    assert len(copies) == 2  # the first try and one retry, never more
    # The receiver can tell the copy from a new page: both carry the same id.
    assert copies[0].payload["notification_id"] == copies[1].payload["notification_id"]
    [row] = outbox(db_engine)
    assert row["failed_at"] is not None and row["last_error"].startswith("timed out after 1s")


async def test_errors_of_channels_sent_at_once_stay_apart(smtp_down: SmtpInbox) -> None:
    mail = Channel("m", smtp_down.url(), frozenset())
    hook = Channel("h", f"json://127.0.0.1:{free_port()}/hook", frozenset())
    errors = await asyncio.gather(
        *(deliver.send(c, "t", "b", "markdown", "info") for c in (mail, hook, mail, hook))
    )
    assert all(errors)
    for channel, error in zip((mail, hook, mail, hook), errors, strict=True):
        assert ("email" in error.lower()) == channel.is_email, error


STALL_PROBE = """
import asyncio, sys
import sqlalchemy as sa
from checker.alerting.channels import Channel
from checker.alerting.deliver import Deliverer, send
from checker.redact import Redactor
from checker.store import migrate

async def main() -> None:
    migrate.upgrade(sys.argv[2])
    engine = sa.create_engine(sys.argv[2])
    channel = Channel("h", sys.argv[1], frozenset())
    deliverer = Deliverer(engine, lambda: [channel], lambda: Redactor())
    deliverer.start()  # as the service does with a channel, before its probes start
    stalls = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            stalls.append(loop.time() - before - 0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    error = await send(channel, "t", "b", "markdown", "info")
    await asyncio.sleep(0.05)
    task.cancel()
    await deliverer.close()
    print(error, max(stalls))

asyncio.run(main())
"""


def test_sending_does_not_stall_the_event_loop(webhook: Webhook, tmp_path: Path) -> None:
    """Apprise loads its plugins on first use: in a fresh process that must not happen while
    probes are in flight (the deliverer loads them at start when a channel exists)."""
    done = subprocess.run(
        [sys.executable, "-c", STALL_PROBE, webhook.url("hook"), f"sqlite:///{tmp_path}/o.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    error, stall = done.stdout.split()
    assert error == "None", done.stderr
    assert float(stall) < 0.05
    assert len(webhook.received()) == 1


# --- notify-test -------------------------------------------------------------------------------


def test_notify_test_reports_each_channel_and_fails_when_one_fails(
    tmp_path: Path, webhook: Webhook, smtp_down: SmtpInbox
) -> None:
    hook_url = webhook.url(f"hook/{HOOK_TOKEN}")
    config = tmp_path / "checker.yaml"
    config.write_text(
        "targets:\n"
        "  - {name: main-route, kind: http, base_url: 'http://127.0.0.1:9/health'}\n"
        "notify:\n"
        f'  - {{url: "{hook_url}", tags: [page]}}\n'
        f'  - {{url: "{smtp_down.url(login=True)}", tags: [page, digest]}}\n'
    )

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "checker.cli", "notify-test", "-c", str(config), *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = run()
    assert done.returncode == 1, done.stderr
    lines = sorted(done.stdout.strip().splitlines())
    assert len(lines) == 2
    assert lines[0].startswith("json:") and lines[0].endswith("[page]: delivered")
    assert lines[1].startswith("mailto:") and "[digest,page]: FAILED: " in lines[1]
    for secret in (HOOK_TOKEN, SMTP_PASSWORD):
        assert secret not in done.stdout + done.stderr
    assert len(webhook.received()) == 1
    assert webhook.received()[0].payload["title"] == "checker test notification"

    smtp_down.start()
    done = run("--tag", "digest")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().startswith("mailto:") and done.stdout.strip().endswith("delivered")
    assert len(smtp_down.messages()) == 1 and len(webhook.received()) == 1
    assert SMTP_PASSWORD not in done.stdout
