"""A mergeable quantile sketch with fixed logarithmic buckets (pure).

Error bound: every positive value v lands in bucket i = ceil(log_gamma(v)), the interval
(gamma^(i-1), gamma^i], and is reported as that bucket's midpoint in relative terms,
2 * gamma^i / (gamma + 1). The reported value is therefore within a relative error of
ALPHA = (gamma - 1) / (gamma + 1) of the true value: about 0.99% with gamma = 1.02.

`quantile(q)` returns the value of the element of rank floor(q * (count - 1)) in sorted
order (the "lower" percentile), within ALPHA. Because the buckets are fixed, merging two
sketches (adding their counts) gives exactly the sketch of the union, so hourly sketches
add up to daily or monthly ones without any extra error.

Values <= 0 (and NaN) are counted in a zero bucket and reported as 0.0: latencies, TTFT
and decode speeds are positive, and a zero is a degenerate measurement.

JSON form: {"o": first bucket index, "w": "B" | "H" | "I", "b": base64 of the counts of
buckets o, o+1, ... as little-endian unsigned 8/16/32-bit integers, "z": zeros} ("z" only
when non-zero, all keys absent for an empty sketch). A dense run rather than an
{index: count} map, because a status over 200 targets x 24 hours merges ~15,000 sketches:
decoding a run is one C call and merging it one C-level slice addition, where a map costs
a Python step per bucket (measured: ~5x faster, and ~3x smaller on disk).

Merging many stored forms (`merge_json`, what status and the digest do thousands of times)
adds them as one big Python integer holding a 64-bit lane per bucket: a run is widened to
64-bit lanes by strided byte copies, read with int.from_bytes and added at its offset, all
in C, where adding it bucket by bucket allocated a Python int per bucket (2.7 us against
7.4 us per merge, `process_time`, 100-bucket sketches). A count would need 2**64 results
to carry into the next lane. The lanes are folded into the bucket list when the sketch is
next read or changed otherwise.
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from binascii import a2b_base64
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from operator import add
from typing import Any

GAMMA = 1.02
ALPHA = (GAMMA - 1) / (GAMMA + 1)
_LOG_GAMMA = math.log(GAMMA)
_WIDTHS = (("B", 0xFF), ("H", 0xFFFF), ("I", 0xFFFFFFFF))
_BIG_ENDIAN = sys.byteorder == "big"
_LANE = 8  # bytes per bucket in the merge accumulator
_WIDTH_BYTES = {"B": 1, "H": 2, "I": 4}


def _encode(counts: Sequence[int]) -> tuple[str, str]:
    top = max(counts)
    code = next((code for code, limit in _WIDTHS if top <= limit), None)
    if code is None:
        raise OverflowError("a bucket count exceeds 2**32 - 1")
    packed = array(code, counts)
    if _BIG_ENDIAN:  # pragma: no cover - stored form is little-endian everywhere
        packed.byteswap()
    return code, base64.b64encode(packed.tobytes()).decode("ascii")


def _lanes(code: str, text: str) -> int:
    """A stored run as one integer with a 64-bit little-endian lane per bucket."""
    raw = a2b_base64(text)  # base64.b64decode without its Python-level argument checks
    if code == "B":  # the usual width: one strided copy
        wide = bytearray(len(raw) * _LANE)
        wide[::_LANE] = raw
        return int.from_bytes(wide, "little")
    width = _WIDTH_BYTES[code]
    wide = bytearray(len(raw) // width * _LANE)
    for byte in range(width):  # stored little-endian: byte j of each count to byte j of a lane
        wide[byte::_LANE] = raw[byte::width]
    return int.from_bytes(wide, "little")


class Sketch:
    """Counts per log bucket: add, merge, quantile, count, to_json/from_json."""

    __slots__ = ("_count", "_counts", "_lanes", "_lanes_offset", "_offset", "_zero")

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._offset = 0
        self._counts: list[int] = []  # _counts[i] counts bucket _offset + i
        self._zero = 0
        self._count = 0
        # Merged stored runs not yet folded into _counts: lane i counts bucket
        # _lanes_offset + i (see the module docstring); their total is not in _count yet.
        self._lanes = 0
        self._lanes_offset = 0
        self.extend(values)

    def _settle(self) -> None:
        """Fold the merge accumulator into the bucket list."""
        if not self._lanes:
            return
        lanes, self._lanes = self._lanes, 0
        counts = array("Q")
        counts.frombytes(lanes.to_bytes((lanes.bit_length() + 63) // 64 * _LANE, "little"))
        if _BIG_ENDIAN:  # pragma: no cover
            counts.byteswap()
        if self._counts:
            self._merge_run(self._lanes_offset, counts)
        else:
            self._offset, self._counts = self._lanes_offset, counts.tolist()
        self._count += sum(counts)

    @property
    def count(self) -> int:
        self._settle()
        return self._count

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sketch):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __repr__(self) -> str:
        self._settle()
        return f"Sketch(count={self._count}, buckets={len(self._counts)})"

    def _cover(self, low: int, high: int) -> None:
        """Make bucket indexes low..high (inclusive) addressable."""
        if not self._counts:
            self._offset = low
            self._counts = [0] * (high - low + 1)
            return
        if low < self._offset:
            self._counts[0:0] = [0] * (self._offset - low)
            self._offset = low
        top = self._offset + len(self._counts) - 1
        if high > top:
            self._counts.extend([0] * (high - top))

    def add(self, value: float, n: int = 1) -> None:
        if n <= 0:
            return
        self._settle()
        self._count += n
        if value > 0.0:
            key = math.ceil(math.log(value) / _LOG_GAMMA)
            index = key - self._offset
            if not self._counts or index < 0 or index >= len(self._counts):
                self._cover(key, key)
                index = key - self._offset
            self._counts[index] += n
        else:
            self._zero += n

    def extend(self, values: Iterable[float]) -> None:
        """Add many values: bucket keys computed in one pass and counted in C."""
        self._settle()
        log, ceil, log_gamma = math.log, math.ceil, _LOG_GAMMA
        keys: list[int] = []
        zero = 0
        for v in values:
            if v > 0.0:
                keys.append(ceil(log(v) / log_gamma))
            else:
                zero += 1
        if keys:
            counted = Counter(keys)
            low = min(counted)
            run = [0] * (max(counted) - low + 1)
            for key, n in counted.items():
                run[key - low] = n
            self._merge_run(low, run)
        self._zero += zero
        self._count += len(keys) + zero

    def _merge_run(self, offset: int, counts: Sequence[int]) -> None:
        if not counts:
            return
        self._cover(offset, offset + len(counts) - 1)
        start = offset - self._offset
        end = start + len(counts)
        self._counts[start:end] = map(add, self._counts[start:end], counts)

    def merge(self, other: Sketch) -> Sketch:
        """Add `other`'s counts into this sketch (in place); returns self for chaining."""
        self._settle()
        other._settle()
        self._merge_run(other._offset, other._counts)
        self._zero += other._zero
        self._count += other._count
        return self

    def merge_json(self, data: Mapping[str, Any] | None) -> Sketch:
        """Merge a stored JSON form directly, without building an intermediate Sketch."""
        return self.merge_all((data,))

    def merge_all(self, docs: Iterable[Mapping[str, Any] | None]) -> Sketch:
        """Merge many stored JSON forms (None or {} for empty ones) in one loop."""
        lanes, base, zero = self._lanes, self._lanes_offset, 0
        for data in docs:
            if not data:
                continue
            zero += data.get("z", 0)
            text = data.get("b")
            if text is None:
                continue
            run, offset = _lanes(data["w"], text), data["o"]
            if not lanes:
                lanes, base = run, offset
            elif offset >= base:
                lanes += run << (64 * (offset - base))
            else:
                lanes = (lanes << (64 * (base - offset))) + run
                base = offset
        self._lanes, self._lanes_offset = lanes, base
        self._zero += zero
        self._count += zero
        return self

    def quantile(self, q: float) -> float | None:
        """The lower q-quantile (0 <= q <= 1) within relative error ALPHA; None when empty."""
        self._settle()
        if self._count == 0:
            return None
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {q}")
        rank = math.floor(q * (self._count - 1))
        if rank < self._zero:
            return 0.0
        # The first bucket whose running total passes the rank (accumulate and bisect run
        # in C: a Python loop over a month's few hundred buckets cost ~80 us per call).
        index = bisect_right(list(accumulate(self._counts)), rank - self._zero)
        return 2.0 * GAMMA ** (self._offset + index) / (GAMMA + 1.0)

    def to_json(self) -> dict[str, Any]:
        self._settle()
        counts = self._counts
        first = next((i for i, n in enumerate(counts) if n), None)
        out: dict[str, Any] = {}
        if first is not None:
            last = len(counts) - next(i for i, n in enumerate(reversed(counts)) if n)
            code, text = _encode(counts[first:last])
            out = {"o": self._offset + first, "w": code, "b": text}
        if self._zero:
            out["z"] = self._zero
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Sketch:
        return cls().merge_json(data)
