"""Prometheus metrics. Labels are bounded: target, probe, location, error kind, window; never
ids or URLs. Names follow blackbox_exporter's habits where it has one (duration of every
probe, last probe time, HTTP status, certificate expiry as a timestamp)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import Info as PromInfo

from checker import __version__
from checker.config.schema import Config
from checker.probes.base import ProbeResult
from checker.web.compact_series import CompactCounter, CompactGauge, CompactHistogram
from checker.web.metrics_scraped import ScrapedFigures

__all__ = [
    "CONNECT_BUCKETS",
    "LAG_BUCKETS",
    "LATENCY_BUCKETS",
    "PROBE_LABELS",
    "TPS_BUCKETS",
    "TTFB_BUCKETS",
    "TTFT_BUCKETS",
    "Metrics",
]

# No `_created` series: one more series per counter and histogram child that dashboards never
# use. The switch is process-wide in prometheus_client, so it is thrown here, once, before the
# first metric is built.
disable_created_metrics()

# LLM latencies span 50 ms health checks to minute-long reasoning streams.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)
TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 60)
TPS_BUCKETS = (1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5)
PROBE_LABELS = ("target", "probe", "location")
# Coarser than the others on purpose: each bucket is a series per target x probe x location,
# and at 500 targets every series costs exposition time; these ranges need fewer.
CONNECT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
# Headers come first: a few ms from a nearby gateway, seconds from a loaded non-streaming one.
TTFB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    def __init__(self, location: str = "local") -> None:
        # This node's location: a label on every series of what its own probes measured, so
        # a fleet's nodes scraped into one Prometheus stay apart. Figures the leader computes
        # from the database for the whole route (uptime, burn, budget) carry none.
        self.location = location
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        PromInfo("checker_build", "checker version.", registry=r).info({"version": __version__})

        # What this node's probes measured: one series per target x probe x location, stored
        # compactly (compact_series: one float array per histogram series instead of ~250
        # objects per streaming target, none of them left for the garbage collector to walk).
        def per_probe_histogram(
            name: str, doc: str, buckets: tuple[float, ...]
        ) -> CompactHistogram:
            return CompactHistogram(name, doc, PROBE_LABELS, buckets=buckets, registry=r)

        def per_probe_gauge(name: str, doc: str) -> CompactGauge:
            return CompactGauge(name, doc, PROBE_LABELS, registry=r)

        self.latency = per_probe_histogram(
            "checker_probe_latency_seconds", "End-of-response latency of a probe.", LATENCY_BUCKETS
        )
        self.duration = per_probe_histogram(
            "checker_probe_duration_seconds",
            "Wall time of a probe run, failed runs included (a timeout counts its full wait).",
            LATENCY_BUCKETS,
        )
        self.connect = per_probe_histogram(
            "checker_probe_connect_seconds",
            "TCP and TLS connect time of a probe that opened a new connection.",
            CONNECT_BUCKETS,
        )
        self.ttfb = per_probe_histogram(
            "checker_probe_ttfb_seconds", "Time to the response headers.", TTFB_BUCKETS
        )
        self.ttft = per_probe_histogram(
            "checker_probe_ttft_seconds", "Time to first generated token.", TTFT_BUCKETS
        )
        self.ttfo = per_probe_histogram(
            "checker_probe_ttfo_seconds",
            "Time to the first answer token (content, not reasoning).",
            TTFT_BUCKETS,
        )
        self.itl = per_probe_histogram(
            "checker_probe_itl_seconds",
            "Median inter-chunk gap of a stream after its first token.",
            ITL_BUCKETS,
        )
        self.tps = per_probe_histogram(
            "checker_probe_tokens_per_second", "Decode speed after the first token.", TPS_BUCKETS
        )
        self.healthy = Gauge(
            "checker_healthy", "1 when /healthz answers 200 (as of its last call).", registry=r
        )
        self.writer_failing = Gauge(
            "checker_writer_failing_seconds",
            "How long result writes have been failing (0 while they succeed).",
            registry=r,
        )
        self.node_leader = Gauge(
            "checker_node_leader",
            "1 while this node leads the fleet (evaluates alerts, delivers, sends the digest).",
            registry=r,
        )
        self.scheduler_idle = Gauge(
            "checker_scheduler_idle_seconds", "Seconds since a probe job last started.", registry=r
        )
        self.skipped = Counter(
            "checker_probe_skipped",
            "Probes not run: reason retry_after (a 429 hold), spend_cap, max_instances.",
            ["reason"],
            registry=r,
        )
        self.results = CompactCounter(
            "checker_probe_results",
            "Probe results by outcome (ok or an error kind).",
            [*PROBE_LABELS, "result"],
            registry=r,
        )
        self.up = per_probe_gauge("checker_probe_up", "1 when the last probe succeeded.")
        self.last_run = per_probe_gauge(
            "checker_probe_last_timestamp_seconds", "When the last probe run started (Unix time)."
        )
        self.status_code = per_probe_gauge(
            "checker_probe_http_status_code",
            "HTTP status of the last probe run; 0 when no response came.",
        )
        self.spend = CompactCounter(
            "checker_probe_spend_usd", "What probes cost, in USD.", ["target"], registry=r
        )
        self.usage_mismatch = CompactCounter(
            "checker_usage_mismatch",
            "Streams whose reported completion tokens disagree with the streamed text.",
            ["target"],
            registry=r,
        )
        self.uptime = CompactGauge(
            "checker_uptime_ratio", "Good / valid probes.", ["target", "window"], registry=r
        )
        self.probe_uptime = CompactGauge(
            "checker_probe_uptime_ratio",
            "Good / valid results of one probe of a target (never mixed with its other probes).",
            ["target", "probe", "window"],
            registry=r,
        )
        self.budget = CompactGauge(
            "checker_slo_error_budget_remaining_ratio",
            "Error budget left over the SLO window (negative when overspent).",
            ["target"],
            registry=r,
        )
        self.burn = CompactGauge(
            "checker_slo_burn_rate",
            "Error rate / (1 - objective).",
            ["target", "window"],
            registry=r,
        )
        self.lag = Histogram(
            "checker_scheduler_lag_seconds",
            "Actual probe start minus planned start.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.delivery_failures = Counter(
            "checker_notification_delivery_failures",
            "Failed notification delivery attempts.",
            registry=r,
        )
        self.reloads = Counter(
            "checker_config_reloads", "Config reloads by result.", ["result"], registry=r
        )
        self.writer_queue = Gauge(
            "checker_writer_queue_depth", "Results waiting to be written.", registry=r
        )
        self.outbox = Gauge(
            "checker_outbox_depth", "Notifications waiting for delivery.", registry=r
        )
        # Figures owned elsewhere (the writer's drop count, the config, the certificates).
        self.scraped = ScrapedFigures()
        r.register(self.scraped)
        # observe's children per (target, probe, location), by family (and result label).
        self._children: dict[tuple[str, str, str], dict[object, Any]] = {}

    def bind_queue(self, depth: Callable[[], float], dropped: Callable[[], float]) -> None:
        """Read at scrape time, so the figure is never stale."""
        self.writer_queue.set_function(depth)
        self.scraped.dropped = dropped

    def bind_targets(
        self, cfg: Callable[[], Config], cert_expiry: Callable[[], Mapping[str, datetime]]
    ) -> None:
        """Per-target figures read from the running config and the certificate watch at
        scrape time: a reload changes them at once, and a removed target's disappear."""
        self.scraped.cfg = cfg
        self.scraped.cert_expiry = cert_expiry

    def observe(self, r: ProbeResult, duration_s: float | None = None) -> None:
        """Record one result; `duration_s` is the run's wall time, for failures too (a
        timeout has no latency), and falls back to the latency when not measured."""
        key = (r.target, r.probe, r.location or self.location)
        # Each child is looked up once per key and kept: eleven `labels()` calls per probe
        # were ~4 % of its CPU. A child is still first asked for where it was before, so a
        # series appears with its first value and the exposition stays the same.
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = {}
        child = children.get

        def of(family: CompactHistogram | CompactGauge, *extra: str) -> Any:
            name = (family, *extra) if extra else family
            got = child(name)
            if got is None:
                got = children[name] = family.labels(*key, *extra)
            return got

        of(self.results, "ok" if r.ok else str(r.error)).inc()
        of(self.up).set(1 if r.ok else 0)
        of(self.last_run).set(r.started_at.timestamp())
        of(self.status_code).set(r.status or 0)
        if duration_s is None and r.latency_ms is not None:
            duration_s = r.latency_ms / 1000
        if duration_s is not None:
            of(self.duration).observe(duration_s)
        # The timing histograms hold successful runs only: an error page answers faster than
        # a real answer and would flatter them. Each probe is its own series.
        if r.ok:
            if r.connect_ms is not None:
                of(self.connect).observe(r.connect_ms / 1000)
            if r.ttfb_ms is not None:
                of(self.ttfb).observe(r.ttfb_ms / 1000)
            if r.latency_ms is not None:
                of(self.latency).observe(r.latency_ms / 1000)
            if r.ttft_ms is not None:
                of(self.ttft).observe(r.ttft_ms / 1000)
            if r.ttfo_ms is not None:
                of(self.ttfo).observe(r.ttfo_ms / 1000)
            if r.itl_p50_ms is not None:
                of(self.itl).observe(r.itl_p50_ms / 1000)
            if r.tokens_per_s is not None:
                of(self.tps).observe(r.tokens_per_s)
        if r.cost_usd:
            self.spend.labels(r.target).inc(r.cost_usd)

    def forget_target(self, target: str, probes: list[str]) -> None:
        """Drop series of a removed target, so dashboards do not show ghosts."""
        # Children kept for a removed series would write where no scrape looks.
        for key in [k for k in self._children if k[0] == target]:
            del self._children[key]
        per_probe = (
            *(self.latency, self.duration, self.connect, self.ttfb, self.ttft, self.ttfo),
            *(self.itl, self.tps, self.up, self.last_run, self.status_code),
        )
        for metric in per_probe:
            for p in probes:
                with contextlib.suppress(KeyError):
                    metric.remove(target, p, self.location)

    def render(self) -> bytes:
        return generate_latest(self.registry)
