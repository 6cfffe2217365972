"""The network streams of the ArrivalBackend (connect.py): they know when a request left
and when bytes arrived.

Why: a probe's clock must measure the route, not the checker. Stamping "now" when our
code gets to an event measures the event loop too: with 200 streams in flight on one
core, a first token can wait hundreds of milliseconds behind other probes' chunks before
any Python code sees it. So this backend stamps the two ends of every interval where the
checker's own CPU cannot move them:

- `ArrivalClock.request_sent_at`: perf_counter() immediately before the first byte of the
  current request is handed to the kernel (the probe's task does all local work, connect
  included, before that).
- `ArrivalClock.arrived_at`: when the bytes handed out by the most recent read reached
  this host's network stack, from the kernel's receive timestamp (Linux SO_TIMESTAMPNS,
  read with recvmsg), however late our code gets to them. Where the kernel gives no
  timestamp (other systems) it is when the loop's reader callback took them.

A reader parsing the bytes it just read asks for `arrived_at`: the event it completed
arrived with the latest read, because httpcore reads only when its parser needs more
(each read hands out one received chunk with its own time). One limit remains: the
kernel keeps one timestamp per queued segment and merges segments queued together under
the later one. Bytes are taken from the kernel in the loop's reader callback, right after
select(); if the loop is held up for longer than the gap between two tokens (a starved
CPU, a burst of other probes' work), the first token's bytes carry the second's time.
The error is then bounded by that hold-up, instead of being all of it.

Everything else mirrors httpcore's own anyio backend, so probes classify failures exactly
as before: the same exception types (ConnectError, ReadTimeout...) wrapping the same
causes (ssl.SSLError, OSError), TLS through an ssl.SSLObject without close_notify on
close, and a peer's EOF read as b"" (connecting, with happy eyeballs, is connect.py).
"""

# httpcore's stream interface passes timeouts as arguments, so the helpers do too.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import select
import socket
import ssl
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

import httpcore

READ_BYTES = 64 * 1024
# Received bytes held for a consumer that is behind, before reading pauses.
READ_AHEAD_BYTES = 256 * 1024
# The TLS layer reads ciphertext in pieces of this size (a TLS record is at most 16 KB).
TLS_READ_BYTES = 64 * 1024

# Linux: SO_TIMESTAMPNS = SCM_TIMESTAMPNS = 35 (the socket module does not name it); the
# timestamp is a struct timespec on CLOCK_REALTIME, i.e. two C longs on Linux.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")
_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if sys.platform == "linux" else 0

# recvmsg and a selector loop's add_reader: every POSIX system (not Windows).
SUPPORTED = hasattr(socket.socket, "recvmsg") and sys.platform != "win32"

Option = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


