"""After each probe, before it is stored: its cost, its counted tokens, its state change.

The cost goes onto the target's spend (accounting.py); a change between passing and
failing is logged once, not once per probe.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from checker.config.schema import Target
from checker.cost.counting import counted_usage_mismatch
from checker.cost.tokens import count_output_tokens
from checker.probes.base import ProbeResult
from checker.service.accounting import Accounting, TargetRuntime
from checker.web.metrics import Metrics

if TYPE_CHECKING:  # genai_prices takes ~30 ms to import; the service loads it in a thread
    from checker.cost.prices import PriceBook

__all__ = ["log_transition", "settle"]

# The service's logger: these lines are the service's per-target story.
log = logging.getLogger("checker.service")


def settle(
    target: Target,
    result: ProbeResult,
    *,
    prices: PriceBook,
    accounting: Accounting,
    metrics: Metrics,
    usage_ratio_band: tuple[float, float],
    hold_max_s: float = 600.0,
) -> None:
    """Price the result (unless the probe did), count its output tokens, charge its cost."""
    if result.cost_usd is None and result.prompt_tokens is not None:
        result.cost_usd = prices.cost_of_result(target, result)
        warmup = result.warmup
        if warmup is not None and warmup.prompt_tokens is not None and result.cost_usd is not None:
            first = prices.cost_of_result(target, warmup)
            result.cost_usd += first or 0.0
    count_output_tokens(result, target)
    mismatch = counted_usage_mismatch(
        result.completion_tokens,
        result.reasoning_tokens,
        result.counted_tokens,
        usage_ratio_band,
    )
    if mismatch:
        metrics.usage_mismatch.labels(target.name).inc()
    accounting.charge(target, result, hold_max_s)


def log_transition(state: TargetRuntime, target: Target, result: ProbeResult) -> None:
    """One line per state change, not per probe."""
    before = state.last_ok.get(result.probe)
    state.last_ok[result.probe] = result.ok
    if before is None and result.ok:
        return
    if before is not False and not result.ok:
        log.warning(
            "%s %s: failing: %s%s",
            target.name,
            result.probe,
            result.error,
            f" ({result.detail})" if result.detail else "",
        )
    elif before is False and result.ok:
        log.info("%s %s: recovered", target.name, result.probe)
