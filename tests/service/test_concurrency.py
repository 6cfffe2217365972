"""The concurrency limit follows rate x probe duration (pure arithmetic, hypothesis)."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.config.schema import Config
from checker.service.concurrency import (
    HEADROOM,
    concurrency_limit,
    derived_limit,
    in_flight_at_worst,
    local_probes,
    shortfall,
)

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (interval s, timeout s, probes, locations: None = everywhere, else only "west")
target = st.tuples(
    st.sampled_from([0.5, 1.0, 6.0, 30.0, 60.0, 300.0]),
    st.sampled_from([0.25, 1.0, 5.0, 10.0, 30.0, 120.0]),
    st.sampled_from([["stream"], ["models", "stream"], ["models"]]),
    st.booleans(),
)


def config(targets: list[tuple[float, float, list[str], bool]], **scheduler: Any) -> Config:
    return Config.model_validate(
        {
            "location": "east",
            "targets": [
                {
                    "name": f"t{i}",
                    "kind": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "model": "m",
                    "probes": probes,
                    "interval": interval,
                    "timeout": timeout,
                    **({"locations": ["west"]} if elsewhere else {}),
                }
                for i, (interval, timeout, probes, elsewhere) in enumerate(targets)
            ],
            "scheduler": scheduler,
        }
    )


def test_twenty_thousand_a_minute_of_one_second_probes_need_334_slots() -> None:
    # 1,000 targets every 3 s = 20,000 probes/min; each run up to 1 s: 333.3 at once.
    cfg = config([(3.0, 1.0, ["stream"], False)] * 1000)
    assert math.isclose(in_flight_at_worst(cfg), 1000 / 3)
    assert derived_limit(cfg) == math.ceil(1000 / 3 * HEADROOM) == concurrency_limit(cfg)
    short = shortfall(config([(3.0, 1.0, ["stream"], False)] * 1000, max_concurrency=200))
    assert short is not None and math.isclose(short.per_minute, 20_000)
    assert math.isclose(short.mean_duration_s, 1.0)
    assert str(short).startswith(
        "scheduler.max_concurrency 200 is below the 334 probes that can be in flight at once "
        "at 20,000 probes/min x 1 s"
    )


@QUICK
@given(st.lists(target, min_size=1, max_size=12))
def test_in_flight_is_rate_times_duration_and_at_most_one_run_per_job(
    targets: list[tuple[float, float, list[str], bool]],
) -> None:
    cfg = config(targets)
    jobs = list(local_probes(cfg))
    here = [t for t in targets if not t[3]]
    assert len(jobs) == sum(len(t[2]) for t in here)  # other locations' jobs do not count
    needed = in_flight_at_worst(cfg)
    # Each job: its rate (1 / interval) x its duration (the timeout), but never more than
    # one run of it at a time (APScheduler starts a job only after its last run ended).
    expected = sum(len(p) * min(timeout / interval, 1.0) for interval, timeout, p, _ in here)
    assert math.isclose(needed, expected, abs_tol=1e-9)
    assert needed <= len(jobs) + 1e-9
    limit = derived_limit(cfg)
    assert limit >= 1 and limit >= needed * HEADROOM - 1e-9
    assert limit <= max(1, needed * HEADROOM + 1)
    # The derived limit never warns; an explicit one warns exactly when it is too low.
    assert shortfall(cfg) is None
    for explicit in (1, limit, max(1, math.floor(needed))):
        short = shortfall(cfg.model_copy(update={"scheduler": cfg.scheduler.model_copy(
            update={"max_concurrency": explicit})}))  # fmt: skip
        assert (short is not None) == (explicit < math.ceil(needed - 1e-9))
        if short is not None:
            assert str(short).startswith(f"scheduler.max_concurrency {explicit:,} is below")


@QUICK
@given(st.lists(target, min_size=1, max_size=8), target)
def test_more_targets_or_longer_timeouts_never_need_fewer_slots(
    targets: list[tuple[float, float, list[str], bool]],
    extra: tuple[float, float, list[str], bool],
) -> None:
    before = in_flight_at_worst(config(targets))
    assert in_flight_at_worst(config([*targets, extra])) >= before - 1e-9
    slower = [(i, t * 2, p, e) for i, t, p, e in targets]
    assert in_flight_at_worst(config(slower)) >= before - 1e-9
    assert derived_limit(config([*targets, extra])) >= derived_limit(config(targets))
