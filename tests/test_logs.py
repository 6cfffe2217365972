"""Log lines: one per event, text or JSON, and no secret survives in any part of a record."""

from __future__ import annotations

import json
import logging
from urllib.parse import quote

import pytest

from checker import logs
from checker.redact import Redactor

SECRET = "sk-live-0123456789abcdef"
ODD_SECRET = "tok/en+with=chars"  # one whose URL-encoded form differs from itself


@pytest.fixture(autouse=True)
def _restore_logging() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def emit(fmt: str) -> None:
    logs.setup("info", fmt, Redactor([SECRET, ODD_SECRET]))
    log = logging.getLogger("checker.test")
    log.info("plain %s", SECRET)
    log.warning("in a url https://x.example/?key=%s", quote(ODD_SECRET, safe=""))
    log.info("extra field", extra={"target_url": f"https://api/{SECRET}"})
    try:
        raise RuntimeError(f"provider said: bad key {SECRET}")
    except RuntimeError:
        log.exception("probe crashed")
    log.debug("debug lines are filtered at info level %s", SECRET)


def test_text_logs_mask_every_secret(capsys: pytest.CaptureFixture[str]) -> None:
    emit("text")
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 4  # one line per event, the traceback folded into its line
    assert SECRET not in out and quote(ODD_SECRET, safe="") not in out
    assert "plain ***" in lines[0] and "key=***" in lines[1]
    assert "Traceback" not in out and "RuntimeError: provider said: bad key ***" in lines[3]


def test_json_logs_are_valid_and_masked(capsys: pytest.CaptureFixture[str]) -> None:
    emit("json")
    out = capsys.readouterr().out
    docs = [json.loads(line) for line in out.strip().splitlines()]
    assert [d["level"] for d in docs] == ["info", "warning", "info", "error"]
    assert SECRET not in out
    assert docs[2]["target_url"] == "https://api/***"
    assert all(d["logger"] == "checker.test" and d["ts"].endswith("Z") for d in docs)


def test_reload_swaps_the_redactor(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("info", "text", Redactor([SECRET]))
    logs.set_redactor(Redactor(["new-secret-value"]))
    logging.getLogger("checker.test").info("rotated new-secret-value")
    assert "rotated ***" in capsys.readouterr().out
