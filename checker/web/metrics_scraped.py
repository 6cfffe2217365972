"""Series read when Prometheus scrapes, from figures other parts own: the writer's drop count,
each target's objective and compare group from the running config, certificate expiries.

Read at scrape time, never copied into gauges: the figures are never stale, a reload changes
them at once, and a removed target's series disappear with it (no ghosts on dashboards).
Every node exports them from its own config, so rules join on `target` with `max by`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from checker.config.schema import Config

__all__ = ["ScrapedFigures"]


class ScrapedFigures(Collector):
    def __init__(self) -> None:
        # Unbound until the service binds them: a bare registry (tests, `check`) exports a
        # drop count of 0 and no per-target series.
        self.dropped: Callable[[], float] = lambda: 0.0
        self.cfg: Callable[[], Config | None] = lambda: None
        self.cert_expiry: Callable[[], Mapping[str, datetime]] = dict

    def collect(self) -> Iterator[Metric]:
        # A counter: the writer's count only grows (a restart resets it, as rate() expects).
        yield CounterMetricFamily(
            "checker_writer_dropped",
            "Results dropped past the queue bound (storage.queue_max).",
            value=self.dropped(),
        )
        objective = GaugeMetricFamily(
            "checker_slo_objective",
            "The target's availability objective (slo.availability), for rules and dashboards.",
            labels=["target"],
        )
        info = InfoMetricFamily(
            "checker_target",
            "Each target's compare group (its `group`, else its model): routes of one model.",
            labels=["target"],
        )
        expiry = GaugeMetricFamily(
            "checker_cert_expiry_timestamp_seconds",
            "When the TLS certificate of an https target expires (Unix time), as last read.",
            labels=["target"],
        )
        cfg = self.cfg()
        if cfg is not None:
            known = self.cert_expiry()
            for t in cfg.targets:
                objective.add_metric([t.name], cfg.slo(t).availability)
                if (group := t.compare_group) is not None:  # an http target has no model
                    info.add_metric([t.name], {"group": group})
                if (when := known.get(t.name)) is not None:
                    expiry.add_metric([t.name], when.timestamp())
        yield objective
        yield info
        yield expiry
