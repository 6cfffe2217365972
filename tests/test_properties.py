"""Property tests (hypothesis): parsers and classifiers give a result or a clean error for
any input, never an exception; the SLO math keeps its bounds; no sequence of results makes
the alert state machine open two incidents for one group or resolve one twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from httpx_sse import ServerSentEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.alerting.slo import WindowCounts, budget_remaining, burn_rate, error_rate, sli
from checker.config.load import ConfigError, parse
from checker.config.schema import Slo
from checker.probes.anthropic import DIALECT as ANTHROPIC
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.chat import StreamState
from checker.probes.classify import ProbeFailure, classify_status, parse_retry_after
from checker.probes.openai import DIALECT as OPENAI
from checker.units import parse_duration, parse_fraction
from tests.alerting.test_rules import Sim as Machine
from tests.alerting.test_rules import policy

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
sse_data = st.one_of(
    st.text(max_size=200),
    st.just("[DONE]"),
    json_like.map(lambda v: json.dumps(v)),
    st.builds(
        lambda delta, usage: json.dumps(
            {"choices": [{"delta": delta, "finish_reason": None}], "usage": usage}
        ),
        json_like,
        json_like,
    ),
)


@FAST
@given(
    data=sse_data, event=st.sampled_from(["", "message", "error", "ping", "content_block_delta"])
)
def test_any_stream_event_is_parsed_or_classified(data: str, event: str) -> None:
    for dialect in (OPENAI, ANTHROPIC):
        result = ProbeResult(target="t", probe="stream")
        try:
            step = dialect.event(
                ServerSentEvent(event=event, data=data), result, StreamState(), str
            )
        except ProbeFailure as exc:
            assert isinstance(exc.verdict.kind, ErrorKind)
            continue
        assert step is None or isinstance(step.text, str)


@FAST
@given(
    status=st.integers(100, 599),
    body=st.text(max_size=300) | json_like.map(lambda v: json.dumps(v)),
    headers=st.dictionaries(
        st.sampled_from(["retry-after", "retry-after-ms", "location", "x-other"]),
        st.text(max_size=40),
        max_size=3,
    ),
)
def test_any_error_response_is_classified(status: int, body: str, headers: dict[str, str]) -> None:
    verdict = classify_status(status, body, headers, now=NOW)
    if verdict is not None:
        assert isinstance(verdict.kind, ErrorKind) and len(verdict.detail) <= 300
    retry = parse_retry_after(headers, NOW)
    assert retry is None or retry >= 0


@FAST
@given(st.one_of(st.text(max_size=30), st.integers(), st.floats(), st.booleans(), st.none()))
def test_durations_and_percentages_parse_or_fail_cleanly(value: object) -> None:
    for parse_unit in (parse_duration, parse_fraction):
        try:
            number = parse_unit(value)
        except ValueError:
            continue
        assert number > 0


@FAST
@given(st.text(max_size=400))
def test_any_config_text_loads_or_gives_problems_by_line(text: str) -> None:
    try:
        parse(text, "c.yaml")
    except ConfigError as exc:
        assert exc.problems and all(p.startswith("c.yaml") for p in exc.problems)


@FAST
@given(
    valid=st.integers(0, 10_000),
    bad_share=st.floats(0, 1),
    objective=st.floats(0.5, 0.99999),
    more_bad=st.integers(0, 100),
)
def test_slo_math_bounds_and_monotonicity(
    valid: int, bad_share: float, objective: float, more_bad: int
) -> None:
    bad = int(valid * bad_share)
    counts = WindowCounts(valid, bad)
    if valid == 0:
        assert sli(counts) is None and burn_rate(counts, objective) is None
        return
    up, rate = sli(counts), error_rate(counts)
    assert up is not None and rate is not None and 0 <= up <= 1 and up + rate == pytest.approx(1)
    burn = burn_rate(counts, objective)
    budget = budget_remaining(counts, objective)
    assert burn is not None and burn >= 0 and budget is not None and budget <= 1
    # More bad probes among the same total: never a lower burn, never more budget.
    worse = WindowCounts(valid, min(valid, bad + more_bad))
    assert burn_rate(worse, objective) >= burn  # type: ignore[operator]
    assert budget_remaining(worse, objective) <= budget  # type: ignore[operator]
    # A window is the sum of its parts.
    half = WindowCounts(valid // 2, min(bad, valid // 2))
    rest = WindowCounts(valid - half.valid, bad - half.bad)
    assert half + rest == counts
    # ...and its uptime lies between theirs: a long window never reads better (or worse)
    # than every one of its sub-windows.
    parts = [x for x in (sli(half), sli(rest)) if x is not None]
    assert min(parts) - 1e-12 <= up <= max(parts) + 1e-12


@settings(max_examples=150, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=80), st.integers(1, 5), st.integers(1, 4))
def test_no_result_sequence_opens_a_group_twice_or_resolves_twice(
    outcomes: list[bool], failures: int, recoveries: int
) -> None:
    machine = Machine(policy(down={"failures": failures, "recoveries": recoveries}, burn=False,
                             budget_below=None))  # fmt: skip
    for bad in outcomes:
        machine.probe(bad)  # Machine asserts no dedup key is ever sent twice
    opened = resolved = 0
    for kind, group in machine.kinds():
        if group != "page":
            continue
        if kind == "opened":
            assert opened == resolved, "a second incident opened while one was open"
            opened += 1
        elif kind == "resolved":
            resolved += 1
            assert resolved == opened, "an incident resolved twice"
    assert opened - resolved in (0, 1)
    if not any(kind.startswith("flapping") for kind, _ in machine.kinds()):
        # (While flapping, one notice replaces the pages: an incident may be open unsent.)
        assert (opened - resolved == 1) == (machine.state.group("page").incident is not None)


def test_the_slo_default_is_the_one_the_properties_assume() -> None:
    assert 0 < Slo().availability < 1
