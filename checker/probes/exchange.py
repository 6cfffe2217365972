"""A measured exchange: send a request, time its answer, and judge a non-2xx or an error body.

What the clock measures (the same with fresh and with reused connections):

- t0 is the moment the request's first byte is handed to the kernel, after DNS, connect
  and TLS (those are `connect_ms`, from httpcore's trace, measured on its own).
- ttfb, ttft and latency end when the bytes that completed the response headers, the
  first event carrying generated text, and the end marker (else the last byte) reached
  this host's network stack: the kernel's receive timestamp of the read that brought
  them (checker/probes/transport/arrival.py), on the same monotonic clock as t0.

So a reading is the route's time from request to answer, and not the time this process
needed to get around to the bytes: with many probes in flight on one core, an event can
wait in the loop's queue long after it arrived, and that wait is the checker's, not the
route's. Without kernel timestamps (not Linux) the ends are when the loop took the bytes
from the socket. On Windows, and for every URL a proxy from the environment applies to
(HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, minus NO_PROXY: httpx's own rules), httpx's own
transport is used: t0 is then taken just before the request is sent (connect included)
and the ends when the reader sees the bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

import httpx

from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.classify import (
    ProbeFailure,
    Verdict,
    classify_status,
    error_fields,
    excerpt,
    kind_for_status,
    short_detail,
)
from checker.probes.reads import off_loop, read_capped, read_error_text
from checker.probes.transport.arrival import ArrivalClock, stream_clock


class ConnectTrace:
    """httpcore trace hook: when a new connection was opened, how long it took."""

    def __init__(self) -> None:
        self.started: float | None = None
        self.connected: float | None = None

    async def __call__(self, name: str, info: dict[str, Any]) -> None:
        if name == "connection.connect_tcp.started":
            self.started = perf_counter()
        elif name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.connected = perf_counter()

    @property
    def connect_ms(self) -> float | None:
        """DNS + TCP (+ TLS) of a fresh connection; None when a kept-alive one was reused."""
        if self.started is None or self.connected is None:
            return None
        return (self.connected - self.started) * 1000.0


@dataclass(slots=True)
class Exchange:
    """A sent request whose response headers arrived; times are ms since it was sent."""

    response: httpx.Response
    t0: float
    clock: ArrivalClock | None = None

    def arrived(self) -> float:
        """When the bytes read last reached this host (now, without a stamping stream)."""
        return arrival(self.clock)

    def ms(self, at: float | None = None) -> float:
        """ms from the request to `at`, by default to the arrival of the last bytes read."""
        return ((self.arrived() if at is None else at) - self.t0) * 1000.0


def arrival(clock: ArrivalClock | None) -> float:
    if clock is None or clock.arrived_at is None:
        return perf_counter()
    return clock.arrived_at


@asynccontextmanager
async def exchange(
    client: httpx.AsyncClient, request: httpx.Request, result: ProbeResult
) -> AsyncIterator[Exchange]:
    """Send `request` and stream its response; records connect_ms, ttfb_ms and status."""
    trace = ConnectTrace()
    request.extensions["trace"] = trace
    before = perf_counter()
    try:
        response = await client.send(request, stream=True)
    finally:
        result.connect_ms = trace.connect_ms
    try:
        clock = stream_clock(response.extensions.get("network_stream"))
        sent = None if clock is None else clock.request_sent_at
        # A stamp from before this call would be another request's: never trust it.
        ex = Exchange(response, sent if sent is not None and sent >= before else before, clock)
        result.ttfb_ms = ex.ms()
        result.status = response.status_code
        yield ex
    finally:
        await response.aclose()


async def fail_on_status(
    ex: Exchange, result: ProbeResult, max_body_bytes: int, redact: Callable[[str], str]
) -> bool:
    """Classify a non-2xx response (reading a capped error body); False when it is 2xx."""
    status = ex.response.status_code
    if 200 <= status < 300:
        return False
    text = await read_error_text(ex.response, max_body_bytes)
    result.latency_ms = ex.ms()
    verdict = classify_status(
        status, text, ex.response.headers, redact=redact, now=datetime.now(UTC)
    )
    if verdict is None:  # 1xx never reaches us; treat anything odd as a bad answer
        verdict = Verdict(ErrorKind.bad_response, f"unexpected HTTP {status}")
    result.retry_after_s = verdict.retry_after_s
    result.fail(verdict.kind, verdict.detail)
    return True


async def read_json(
    ex: Exchange, result: ProbeResult, max_body_bytes: int, redact: Callable[[str], str]
) -> Any:
    """The whole (capped) body parsed as JSON; sets latency_ms at its last byte."""
    body = await read_capped(ex.response, max_body_bytes)
    result.latency_ms = ex.ms()
    try:
        return await off_loop(json.loads, body, len(body))
    except ValueError:
        start = excerpt(body[:8192].decode("utf-8", errors="replace"), redact)
        raise ProbeFailure(ErrorKind.bad_response, f"body is not JSON: {start}") from None


def check_model(result: ProbeResult, expect_model: str | None) -> None:
    """`model_mismatch` when the returned model does not fully match `expect_model`."""
    if expect_model is None:
        return
    if result.model is None or not re.fullmatch(expect_model, result.model):
        result.fail(
            ErrorKind.model_mismatch,
            f"returned model {result.model!r} does not match {expect_model!r}",
        )


def error_in_body(
    doc: Any, redact: Callable[[str], str], label: str = "error in body"
) -> Verdict | None:
    """An `error` object inside a 2xx body (relays do this): classified by its numeric code
    when it has one, else as a server error."""
    if not isinstance(doc, dict) or not doc.get("error"):
        return None
    message, etype, code = error_fields(doc)
    status = int(code) if code is not None and code.isdigit() else 500
    kind = kind_for_status(status, message or "", etype, code) or ErrorKind.server_error
    if code or etype:
        label += f" ({code or etype})"
    return Verdict(kind, short_detail(f"{label}: {message or ''}", redact))


__all__ = [
    "ConnectTrace",
    "Exchange",
    "arrival",
    "check_model",
    "error_in_body",
    "exchange",
    "fail_on_status",
    "read_json",
]
