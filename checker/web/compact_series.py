"""Per-probe Prometheus series stored compactly: one float array per histogram series, one
float per gauge or counter series, in one dict per metric.

prometheus_client builds, per labelled child, a metric object with its own dict and, per
bucket, a value object holding a float and a `threading.Lock`: about 250 objects and 30 KB
for a streaming target's eight histograms, and every one of them tracked by the garbage
collector (the full collections of a 5,000-target service walked over a million). Here a
histogram series is one `array('d')` (untracked by the collector: it holds no references)
and a gauge or counter series one float in its metric's dict; the exposition is the same
text prometheus_client writes (same names, label order, `le` spelling, samples in the
same order, no `_created`).

Only the event loop writes (probe results are observed there); scrapes render in a thread
and read a snapshot taken in one C call (`list(dict.items())`, `array.tolist()`), so no
lock is needed, as with prometheus_client a scrape may see a sum before its bucket.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = ["CompactCounter", "CompactGauge", "CompactHistogram"]

Key = tuple[str, ...]


class _Family(Collector):
    """A labelled metric registered with `registry`; its series live in `self._series`."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        registry.register(self)

    def _key(self, values: Sequence[object]) -> Key:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        return tuple(str(v) for v in values)

    def remove(self, *values: object) -> None:
        """Drop one series; KeyError when it does not exist (as prometheus_client)."""
        series: dict[Key, object] = self._series  # type: ignore[attr-defined]
        del series[self._key(values)]

    def describe(self) -> list[Metric]:
        # The names this collector owns, without reading its series (registry clash check).
        return [self._empty()]

    def _empty(self) -> Metric:
        raise NotImplementedError


class _HistogramChild:
    __slots__ = ("_bounds", "_values")

    def __init__(self, values: array[float], bounds: tuple[float, ...]) -> None:
        self._values = values
        self._bounds = bounds

    def observe(self, amount: float) -> None:
        values = self._values
        values[-1] += amount  # the sum; the buckets before it are not cumulative
        for i, bound in enumerate(self._bounds):
            if amount <= bound:
                values[i] += 1
                return


class CompactHistogram(_Family):
    """`labels(*values).observe(x)` as prometheus_client's Histogram."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        bounds = [float(b) for b in buckets]
        if bounds[-1] != math.inf:
            bounds.append(math.inf)
        self._bounds = tuple(bounds)
        self._le = tuple(floatToGoString(b) for b in bounds)
        self._zeros = array("d", [0.0] * (len(bounds) + 1))  # buckets, then the sum
        self._series: dict[Key, array[float]] = {}
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: object) -> _HistogramChild:
        key = self._key(values)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = array("d", self._zeros)
        return _HistogramChild(series, self._bounds)

    def _empty(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._empty()
        for key, series in list(self._series.items()):
            values = series.tolist()
            cumulative, buckets = 0.0, []
            for le, count in zip(self._le, values[:-1], strict=True):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(list(key), buckets, values[-1])
        yield family


class _ValueChild:
    __slots__ = ("_key", "_series")

    def __init__(self, series: dict[Key, float], key: Key) -> None:
        self._series = series
        self._key = key

    def set(self, value: float) -> None:
        self._series[self._key] = float(value)

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self._series[self._key] = self._series.get(self._key, 0.0) + amount


class CompactGauge(_Family):
    """`labels(*values).set(x)` as prometheus_client's Gauge."""

    _family_type: type[GaugeMetricFamily | CounterMetricFamily] = GaugeMetricFamily

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        *,
        registry: CollectorRegistry,
    ) -> None:
        self._series: dict[Key, float] = {}
        super().__init__(name, documentation, labelnames, registry)

    def labels(self, *values: object) -> _ValueChild:
        key = self._key(values)
        self._series.setdefault(key, 0.0)  # a series exists once asked for, as in the client
        return _ValueChild(self._series, key)

    def _empty(self) -> GaugeMetricFamily | CounterMetricFamily:
        return self._family_type(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = self._empty()
        for key, value in list(self._series.items()):
            family.add_metric(list(key), value)
        yield family


class CompactCounter(CompactGauge):
    """`labels(*values).inc(n)` as prometheus_client's Counter (samples `<name>_total`)."""

    _family_type = CounterMetricFamily
