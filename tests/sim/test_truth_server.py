"""bench.truth_server, the fidelity bench's ground truth, answering the checker's real probe.

Its loop runs in a thread here (the bench gives it a process of its own): what is tested
is that it speaks enough HTTP for the probe and that its stamps are the kernel's, ordered
and consistent with what the checker read over the same loopback.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from multiprocessing import Pipe
from typing import Any

import pytest

from bench.fidelity_clients import checker_probe, fidelity_config
from bench.truth_server import Truth, TruthLoop
from checker.probes.transport.pool import ClientPool

BEHAVIOR = {"ttft_ms": 40.0, "inter_token_ms": 10.0, "completion_tokens": 3}


class ThreadedTruth:
    """The truth server's loop on a thread, with the same control calls as TruthServer."""

    def __init__(self, behavior: dict[str, Any]) -> None:
        self._conn, child = Pipe()
        self._server = TruthLoop(behavior, child)
        self._thread = threading.Thread(target=self._server.serve, daemon=True)
        self._thread.start()

    def url(self, route: str) -> str:
        return f"http://127.0.0.1:{self._server.port}/{route}/v1"

    def truths(self) -> list[Truth]:
        self._conn.send(("truths", None))
        return [Truth(**t) for t in self._conn.recv()]

    def stop(self) -> None:
        self._conn.send(("stop", None))
        self._conn.recv()
        self._thread.join(timeout=5)


@pytest.fixture
def truth() -> Iterator[ThreadedTruth]:
    server = ThreadedTruth(BEHAVIOR)
    yield server
    server.stop()


async def test_the_checker_probe_reads_its_stream_and_its_stamps_are_the_kernels(
    truth: ThreadedTruth,
) -> None:
    cfg = fidelity_config(truth, 2)  # type: ignore[arg-type]  # it reads only url()
    async with ClientPool(cfg) as pool:
        probe = checker_probe(cfg, pool)
        readings = [await probe(0), await probe(1)]
    truths = truth.truths()
    assert [t.route for t in truths] == ["w0", "w1"]
    for reading, t in zip(readings, truths, strict=True):
        assert t.tokens_sent == 3
        assert t.headers_sent and t.first_token_sent and t.last_byte_sent
        assert t.received < t.headers_sent < t.first_token_sent < t.last_byte_sent
        # Tokens are sent no earlier than their deadline after the request arrived.
        assert (t.first_token_sent - t.received) * 1000 >= BEHAVIOR["ttft_ms"]
        if sys.platform == "linux":
            # Headers, first token and end: all three stamped by the kernel on transmit.
            assert (t.kernel_stamps, t.user_stamps) == (3, 0)
        # The checker's interval spans the server's plus two trips through loopback: never
        # shorter, and (generous, for a loaded machine) not 50 ms longer.
        truth_ttft = (t.first_token_sent - t.received) * 1000
        assert reading.ttft_ms is not None
        assert truth_ttft <= reading.ttft_ms < truth_ttft + 50
