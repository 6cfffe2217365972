"""A truth server for bench.fidelity: a streaming chat endpoint whose stamps no pause moves.

Why not the simulator's own stamps: checker.sim stamps `received` when its aiohttp handler
runs and each send just before `write()`. A garbage collection or a busy loop in the
simulator between the bytes arriving and the handler running (or between a stamp and its
write) shifts its truth by the pause, and the bench then blames the checker for it.

This server stamps every end of the truth in the kernel instead:
- `received`: the kernel's receive timestamp of the request's first bytes (SO_TIMESTAMPNS,
  read with recvmsg), however late this process gets to them;
- each send: the kernel's software transmit timestamp (SO_TIMESTAMPING with
  SOF_TIMESTAMPING_TX_SOFTWARE, read from the socket's error queue, keyed by the byte
  offset with SOF_TIMESTAMPING_OPT_ID), taken when the segment is handed to the device.
When the kernel gives no stamp (not Linux, or a send split by a full buffer) the stamp
is perf_counter() right after send(); `kernel_stamps` counts how many were the kernel's.

It also runs lean, so its sends are punctual even though punctuality is not the truth: one
thread, one selector, token deadlines precomputed from `received`, the garbage collector
disabled after start-up, in its own process (multiprocessing spawn) on its own core. It
speaks just enough HTTP/1.1 for the checker's `stream` probe, an httpx loop and curl:
POST /<route>/v1/chat/completions answered with the simulator's own OpenAI SSE bytes
(checker.sim.dialects), chunked, keep-alive. Every route behaves the same (`behavior`).
"""

from __future__ import annotations

import gc
import hashlib
import heapq
import json
import selectors
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.common import SIM_CORE, ChildServer, SimTiming, pin_to_core
from checker.sim.behaviour import Behavior, plan_tokens
from checker.sim.dialects import OpenAIStream, last_user_text

__all__ = ["Truth", "TruthLoop", "TruthServer"]

# Linux constants the socket module does not name.
SO_TIMESTAMPNS = 35
SO_TIMESTAMPING = 37
SOF_TX_SOFTWARE = 1 << 1
SOF_SOFTWARE = 1 << 4
SOF_OPT_ID = 1 << 7
SOF_OPT_TSONLY = 1 << 11
_TIMESPEC = struct.Struct("@ll")
_EXTENDED_ERR = struct.Struct("@IBBBBII")  # struct sock_extended_err
_CMSG = 256
READ_BYTES = 64 * 1024


def _to_monotonic(sec: int, nsec: int) -> float:
    """A CLOCK_REALTIME timespec on perf_counter's clock (CLOCK_MONOTONIC)."""
    offset = time.time_ns() - time.perf_counter_ns()
    return (sec * 1_000_000_000 + nsec - offset) / 1e9


def _stamp(ancdata: list[tuple[int, int, bytes]], kind: int) -> float | None:
    for level, got, data in ancdata:
        if level == socket.SOL_SOCKET and got == kind and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            if sec or nsec:
                return _to_monotonic(sec, nsec)
    return None


@dataclass
class Truth:
    """One request as the kernel saw it leave and arrive; perf_counter() values."""

    route: str
    received: float
    prompt_sha: str  # of the last user message, to join a result by its fresh prompt
    headers_sent: float | None = None
    first_token_sent: float | None = None
    last_byte_sent: float | None = None
    tokens_sent: int = 0
    kernel_stamps: int = 0
    user_stamps: int = 0

    def timing(self) -> SimTiming:
        return SimTiming(
            self.route,
            "chat",
            self.received,
            self.headers_sent,
            self.first_token_sent,
            self.last_byte_sent,
            self.tokens_sent,
        )


@dataclass
class _Send:
    data: bytes
    fields: tuple[str, ...]  # which Truth fields this send's stamp sets
    tokens: int = 0


@dataclass
class _Conn:
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    rx: float | None = None  # kernel arrival of the pending request's first bytes
    offset: int = 0  # bytes sent so far: the OPT_ID key of the next send's last byte
    waiting: dict[int, tuple[Truth, tuple[str, ...]]] = field(default_factory=dict)
    busy: bool = False  # a response is being sent
    close_after: bool = False


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _plan(behavior: dict[str, Any], body: dict[str, Any]) -> tuple[list[tuple[float, _Send]], str]:
    """(delay after `received` in s, send) of one streamed answer, and the prompt's digest."""
    b = Behavior.from_dict(behavior)
    prompt = last_user_text(body.get("messages"))
    tokens = plan_tokens(b, prompt)
    options = body.get("stream_options")
    usage = isinstance(options, dict) and bool(options.get("include_usage"))
    model = str(body.get("model") or "sim")
    stream = OpenAIStream(b, tokens, "chatcmpl-truth", model, usage=usage)
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    sends = [(0.0, _Send(head + b"".join(_chunk(d) for d in stream.opening()), ("headers_sent",)))]
    for i, (kind, text) in enumerate(tokens.tokens()):
        first = ("first_token_sent",) if i == 0 else ()
        at = (b.ttft_ms + i * b.inter_token_ms) / 1000
        sends.append((at, _Send(_chunk(stream.token(kind, text)), first, tokens=1)))
    last_at = sends[-1][0]
    tail = b"".join(_chunk(d) for d in stream.closing()) + b"0\r\n\r\n"
    sends.append((last_at, _Send(tail, ("last_byte_sent",))))
    return sends, hashlib.sha256(prompt.encode()).hexdigest()[:16]


