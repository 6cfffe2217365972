"""Capped reads: a response body never buffered past its limit, and CPU work on a big one
kept off the event loop.

Readers here enforce the body limits while streaming, so a hostile endpoint can never
make the checker buffer an unbounded body.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import httpx

from checker.probes.base import ErrorKind
from checker.probes.classify import ProbeFailure

# An error body only feeds the detail line; more than this is never needed.
ERROR_BODY_BYTES = 64 * 1024
# Parsing more than this on the event loop would stall concurrent probes' clocks.
OFF_LOOP_BYTES = 128 * 1024

T = TypeVar("T")
R = TypeVar("R")


def _declared_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def too_large(limit: int) -> ProbeFailure:
    return ProbeFailure(ErrorKind.too_large, f"response body over {limit} bytes")


async def read_capped(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """The (decoded) body, read no further than `limit` bytes: beyond it, either stop
    (`truncate`, for error bodies that only feed a message) or raise too_large."""
    declared = _declared_length(response)
    if declared is not None and declared > limit and not truncate:
        raise too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if truncate:
                parts.append(chunk[: len(chunk) - (size - limit)])
                break
            raise too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


async def read_error_text(response: httpx.Response, limit: int) -> str:
    body = await read_capped(response, min(limit, ERROR_BODY_BYTES), truncate=True)
    return body.decode("utf-8", errors="replace")


class CappedText:
    """What httpx_sse.EventSource reads (headers, aiter_text) with max_body_bytes enforced
    as bytes arrive, so even one endless line without a newline is never buffered whole."""

    def __init__(self, response: httpx.Response, limit: int) -> None:
        self._response = response
        self._limit = limit
        self.bytes_read = 0

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    async def aiter_text(self) -> AsyncIterator[str]:
        # SSE is UTF-8 by definition, whatever the charset header claims.
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in self._response.aiter_bytes():
            self.bytes_read += len(chunk)
            if self.bytes_read > self._limit:
                raise too_large(self._limit)
            if text := decoder.decode(chunk):
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail


async def off_loop(fn: Callable[[T], R], arg: T, size: int) -> R:
    """Run CPU work on a big input in a thread: a blocked event loop would add its time to
    every concurrent probe's measurements (e.g. a 1 MB model list from a relay)."""
    if size < OFF_LOOP_BYTES:
        return fn(arg)
    return await asyncio.to_thread(fn, arg)


__all__ = [
    "ERROR_BODY_BYTES",
    "OFF_LOOP_BYTES",
    "CappedText",
    "off_loop",
    "read_capped",
    "read_error_text",
    "too_large",
]
