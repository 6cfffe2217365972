"""A mergeable quantile sketch with fixed logarithmic buckets (pure).

Error bound: every positive value v lands in bucket i = ceil(log_gamma(v)), the interval
(gamma^(i-1), gamma^i], and is reported as that bucket's midpoint in relative terms,
2 * gamma^i / (gamma + 1). The reported value is therefore within a relative error of
ALPHA = (gamma - 1) / (gamma + 1) of the true value: about 0.99% with gamma = 1.02.

`quantile(q)` returns the value of the element of rank floor(q * (count - 1)) in sorted
order (the "lower" percentile), within ALPHA. Because the buckets are fixed, merging two
sketches (adding their counts) gives exactly the sketch of the union, so hourly sketches
add up to daily or monthly ones without any extra error.

Values <= 0 are counted in a zero bucket and reported as 0.0 (latencies, TTFT and decode
speeds are positive; a zero is a degenerate measurement, not a distribution to resolve).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

GAMMA = 1.02
ALPHA = (GAMMA - 1) / (GAMMA + 1)
_LOG_GAMMA = math.log(GAMMA)
_ZERO_KEY = "z"


class Sketch:
    """Counts per log bucket; add, merge, quantile. JSON form: {"<index>": count, "z": n}."""

    __slots__ = ("_buckets", "_count", "_zero")

    def __init__(self, values: Iterable[float] = ()) -> None:
        self._buckets: dict[int, int] = {}
        self._zero = 0
        self._count = 0
        for v in values:
            self.add(v)

    @property
    def count(self) -> int:
        return self._count

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sketch):
            return NotImplemented
        return self._zero == other._zero and self._buckets == other._buckets

    def __repr__(self) -> str:
        return f"Sketch(count={self._count}, buckets={len(self._buckets)})"

    def add(self, value: float, n: int = 1) -> None:
        if n <= 0:
            return
        self._count += n
        if value > 0.0:
            key = math.ceil(math.log(value) / _LOG_GAMMA)
            self._buckets[key] = self._buckets.get(key, 0) + n
        else:
            # NaN also lands here: a missing figure must not poison a distribution.
            self._zero += n

    def merge(self, other: Sketch) -> Sketch:
        """Add `other`'s counts into this sketch (in place); returns self for chaining."""
        buckets = self._buckets
        for key, n in other._buckets.items():
            buckets[key] = buckets.get(key, 0) + n
        self._zero += other._zero
        self._count += other._count
        return self

    def merge_json(self, data: Mapping[str, int] | None) -> Sketch:
        """Merge a stored JSON form directly, without building an intermediate Sketch."""
        if not data:
            return self
        buckets = self._buckets
        for key, n in data.items():
            if key == _ZERO_KEY:
                self._zero += n
            else:
                k = int(key)
                buckets[k] = buckets.get(k, 0) + n
            self._count += n
        return self

    def quantile(self, q: float) -> float | None:
        """The lower q-quantile (0 <= q <= 1) within relative error ALPHA; None when empty."""
        if self._count == 0:
            return None
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {q}")
        rank = math.floor(q * (self._count - 1))
        seen = self._zero
        if rank < seen:
            return 0.0
        for key in sorted(self._buckets):
            seen += self._buckets[key]
            if rank < seen:
                return 2.0 * GAMMA**key / (GAMMA + 1.0)
        raise AssertionError("unreachable: counts are consistent")  # pragma: no cover

    def to_json(self) -> dict[str, int]:
        out = {str(key): n for key, n in self._buckets.items()}
        if self._zero:
            out[_ZERO_KEY] = self._zero
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, int] | None) -> Sketch:
        return cls().merge_json(data)
