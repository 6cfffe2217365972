"""Capped reads: a response body never buffered past its limit, and CPU work on a big one
kept off the event loop.

Readers here enforce the body limits while streaming, so a hostile endpoint can never
make the checker buffer an unbounded body.
"""

from __future__ import annotations

import asyncio
import codecs
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
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


# The most one inflate step may produce: a cap is checked after at most this many bytes.
INFLATE_STEP = 64 * 1024


class _Inflater:
    """gzip or deflate, inflated at most INFLATE_STEP bytes at a time.

    httpx inflates each network chunk whole, so 1 MB of a gzip bomb became 1 GiB in memory
    before any cap could be checked; this yields bounded pieces and lets the reader stop.
    """

    def __init__(self, encoding: str) -> None:
        # 32 + MAX_WBITS: a gzip or zlib header, detected; raw deflate is retried below.
        self._raw_deflate = False
        self._encoding = encoding
        self._d = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            out = self._inflate(data)
        except zlib.error:
            if self._encoding != "deflate" or self._raw_deflate:
                raise self._invalid() from None
            # Some servers send "deflate" without the zlib header.
            self._raw_deflate = True
            self._d = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inflate(data)
        if out:
            yield out
        while self._d.unconsumed_tail:
            out = self._inflate(self._d.unconsumed_tail)
            if not out:
                break
            yield out

    def _inflate(self, data: bytes) -> bytes:
        try:
            return self._d.decompress(data, INFLATE_STEP)
        except zlib.error:
            if self._raw_deflate or self._encoding != "deflate":
                raise self._invalid() from None
            raise

    def _invalid(self) -> ProbeFailure:
        return ProbeFailure(ErrorKind.bad_response, f"invalid {self._encoding} body")

    def close(self) -> Iterator[bytes]:
        if tail := self._d.flush():
            yield tail


def body_bytes(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it arrives, decoded (gzip, deflate, several in a row) in bounded pieces;
    other encodings pass through undecoded, as httpx itself does without their packages."""
    encodings = [
        e.strip().lower()
        for e in response.headers.get("content-encoding", "").split(",")
        if e.strip().lower() in ("gzip", "x-gzip", "deflate")
    ]
    if not encodings:
        # A plain body (an SSE stream nearly always): httpx's reads as they are, without
        # the generator layer per read that inflating needs (~1 us a chunk of a stream).
        return response.aiter_raw()
    # Applied in order by the server, so undone last-first.
    inflaters = [_Inflater("deflate" if e == "deflate" else "gzip") for e in reversed(encodings)]
    return _inflated(response, inflaters)


async def _inflated(response: httpx.Response, inflaters: list[_Inflater]) -> AsyncIterator[bytes]:
    def through(pieces: Iterator[bytes], level: int) -> Iterator[bytes]:
        if level == len(inflaters):
            yield from pieces
            return
        for piece in pieces:
            yield from through(inflaters[level].feed(piece), level + 1)

    async for raw in response.aiter_raw():
        for piece in through(iter([raw]), 0):
            yield piece
    for level in range(len(inflaters)):
        for piece in through(inflaters[level].close(), level + 1):
            yield piece


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
    async for chunk in body_bytes(response):
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
    """A stream's bytes turned into text, with max_body_bytes enforced as bytes arrive, so
    even one endless line without a newline is never buffered whole. Fed by the reader's
    own loop (a method call per read, not one more generator to resume)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.bytes_read = 0
        # SSE is UTF-8 by definition, whatever the charset header claims.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, chunk: bytes) -> str:
        """The text `chunk` completes (may be empty); too_large past the limit."""
        self.bytes_read += len(chunk)
        if self.bytes_read > self._limit:
            raise too_large(self._limit)
        return self._decoder.decode(chunk)

    def tail(self) -> str:
        """What is left at the end of the body (an incomplete character, replaced)."""
        return self._decoder.decode(b"", final=True)


async def off_loop(fn: Callable[[T], R], arg: T, size: int) -> R:
    """Run CPU work on a big input in a thread: a blocked event loop would add its time to
    every concurrent probe's measurements (e.g. a 1 MB model list from a relay)."""
    if size < OFF_LOOP_BYTES:
        return fn(arg)
    return await asyncio.to_thread(fn, arg)


__all__ = [
    "ERROR_BODY_BYTES",
    "INFLATE_STEP",
    "OFF_LOOP_BYTES",
    "CappedText",
    "body_bytes",
    "off_loop",
    "read_capped",
    "read_error_text",
    "too_large",
]
