"""Gatus-style conditions: parsing errors are precise, evaluation explains failures."""

from __future__ import annotations

import re

import pytest

from checker.probes.conditions import Observed, evaluate, parse_condition, parse_json_body

OBS = Observed(
    status=200,
    latency_ms=120.0,
    ttfb_ms=80.0,
    body='{"status": "ok", "items": [{"id": 7}], "n": 3}',
    headers={"content-type": "application/json"},
)


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        ("status == 200", True),
        ("status != 200", False),
        ("latency_ms < 300", True),
        ("latency_ms <= 100", False),
        ("ttfb_ms >= 80", True),
        ('body contains "ok"', True),
        ('body !contains "error"', True),
        ('json.status == "ok"', True),
        ("json.status == ok", True),
        ("json.items[0].id == 7", True),
        ("json.items[1].id == 7", False),
        ("json.n > 2", True),
        ('header.content-type contains "json"', True),
        (r'body matches "\"n\": \\d+"', True),
    ],
)
def test_evaluate(text: str, holds: bool) -> None:
    cond = parse_condition(text)
    reason = evaluate(cond, OBS, parse_json_body(OBS.body))
    assert (reason is None) is holds, reason


def test_failure_reason_names_the_value() -> None:
    reason = evaluate(parse_condition("status == 200"), Observed(503, 5.0, 5.0, "", {}))
    assert reason == "status == 200 (got 503)"
    html = Observed(200, 5.0, 5.0, "<html>", {})
    reason = evaluate(parse_condition("json.status == ok"), html, parse_json_body(html.body))
    assert reason == "json.status == ok (no such value)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("status = 200", "expected `SUBJECT OP VALUE`"),
        ("code == 200", "subject 'code' is not one of"),
        ('latency_ms < "fast"', "< needs a number"),
        ('body matches "("', "bad regular expression"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_condition(text)
