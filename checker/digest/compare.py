"""Comparisons: a period against the day and the week before, and routes against each other
when they serve the same model (pure).

Changes compare the period with the same local wall-clock period one day and one week
earlier. Lower latency and TTFT are better, higher uptime and tokens/s are better; spend
going up or down is shown without a judgement. Routes sharing a model are ranked by uptime,
then latency, then price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from checker.digest.inputs import Figures
from checker.digest.models import Change, Direction, GroupRow, ModelGroup, TargetDigest, Verdict

__all__ = ["RELATIVE_SAME_BELOW", "UPTIME_SAME_BELOW", "changes", "compare", "model_groups"]

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


def _best(values: dict[str, float | None], lowest: bool) -> set[str]:
    known = {k: v for k, v in values.items() if v is not None}
    if len(known) < 2:
        return set()
    target = min(known.values()) if lowest else max(known.values())
    return {k for k, v in known.items() if v == target}


def model_groups(
    targets: Sequence[TargetDigest], keys: Mapping[str, str | None]
) -> list[ModelGroup]:
    """Routes serving the same model, best first: uptime, then latency, then price."""
    by_key: dict[str, list[TargetDigest]] = {}
    for t in targets:
        key = keys.get(t.name)
        if key:
            by_key.setdefault(key, []).append(t)
    groups = []
    for key, members in sorted(by_key.items()):
        if len(members) < 2:
            continue
        best = {
            "uptime": _best({m.name: m.uptime for m in members}, lowest=False),
            "latency": _best({m.name: m.latency_p50 for m in members}, lowest=True),
            "ttft": _best({m.name: m.ttft_p50 for m in members}, lowest=True),
            "price": _best({m.name: m.workload_usd for m in members}, lowest=True),
        }

        def order(m: TargetDigest) -> tuple[float, float, float, str]:
            return (
                -(m.uptime if m.uptime is not None else -1.0),
                m.latency_p50 if m.latency_p50 is not None else math.inf,
                m.workload_usd if m.workload_usd is not None else math.inf,
                m.name,
            )

        rows = [
            GroupRow(
                target=m.name,
                uptime=m.uptime,
                latency_p50=m.latency_p50,
                ttft_p50=m.ttft_p50,
                workload_usd=m.workload_usd,
                best=frozenset(col for col, names in best.items() if m.name in names),
            )
            for m in sorted(members, key=order)
        ]
        groups.append(ModelGroup(key, rows))
    return groups
