"""Read what a comparison needs and build its view: status figures per route for one
probe, raw TTFT and usage samples, and prices (the shell around checker.compare.view)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from checker.compare.view import CACHE_RUNS, CompareView, RouteInputs, build_view, usage_ratio
from checker.config.schema import Config, Target
from checker.cost.prices import PriceBook
from checker.store.plan import as_utc
from checker.store.queries.compare import cache_runs, route_samples
from checker.store.queries.status import status
from checker.units import parse_window

__all__ = ["DEFAULT_PROBE", "compare_routes", "compared_targets"]

DEFAULT_PROBE = "stream"


def compared_targets(cfg: Config, probe: str, group: str | None = None) -> list[Target]:
    """Targets that run `probe` and have a group (their `group:` or model)."""
    return [
        t
        for t in cfg.targets
        if probe in t.probe_names
        and t.compare_group is not None
        and (group is None or t.compare_group == group)
    ]


def compare_routes(
    engine: Engine,
    cfg: Config,
    now: datetime,
    window: str = "24h",
    probe: str = DEFAULT_PROBE,
    group: str | None = None,
    book: PriceBook | None = None,
) -> CompareView:
    """The comparison over the `window` ending at `now` (ValueError for a bad window)."""
    now = as_utc(now)
    seconds = parse_window(window, cfg.storage.rollup_retention)
    targets = compared_targets(cfg, probe, group)
    names = [t.name for t in targets]
    book = book or PriceBook(cfg)
    rows = status(
        engine,
        names,
        now,
        windows=(window,),
        main_window=window,
        count_rate_limited={t.name: cfg.slo(t).count_rate_limited for t in targets},
        with_last=False,
    )
    samples = route_samples(engine, names, probe, now - timedelta(seconds=seconds), now)
    caching = cache_runs(engine, [t.name for t in targets if "cache" in t.probe_names], CACHE_RUNS)
    workload = cfg.digest.reference_workload
    inputs = []
    for t, row in zip(targets, rows, strict=True):
        figures = row.probes.get(probe)
        mine = samples[t.name]
        ratio = usage_ratio(mine.usage)
        price = book.price_for(t, now)
        inputs.append(
            RouteInputs(
                target=t.name,
                group=t.compare_group or "",
                reference=t.reference,
                n=figures.results if figures else 0,
                valid=figures.valid if figures else 0,
                good=figures.good if figures else 0,
                errors=figures.errors if figures else {},
                ttft_ms=figures.ttft_ms if figures else {},
                latency_ms=figures.latency_ms if figures else {},
                ttfo_ms=figures.ttfo_ms if figures else {},
                itl_ms=figures.itl_ms if figures else {},
                tokens_per_s_p50=figures.tokens_per_s_p50 if figures else None,
                ttft_samples=mine.ttft_ms,
                cache_runs=caching.get(t.name),
                usage_ratio=ratio,
                usage_samples=len(mine.usage),
                output_per_mtok=price.output_per_mtok if price else None,
                workload_usd_per_month=book.workload_cost(
                    t,
                    workload.input_tokens_per_month,
                    round(workload.output_tokens_per_month * (ratio if ratio else 1.0)),
                    workload.cached_input_share,
                    at=now,
                ),
            )
        )
    band = (cfg.digest.usage_ratio_band[0], cfg.digest.usage_ratio_band[1])
    return build_view(window, probe, inputs, band, only_group=group)
