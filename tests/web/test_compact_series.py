"""The compact per-probe series write exactly what prometheus_client's own metrics write."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from checker.web.compact_series import CompactCounter, CompactGauge, CompactHistogram
from checker.web.metrics import PROBE_LABELS, TTFT_BUCKETS, Metrics

VALUES = (0.01, 0.05, 0.07, 0.3, 3.0, 9.0, 100.0)


def _pair() -> tuple[CollectorRegistry, CollectorRegistry, list[Any], list[Any]]:
    theirs, ours = CollectorRegistry(auto_describe=True), CollectorRegistry(auto_describe=True)
    labels = [*PROBE_LABELS, "result"]
    client = [
        Histogram("h_seconds", "A histogram.", PROBE_LABELS, buckets=TTFT_BUCKETS, registry=theirs),
        Gauge("g", "A gauge.", PROBE_LABELS, registry=theirs),
        Counter("c", "A counter.", labels, registry=theirs),
    ]
    compact = [
        CompactHistogram(
            "h_seconds", "A histogram.", PROBE_LABELS, buckets=TTFT_BUCKETS, registry=ours
        ),
        CompactGauge("g", "A gauge.", PROBE_LABELS, registry=ours),
        CompactCounter("c", "A counter.", labels, registry=ours),
    ]
    return theirs, ours, client, compact


def test_exposition_is_byte_for_byte_prometheus_clients() -> None:
    theirs, ours, client, compact = _pair()
    for h, g, c in (client, compact):
        for v in VALUES:
            h.labels("one", "stream", "local").observe(v)
        h.labels("two", "models", "eu").observe(0.2)
        g.labels("one", "stream", "local").set(1)
        g.labels("two", "models", "eu").set(1.7e9)
        g.labels("three", "chat", "local")
        c.labels("one", "stream", "local", "ok").inc()
        c.labels("one", "stream", "local", "ok").inc(2.5)
        c.labels("one", "stream", "local", "timeout")
    assert generate_latest(ours) == generate_latest(theirs)
    for h, _g, _c in (client, compact):
        h.remove("one", "stream", "local")
    assert generate_latest(ours) == generate_latest(theirs)
    assert b"h_seconds_bucket" in generate_latest(ours)


def test_wrong_labels_negative_increments_and_missing_series_fail_as_in_the_client() -> None:
    _theirs, _ours, _client, (h, _g, c) = _pair()
    with pytest.raises(ValueError):
        h.labels("one", "stream")
    with pytest.raises(ValueError):
        c.labels("one", "stream", "local", "ok").inc(-1)
    with pytest.raises(KeyError):
        h.remove("nobody", "stream", "local")


def test_a_streaming_target_leaves_a_few_objects_for_the_collector() -> None:
    metrics = Metrics("local")
    before = len(gc.get_objects())
    for i in range(100):
        key = (f"t{i}", "stream", "local")
        for family in (metrics.latency, metrics.duration, metrics.ttft, metrics.ttfo):
            family.labels(*key).observe(0.5)
        for family in (metrics.connect, metrics.ttfb, metrics.itl, metrics.tps):
            family.labels(*key).observe(0.01)
        metrics.up.labels(*key).set(1)
        metrics.results.labels(*key, "ok").inc()
    # prometheus_client's own series left ~250 tracked objects per streaming target.
    assert (len(gc.get_objects()) - before) / 100 < 20