class TruthLoop:
    """The child's single-threaded loop: accept, read requests, send at deadlines."""

    def __init__(self, behavior: dict[str, Any], control: Connection) -> None:
        self.behavior = behavior
        self.control = control
        self.sel = selectors.DefaultSelector()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, "accept")
        self.sel.register(control, selectors.EVENT_READ, "control")
        self.timers: list[tuple[float, int, _Conn, Truth, _Send]] = []
        self.seq = 0
        self.truths: list[Truth] = []
        self.kernel = sys.platform == "linux"
        self.running = True

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.kernel:
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                flags = SOF_TX_SOFTWARE | SOF_SOFTWARE | SOF_OPT_ID | SOF_OPT_TSONLY
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
            conn = _Conn(sock)
            self.sel.register(sock, selectors.EVENT_READ, conn)

    def _close(self, conn: _Conn) -> None:
        self.sel.unregister(conn.sock)
        conn.sock.close()

    def _read(self, conn: _Conn) -> None:
        # A transmit stamp left on the error queue would make the selector report the
        # socket again and again (POLLERR); loopback queues them within send(), drained there.
        self._drain_errqueue(conn)
        try:
            data, ancdata, _flags, _addr = conn.sock.recvmsg(READ_BYTES, _CMSG)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if conn.rx is None:  # the first bytes of a request
            conn.rx = _stamp(ancdata, SO_TIMESTAMPNS) or time.perf_counter()
        conn.inbuf += data
        self._maybe_respond(conn)

    def _maybe_respond(self, conn: _Conn) -> None:
        if conn.busy or conn.rx is None:
            return
        end = conn.inbuf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(conn.inbuf[:end]).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
        length = int(headers.get("content-length", "0"))
        if len(conn.inbuf) < end + 4 + length:
            return
        body_bytes = bytes(conn.inbuf[end + 4 : end + 4 + length])
        del conn.inbuf[: end + 4 + length]
        rx, conn.rx = conn.rx, None
        conn.close_after = headers.get("connection", "").lower() == "close"
        path = head[0].split(" ")[1]
        parts = path.strip("/").split("/")
        if not path.endswith("/v1/chat/completions"):
            conn.sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        route = parts[0] if len(parts) == 4 else "default"
        sends, sha = _plan(self.behavior, json.loads(body_bytes or b"{}"))
        truth = Truth(route, rx, sha)
        self.truths.append(truth)
        conn.busy = True
        for delay, send in sends:
            self.seq += 1
            heapq.heappush(self.timers, (rx + delay, self.seq, conn, truth, send))

    def _send(self, conn: _Conn, truth: Truth, send: _Send) -> None:
        if conn.sock.fileno() == -1:
            return
        key = conn.offset + len(send.data) - 1
        try:
            conn.sock.setblocking(True)  # tiny writes to a reading client: never blocks long
            conn.sock.sendall(send.data)
            conn.sock.setblocking(False)
        except OSError:
            self._close(conn)
            return
        after = time.perf_counter()
        conn.offset += len(send.data)
        truth.tokens_sent += send.tokens
        for name in send.fields:
            setattr(truth, name, after)  # replaced by the kernel's stamp when it comes
        if send.fields:
            conn.waiting[key & 0xFFFFFFFF] = (truth, send.fields)
        self._drain_errqueue(conn)
        if "last_byte_sent" in send.fields:
            truth.user_stamps += sum(1 for _ in conn.waiting.values())
            conn.waiting.clear()
            conn.busy = False
            if conn.close_after:
                self._close(conn)
            else:
                self._maybe_respond(conn)

    def _drain_errqueue(self, conn: _Conn) -> None:
        if not self.kernel:
            return
        while True:
            try:
                _d, ancdata, _f, _a = conn.sock.recvmsg(0, _CMSG, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError, OSError):
                return
            at = _stamp(ancdata, SO_TIMESTAMPING)
            ident = None
            for level, _kind, data in ancdata:
                ip = level in (socket.IPPROTO_IP, socket.IPPROTO_IPV6)
                if ip and len(data) >= _EXTENDED_ERR.size:
                    ident = _EXTENDED_ERR.unpack_from(data)[6]
            waiting = conn.waiting.pop(ident, None) if ident is not None else None
            if waiting is not None and at is not None:
                truth, names = waiting
                for name in names:
                    setattr(truth, name, at)
                truth.kernel_stamps += 1

    def _control(self) -> None:
        op, _args = self.control.recv()
        if op == "stop":
            self.running = False
            self.control.send(None)
        elif op == "truths":
            self.control.send([asdict(t) for t in self.truths])
        elif op == "reset":
            self.truths = []
            self.control.send(None)

    def serve(self) -> None:
        while self.running:
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.perf_counter())
            for key, _mask in self.sel.select(timeout):
                if key.data == "accept":
                    self._accept()
                elif key.data == "control":
                    self._control()
                else:
                    self._read(key.data)
            now = time.perf_counter()
            while self.timers and self.timers[0][0] <= now:
                _at, _seq, conn, truth, send = heapq.heappop(self.timers)
                self._send(conn, truth, send)


def _main(conn: Connection, core: int | None, behavior: dict[str, Any]) -> None:
    if core is not None:
        pin_to_core(core)
    server = TruthLoop(behavior, conn)
    # Nothing here lives in a cycle worth collecting over a bench run: no collector pauses.
    gc.collect()
    gc.freeze()
    gc.disable()
    conn.send(server.port)
    server.serve()


class TruthServer(ChildServer):
    """The truth server in its own process (own GIL, own core when there is one)."""

    def __init__(self, behavior: dict[str, Any], core: int | None = SIM_CORE) -> None:
        super().__init__(_main, (behavior,), core)

    def truths(self) -> list[Truth]:
        return [Truth(**t) for t in self._call("truths")]

    def timings(self) -> list[SimTiming]:
        return [t.timing() for t in self.truths()]
