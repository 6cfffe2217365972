"""A streamed answer: its SSE events with their arrival times, within limits, and the
clock that turns them into ttft, chunk count, largest gap and decode speed."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field

import httpx
from httpx_sse import ServerSentEvent

# The library's own decoders (its public EventSource stacks two generators on them).
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.classify import ProbeFailure
from checker.probes.exchange import arrival
from checker.probes.reads import CappedText, body_bytes
from checker.probes.transport.arrival import stream_clock

# After the end marker, how long a stream may take to close so its connection can be reused.
DRAIN_S = 1.0


class EventStream:
    """The SSE events of a streamed response, each with its arrival time, within limits.

    An event's arrival time is that of the read that completed it: the stream is read
    only when the SSE parser needs more bytes, so that is always the latest read.

    The consumer calls `end()` at the protocol's end marker ([DONE], message_stop): no
    further events are yielded. With `drain` (reuse_connections) the rest of the body is
    still read, briefly and ignoring errors, because httpx only returns a connection to
    the pool once its response was read to the end.
    """

    def __init__(
        self, response: httpx.Response, max_bytes: int, max_events: int, *, drain: bool
    ) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self._max_events = max_events
        self._drain = drain
        self._clock = stream_clock(response.extensions.get("network_stream"))
        self.ended_at: float | None = None

    def end(self) -> None:
        """The event just yielded ends the stream: it arrived with the latest read."""
        self.ended_at = arrival(self._clock)

    async def events(self) -> AsyncGenerator[tuple[float, ServerSentEvent], None]:
        count = 0
        try:
            async with asyncio.timeout(None) as window, aclosing(self._parsed()) as parsed:
                async for sse in parsed:
                    if self.ended_at is not None:
                        continue  # draining
                    count += 1
                    if count > self._max_events:
                        raise ProbeFailure(
                            ErrorKind.too_large, f"stream over {self._max_events} events"
                        )
                    yield arrival(self._clock), sse
                    if self.ended_at is not None:
                        if not self._drain:
                            return
                        window.reschedule(asyncio.get_running_loop().time() + DRAIN_S)
        except (TimeoutError, httpx.HTTPError, ProbeFailure):
            if self.ended_at is None:
                raise  # a failure of the stream itself, not of the optional drain

    async def _parsed(self) -> AsyncGenerator[ServerSentEvent, None]:
        """httpx_sse's EventSource.aiter_sse on the capped text, with its own line and event
        decoders, in one generator instead of three stacked on the bytes: a stream resumes
        each once per read. (The content type was checked: chat.require_event_stream.)"""
        text, lines, events = CappedText(self._max_bytes), SSELineDecoder(), SSEDecoder()

        def complete(new_lines: list[str]) -> list[ServerSentEvent]:
            # The events these lines complete; no read happens between them, so yielding
            # them after decoding them all stamps each with the same read as before.
            decoded = (events.decode(line.rstrip("\n")) for line in new_lines)
            return [e for e in decoded if e is not None]

        async for chunk in body_bytes(self._response):
            if piece := text.feed(chunk):
                for sse in complete(lines.decode(piece)):
                    yield sse
        tail = text.tail()
        for sse in complete([*(lines.decode(tail) if tail else []), *lines.flush()]):
            yield sse


@dataclass(slots=True)
class StreamClock:
    """Per-chunk timing of a stream: ttft, ttfo, chunk count and the gaps after TTFT.

    Only chunks that carry generated text start the clock for ttft (reasoning or answer);
    ttfo waits for the first answer text. Role-only chunks, keep-alive comments (never
    seen as events) and empty deltas do not count. The gaps are those between consecutive
    chunks after the first token, whatever each carries (a chunk of several tokens is one
    arrival, so one gap: the inter-chunk latency, not a per-token figure).
    """

    t0: float
    chunks: int = 0
    first_token: float | None = None
    first_answer: float | None = None
    last_chunk: float | None = None
    max_gap: float = 0.0
    gaps: list[float] = field(default_factory=list)
    output_chars: int = 0
    parts: list[str] = field(default_factory=list)

    def chunk(self, at: float, text: str, answer: str | None = None) -> None:
        """One chunk arrived at `at` with generated `text`, of which `answer` is answer
        (default: all of it)."""
        self.chunks += 1
        if self.first_token is not None and self.last_chunk is not None:
            gap = at - self.last_chunk
            self.gaps.append(gap)
            self.max_gap = max(self.max_gap, gap)
        if text:
            self.output_chars += len(text)
            self.parts.append(text)
            if self.first_token is None:
                self.first_token = at
        if (text if answer is None else answer) and self.first_answer is None:
            self.first_answer = at
        self.last_chunk = at

    def record(self, result: ProbeResult) -> None:
        """Copy what the stream showed into the result (also after a stall or deadline)."""
        result.ttft_ms = self.ttft_ms()
        result.ttfo_ms = (
            None if self.first_answer is None else (self.first_answer - self.t0) * 1000.0
        )
        result.itl_p50_ms = self.gap_quantile_ms(0.50)
        result.itl_p99_ms = self.gap_quantile_ms(0.99)
        result.chunks = self.chunks
        result.max_gap_ms = self.max_gap_ms()
        result.output_chars = self.output_chars
        result.output_text = "".join(self.parts)

    def gap_quantile_ms(self, q: float) -> float | None:
        """The q-quantile of the inter-chunk gaps (nearest rank); None without a gap."""
        if not self.gaps:
            return None
        ordered = sorted(self.gaps)
        return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)] * 1000.0

    def ttft_ms(self) -> float | None:
        return None if self.first_token is None else (self.first_token - self.t0) * 1000.0

    def max_gap_ms(self) -> float | None:
        return None if self.first_token is None else self.max_gap * 1000.0


__all__ = ["DRAIN_S", "EventStream", "StreamClock"]