def _enable_kernel_stamps(sock: socket.socket) -> bool:
    if sys.platform != "linux":
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _kernel_arrival(ancdata: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time of the data just read, on perf_counter's clock."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            # CLOCK_REALTIME -> CLOCK_MONOTONIC (perf_counter): the offset read now, since
            # only a step of the wall clock changes it, and a step is rare.
            offset = time.time_ns() - time.perf_counter_ns()
            return min((sec * 1_000_000_000 + nsec - offset) / 1e9, perf_counter())
    return None


class ArrivalClock:
    """The two stamps of the exchange in progress on one connection.

    A request starts with the first application write after a response was read (or the
    first ever); TLS handshake traffic neither starts a request nor ends a response.
    """

    __slots__ = ("_between_requests", "arrived_at", "kernel", "request_sent_at")

    def __init__(self, kernel: bool) -> None:
        self.kernel = kernel  # False: arrived_at is when the read returned
        self.request_sent_at: float | None = None
        self.arrived_at: float | None = None
        self._between_requests = True

    def sending(self) -> None:
        if self._between_requests:
            self.request_sent_at = perf_counter()
            self._between_requests = False

    def responding(self) -> None:
        self._between_requests = True


class StampedStream(httpcore.AsyncNetworkStream):
    """A network stream with an ArrivalClock (plain TCP or TLS over it)."""

    clock: ArrivalClock


def _wake(fut: asyncio.Future[bool], value: bool) -> None:
    if not fut.done():
        fut.set_result(value)


class _SocketStream(StampedStream):
    """A non-blocking TCP socket on the running loop's selector, read ahead of its consumer.

    Reading happens in the loop's reader callback, right after select() reports the
    socket, not when the consumer's task next runs (an iteration later on a busy loop):
    the sooner bytes leave the kernel's queue, the less often the next segment merges
    into them and hands them its later timestamp. Read-ahead pauses past READ_AHEAD_BYTES.
    """

    def __init__(self, sock: socket.socket, kernel_stamps: bool) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self.clock = ArrivalClock(kernel_stamps)
        self._chunks: deque[tuple[bytes, float]] = deque()  # (bytes, arrival time)
        self._buffered = 0
        self._eof = False
        self._error: OSError | None = None
        self._reading = False
        self._waiter: asyncio.Future[bool] | None = None

    def _start_reading(self) -> None:
        if self._reading or self._eof or self._error is not None or self._sock.fileno() == -1:
            return
        if self._buffered < READ_AHEAD_BYTES:
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data, ancdata, _flags, _addr = self._sock.recvmsg(READ_BYTES, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._error = exc
            self._stop_reading()
        else:
            if data:
                self._chunks.append((data, _kernel_arrival(ancdata) or perf_counter()))
                self._buffered += len(data)
                if self._buffered >= READ_AHEAD_BYTES:
                    self._stop_reading()
            else:
                self._eof = True
                self._stop_reading()
        if self._waiter is not None:
            _wake(self._waiter, True)

    def _expire(self, fut: asyncio.Future[bool], timeout: float | None) -> asyncio.Handle | None:
        """Resolve `fut` with False after `timeout`: cheaper than a timeout context."""
        return None if timeout is None else self._loop.call_later(timeout, _wake, fut, False)

    async def _wait(
        self,
        register: Callable[..., Any],
        unregister: Callable[[int], Any],
        timeout: float | None,
    ) -> bool:
        """Until the socket is writable (True) or `timeout` passed (False)."""
        fut: asyncio.Future[bool] = self._loop.create_future()
        register(self._fd, _wake, fut, True)
        timer = self._expire(fut, timeout)
        try:
            return await fut
        finally:
            unregister(self._fd)
            if timer is not None:
                timer.cancel()

    async def recv(self, max_bytes: int, timeout: float | None) -> bytes:
        """Up to max_bytes (b"" at EOF), stamping their arrival on the clock."""
        while not self._chunks:
            if self._error is not None:
                raise httpcore.ReadError(self._error) from self._error
            if self._eof:
                return b""
            self._start_reading()
            waiter = self._waiter = self._loop.create_future()
            timer = (
                None if timeout is None else self._loop.call_later(timeout, _wake, waiter, False)
            )
            try:
                ready = await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
            if not ready and not self._chunks and not self._eof and self._error is None:
                raise httpcore.ReadTimeout(TimeoutError())
        data, at = self._chunks.popleft()
        if len(data) > max_bytes:
            self._chunks.appendleft((data[max_bytes:], at))
            data = data[:max_bytes]
        self._buffered -= len(data)
        self._start_reading()  # after a pause; nothing to do while reading
        # Never before the request left: a wall-clock step back between the packet and its
        # conversion, or bytes pushed before the request, would give a negative ttfb.
        sent = self.clock.request_sent_at
        self.clock.arrived_at = at if sent is None or at >= sent else sent
        return data

    async def send(self, data: bytes, timeout: float | None) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self._sock.send(view)
            except BlockingIOError:
                if not await self._wait(self._loop.add_writer, self._loop.remove_writer, timeout):
                    raise httpcore.WriteTimeout(TimeoutError()) from None
                continue
            except OSError as exc:
                raise httpcore.WriteError(exc) from exc
            view = view[sent:]

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.clock.responding()
        return await self.recv(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self.clock.sending()
            await self.send(buffer, timeout)

    async def aclose(self) -> None:
        self._stop_reading()
        self._sock.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        tls = _TLSStream(self, ssl_context, server_hostname)
        try:
            async with asyncio.timeout(timeout):
                await tls.handshake()
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(exc) from exc
        except BaseException:
            await self.aclose()
            raise
        return tls

    def get_extra_info(self, info: str) -> Any:
        sock = self._sock
        if info == "socket":
            return sock
        if sock.fileno() == -1:
            return True if info == "is_readable" else None
        if info == "client_addr":
            return sock.getsockname()
        if info == "server_addr":
            return sock.getpeername()
        if info == "is_readable":
            # A kept-alive connection with something to read was closed (or spoken on) by
            # the server: httpcore then opens a new one.
            if self._chunks or self._eof or self._error is not None:
                return True
            poller = select.poll()  # not select(): descriptors can exceed FD_SETSIZE
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return None


class _TLSStream(StampedStream):
    """TLS over a _SocketStream through memory BIOs, so ciphertext keeps its arrival time:
    decrypted bytes arrived with the read that completed their record."""

    def __init__(self, raw: _SocketStream, ctx: ssl.SSLContext, hostname: str | None) -> None:
        self._raw = raw
        self.clock = raw.clock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = ctx.wrap_bio(self._incoming, self._outgoing, server_hostname=hostname)

    async def _flush(self, timeout: float | None) -> None:
        if self._outgoing.pending:
            await self._raw.send(self._outgoing.read(), timeout)

    async def _fill(self, timeout: float | None) -> None:
        data = await self._raw.recv(TLS_READ_BYTES, timeout)
        if data:
            self._incoming.write(data)
        else:
            self._incoming.write_eof()

    async def handshake(self) -> None:
        while True:
            try:
                self._ssl.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush(None)
                await self._fill(None)
            except ssl.SSLError as exc:
                if isinstance(exc, ssl.SSLEOFError):
                    # As anyio reports it: the peer hung up, no TLS alert to quote.
                    raise httpcore.ConnectError() from None
                raise httpcore.ConnectError(exc) from exc
            except httpcore.ReadError as exc:
                raise httpcore.ConnectError(exc.args[0]) from exc.__cause__
            except httpcore.WriteError as exc:
                raise httpcore.ConnectError(exc.args[0]) from exc.__cause__
            else:
                await self._flush(None)
                return

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.clock.responding()
        while True:
            try:
                data = self._ssl.read(max_bytes)
            except ssl.SSLWantReadError:
                await self._flush(timeout)  # e.g. a KeyUpdate answer
                await self._fill(timeout)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""  # HTTP needs no close_notify; a ragged EOF is an EOF
            except ssl.SSLError as exc:
                # A bad record, an alert mid-body: anyio reports these as a broken stream,
                # which httpcore maps to ReadError (httpx.ReadError -> `disconnect`).
                raise httpcore.ReadError(exc) from exc
            else:
                await self._flush(timeout)
                return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        self.clock.sending()
        try:
            self._ssl.write(buffer)
        except ssl.SSLError as exc:  # as anyio: a broken stream, httpcore's WriteError
            raise httpcore.WriteError(exc) from exc
        await self._flush(timeout)

    async def aclose(self) -> None:
        await self._raw.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NotImplementedError("TLS in TLS (an HTTPS proxy) uses httpcore's own backend")

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl
        # Records already taken from the socket count too: a close_notify that came in the
        # same segment as the end of the last response sits undecrypted in the BIO.
        if info == "is_readable" and (self._ssl.pending() or self._incoming.pending):
            return True
        return self._raw.get_extra_info(info)


def stream_clock(network_stream: object) -> ArrivalClock | None:
    """The clock of a response's network stream; None when another backend made it (a
    proxy mounted from the environment, say)."""
    return network_stream.clock if isinstance(network_stream, StampedStream) else None


__all__ = ["SUPPORTED", "ArrivalClock", "Option", "StampedStream", "stream_clock"]
