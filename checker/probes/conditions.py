"""Gatus-style readable conditions for `kind: http` targets (pure).

status == 200
latency_ms < 300
body contains "ok"
json.status == "ok"
json.items[0].id != null
header.content-type contains "json"
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_OPS = ("==", "!=", "<=", ">=", "<", ">", "!contains", "contains", "matches")
_SUBJECT = re.compile(
    r"^(status|latency_ms|ttfb_ms|body|header\.[A-Za-z0-9-]+|json(?:(?:\.[A-Za-z0-9_-]+)|(?:\[\d+\]))*)$"
)
_PATH_PART = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Condition:
    text: str
    subject: str
    op: str
    expected: Any


@dataclass(frozen=True, slots=True)
class Observed:
    status: int | None
    latency_ms: float | None
    ttfb_ms: float | None
    body: str
    headers: dict[str, str]


def parse_condition(text: str) -> Condition:
    """Parse `subject op value`; raise ValueError with what is expected."""
    for op in _OPS:
        pattern = rf"^\s*(\S+)\s+{re.escape(op)}\s+(.+?)\s*$"
        if m := re.match(pattern, text):
            subject, raw = m.group(1), m.group(2)
            break
    else:
        raise ValueError(
            f"condition {text!r}: expected `SUBJECT OP VALUE` with OP one of {' '.join(_OPS)}"
        )
    if not _SUBJECT.match(subject):
        raise ValueError(
            f"condition {text!r}: subject {subject!r} is not one of status, latency_ms, "
            "ttfb_ms, body, header.NAME, json.PATH"
        )
    try:
        expected = json.loads(raw)
    except json.JSONDecodeError:
        expected = raw  # a bare word, like UP
    if op in ("<", "<=", ">", ">=") and not isinstance(expected, int | float):
        raise ValueError(f"condition {text!r}: {op} needs a number")
    if op == "matches":
        try:
            re.compile(str(expected))
        except re.error as exc:
            raise ValueError(f"condition {text!r}: bad regular expression ({exc})") from None
    return Condition(text=text, subject=subject, op=op, expected=expected)


def _json_path(doc: Any, path: str) -> Any:
    cur = doc
    for m in _PATH_PART.finditer(path):
        key, index = m.group(1), m.group(2)
        if key is not None and isinstance(cur, dict) and key in cur:
            cur = cur[key]
        elif index is not None and isinstance(cur, list) and int(index) < len(cur):
            cur = cur[int(index)]
        else:
            return _MISSING
    return cur


def _value(subject: str, obs: Observed, parsed_json: Any) -> Any:
    if subject == "status":
        return obs.status
    if subject == "latency_ms":
        return obs.latency_ms
    if subject == "ttfb_ms":
        return obs.ttfb_ms
    if subject == "body":
        return obs.body
    if subject.startswith("header."):
        return obs.headers.get(subject[len("header.") :].lower(), _MISSING)
    if parsed_json is _MISSING:
        return _MISSING
    return _json_path(parsed_json, subject[len("json") :])


def evaluate(cond: Condition, obs: Observed, parsed_json: Any = _MISSING) -> str | None:
    """None when the condition holds, else a short reason like `status == 200 (got 503)`."""
    actual = _value(cond.subject, obs, parsed_json)
    if actual is _MISSING:
        return f"{cond.text} (no such value)"
    exp = cond.expected
    op = cond.op
    try:
        if op == "==":
            ok = actual == exp or (isinstance(exp, str) and str(actual) == exp)
        elif op == "!=":
            ok = not (actual == exp or (isinstance(exp, str) and str(actual) == exp))
        elif op == "contains":
            ok = str(exp) in str(actual)
        elif op == "!contains":
            ok = str(exp) not in str(actual)
        elif op == "matches":
            ok = re.search(str(exp), str(actual)) is not None
        else:
            if actual is None:
                return f"{cond.text} (no value)"
            a = float(actual)
            ok = {"<": a < exp, "<=": a <= exp, ">": a > exp, ">=": a >= exp}[op]
    except (TypeError, ValueError):
        ok = False
    if ok:
        return None
    shown = (
        actual if not isinstance(actual, str) else (actual[:60] + ("…" if len(actual) > 60 else ""))
    )
    return (
        f"{cond.text} (got {shown!r})" if isinstance(shown, str) else f"{cond.text} (got {shown})"
    )


def parse_json_body(body: str) -> Any:
    try:
        return json.loads(body)
    except (json.JSONDecodeError, ValueError):
        return _MISSING


__all__ = ["Condition", "Observed", "evaluate", "parse_condition", "parse_json_body"]
