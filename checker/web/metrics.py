"""Prometheus metrics. Labels are bounded: target, probe, error kind, window; never ids or URLs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import Info as PromInfo

from checker import __version__
from checker.probes.base import ProbeResult

__all__ = ["LAG_BUCKETS", "LATENCY_BUCKETS", "TPS_BUCKETS", "TTFT_BUCKETS", "Metrics"]

# LLM latencies span 50 ms health checks to minute-long reasoning streams.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60, 120)
TTFT_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 60)
TPS_BUCKETS = (1, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000)
ITL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1, 2, 5)
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
        self.latency = Histogram(
            "checker_probe_latency_seconds",
            "End-of-response latency of a probe.",
            ["target", "probe", "location"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "checker_probe_ttft_seconds",
            "Time to first generated token.",
            ["target", "probe", "location"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.ttfo = Histogram(
            "checker_probe_ttfo_seconds",
            "Time to the first answer token (content, not reasoning).",
            ["target", "probe", "location"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.itl = Histogram(
            "checker_probe_itl_seconds",
            "Median inter-chunk gap of a stream after its first token.",
            ["target", "probe", "location"],
            buckets=ITL_BUCKETS,
            registry=r,
        )
        self.tps = Histogram(
            "checker_probe_tokens_per_second",
            "Decode speed after the first token.",
            ["target", "probe", "location"],
            buckets=TPS_BUCKETS,
            registry=r,
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
        self.results = Counter(
            "checker_probe_results",
            "Probe results by outcome (ok or an error kind).",
            ["target", "probe", "location", "result"],
            registry=r,
        )
        self.up = Gauge(
            "checker_probe_up",
            "1 when the last probe succeeded.",
            ["target", "probe", "location"],
            registry=r,
        )
        self.spend = Counter(
            "checker_probe_spend_usd", "What probes cost, in USD.", ["target"], registry=r
        )
        self.usage_mismatch = Counter(
            "checker_usage_mismatch",
            "Streams whose reported completion tokens disagree with the streamed text.",
            ["target"],
            registry=r,
        )
        self.uptime = Gauge(
            "checker_uptime_ratio", "Good / valid probes.", ["target", "window"], registry=r
        )
        self.probe_uptime = Gauge(
            "checker_probe_uptime_ratio",
            "Good / valid results of one probe of a target (never mixed with its other probes).",
            ["target", "probe", "window"],
            registry=r,
        )
        self.budget = Gauge(
            "checker_slo_error_budget_remaining_ratio",
            "Error budget left over the SLO window (negative when overspent).",
            ["target"],
            registry=r,
        )
        self.burn = Gauge(
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
        self.writer_dropped = Gauge(
            "checker_writer_dropped", "Results dropped past the queue bound.", registry=r
        )
        self.outbox = Gauge(
            "checker_outbox_depth", "Notifications waiting for delivery.", registry=r
        )

    def bind_queue(self, depth: Callable[[], float], dropped: Callable[[], float]) -> None:
        """Read at scrape time, so the figure is never stale."""
        self.writer_queue.set_function(depth)
        self.writer_dropped.set_function(dropped)

    def observe(self, r: ProbeResult) -> None:
        key = (r.target, r.probe, r.location or self.location)
        self.results.labels(*key, "ok" if r.ok else str(r.error)).inc()
        self.up.labels(*key).set(1 if r.ok else 0)
        if r.ok and r.latency_ms is not None:
            self.latency.labels(*key).observe(r.latency_ms / 1000)
        if r.ok and r.ttft_ms is not None:
            self.ttft.labels(*key).observe(r.ttft_ms / 1000)
        if r.ok and r.ttfo_ms is not None:
            self.ttfo.labels(*key).observe(r.ttfo_ms / 1000)
        if r.ok and r.itl_p50_ms is not None:
            self.itl.labels(*key).observe(r.itl_p50_ms / 1000)
        if r.ok and r.tokens_per_s is not None:
            self.tps.labels(*key).observe(r.tokens_per_s)
        if r.cost_usd:
            self.spend.labels(r.target).inc(r.cost_usd)

    def forget_target(self, target: str, probes: list[str]) -> None:
        """Drop series of a removed target, so dashboards do not show ghosts."""
        for metric in (self.latency, self.ttft, self.ttfo, self.itl, self.tps, self.up):
            for p in probes:
                with contextlib.suppress(KeyError):
                    metric.remove(target, p, self.location)

    def render(self) -> bytes:
        return generate_latest(self.registry)
