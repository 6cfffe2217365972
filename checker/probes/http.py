"""The `http` probe: request a URL, then judge it by the target's Gatus-style conditions.

The status code is not classified on its own here: the conditions decide (the default is
`status == 200`), so an endpoint where 503 means "degraded but fine" can say so. The
first failing condition becomes the `condition` error with its reason as detail.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.classify import parse_retry_after
from checker.probes.conditions import Observed, evaluate, parse_condition, parse_json_body
from checker.probes.exchange import exchange
from checker.probes.reads import off_loop, read_capped

if TYPE_CHECKING:
    from checker.config.schema import Target


# Per probe these would be parsed again from the same config text: ~40-80 us for the URL
# (httpx's parser), ~12 us per condition, of an HTTP probe's ~2 ms of CPU. Both results are
# immutable (httpx.URL, a frozen Condition); a reload's new texts are new keys.
_url = functools.lru_cache(maxsize=1024)(httpx.URL)
_condition = functools.lru_cache(maxsize=1024)(parse_condition)


def _headers(target: Target) -> dict[str, str]:
    headers: dict[str, str] = {}
    if target.api_key is not None:
        headers["authorization"] = f"Bearer {target.api_key.get_secret_value()}"
    headers.update({k: v.get_secret_value() for k, v in target.headers.items()})
    return headers


async def probe_http(
    target: Target, client: httpx.AsyncClient, result: ProbeResult, redact: Callable[[str], str]
) -> None:
    check = target.http
    request = client.build_request(
        check.method,
        _url(target.base_url),
        headers=_headers(target),
        content=check.body.encode() if check.body is not None else None,
        json=check.json_body,
    )
    async with exchange(client, request, result) as ex:
        body = await read_capped(ex.response, target.max_body_bytes)
        result.latency_ms = ex.ms()
        headers = {k.lower(): v for k, v in ex.response.headers.items()}
    result.retry_after_s = parse_retry_after(headers, datetime.now(UTC))
    # Conditions quote what they saw, cut to a few dozen characters: redact first, or a
    # secret the endpoint echoes could survive in part.
    text = redact(body.decode("utf-8", errors="replace"))
    observed = Observed(
        status=result.status,
        latency_ms=result.latency_ms,
        ttfb_ms=result.ttfb_ms,
        body=text,
        headers={k: redact(v) for k, v in headers.items()},
    )
    conditions = [_condition(text) for text in check.conditions]
    parsed: Any = None
    if any(c.subject.startswith("json") for c in conditions):
        parsed = await off_loop(parse_json_body, text, len(body))
    for condition in conditions:
        if condition.subject.startswith("json"):
            reason = evaluate(condition, observed, parsed)
        else:
            reason = evaluate(condition, observed)
        if reason is not None:
            result.fail(ErrorKind.condition, redact(reason))
            return
    result.ok = True


__all__ = ["probe_http"]
