"""Changes: a period against the same period a day and a week before (pure).

Routes against each other are checker.compare's job.

Changes compare the period with the same local wall-clock period one day and one week
earlier. Lower latency and TTFT are better, higher uptime and tokens/s are better; spend
going up or down is shown without a judgement.
"""

from __future__ import annotations

import math

from checker.digest.inputs import Figures
from checker.digest.models import Change, Direction, Verdict

__all__ = ["RELATIVE_SAME_BELOW", "UPTIME_SAME_BELOW", "changes", "compare"]

# Changes smaller than these are shown as "no change": noise, not news.
UPTIME_SAME_BELOW = 0.0005  # 0.05 percentage points

RELATIVE_SAME_BELOW = 0.05  # 5 %


def compare(
    metric: str, current: float | None, previous: float | None, higher_is_better: bool | None
) -> Change:
    """One change; `higher_is_better` None means no judgement (spend)."""
    if current is None or previous is None:
        return Change(metric, current, previous, None, None, None)
    if metric == "uptime":
        delta = current - previous
        same = abs(delta) < UPTIME_SAME_BELOW
    else:
        if previous == 0:
            delta = 0.0 if current == 0 else math.inf
        else:
            delta = (current - previous) / abs(previous)
        same = abs(delta) < RELATIVE_SAME_BELOW
    if same:
        return Change(metric, current, previous, "same", "same", delta)
    direction: Direction = "up" if current > previous else "down"
    if higher_is_better is None:
        verdict: Verdict = "neutral"
    else:
        verdict = "better" if (direction == "up") == higher_is_better else "worse"
    return Change(metric, current, previous, direction, verdict, delta)


def changes(
    now: Figures, then: Figures | None, spend_now: float, spend_then: float
) -> list[Change]:
    if then is None or then.results == 0:
        return []
    return [
        compare("uptime", now.uptime, then.uptime, True),
        compare("latency p50", now.latency_p50, then.latency_p50, False),
        compare("latency p95", now.latency_p95, then.latency_p95, False),
        compare("TTFT p50", now.ttft_p50, then.ttft_p50, False),
        compare("tokens/s", now.tokens_per_s_p50, then.tokens_per_s_p50, True),
        compare("spend", spend_now, spend_then, None),
    ]
