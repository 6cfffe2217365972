"""Token honesty: does a route's reported completion usage fit the text it streamed? (pure)

Probes count the tokens of the generated text as they receive it (`counted_tokens`,
tiktoken's encoding for OpenAI models, o200k as a proxy for others) and a result is flagged
when reported / counted falls outside the band. Older rows without a count fall back to the
length of the text (`output_chars`); the text itself is never stored, so the number of
tokens it held is known only within a range: at most one token per character, at least one
per MAX_CHARS_PER_TOKEN characters. A result is flagged when its reported completion tokens
fall outside the configured band for every count in that range, i.e. when no honest
tokenizer could have reported them. Hidden reasoning tokens may or may not have been
streamed as text, so both readings are allowed. This catches gross over-counting (a relay
billing 2x on short answers) and nonsense reports; it cannot see a 20% over-count of
English prose.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

from checker.cost.counting import (
    MIN_TOKENS_FOR_RATIO,
    counted_usage_mismatch,
    estimate_tokens_from_chars,
)
from checker.digest.inputs import Usage
from checker.digest.models import TokenHonesty

__all__ = ["MAX_CHARS_PER_TOKEN", "token_honesty", "usage_out_of_band", "weighted_median"]

# The longest ordinary token, in characters: o200k/cl100k tokens of text average about
# four characters and, outside long whitespace runs, rarely exceed eight.
MAX_CHARS_PER_TOKEN = 8


def usage_out_of_band(usage: Usage, band: tuple[float, float]) -> bool | None:
    """True when no honest token count of the text fits the band; None if too small to judge.

    The text held between ceil(chars / MAX_CHARS_PER_TOKEN) and chars tokens; the reported
    visible tokens are completion minus any part of the hidden reasoning.
    """
    if usage.counted_tokens is not None:
        return counted_usage_mismatch(
            usage.completion_tokens, usage.reasoning_tokens, usage.counted_tokens, band
        )
    low, high = band
    chars = max(usage.output_chars, 0)
    reported_max = max(usage.completion_tokens, 0)
    reported_min = max(reported_max - max(usage.reasoning_tokens, 0), 0)
    if max(reported_max, chars) < MIN_TOKENS_FOR_RATIO:
        return None
    most_tokens = chars
    fewest_tokens = math.ceil(chars / MAX_CHARS_PER_TOKEN)
    over = reported_min > high * most_tokens
    under = reported_max < low * fewest_tokens
    return over or under


def weighted_median(values: Mapping[float, int]) -> float | None:
    """statistics.median of a list holding each value `n` times, without building it."""
    total = sum(values.values())
    if total <= 0:
        return None
    ordered = sorted((v, n) for v, n in values.items() if n > 0)
    wanted = (total - 1) // 2, total // 2  # the middle index (odd) or the two middle ones
    found: list[float] = []
    seen = 0
    for value, n in ordered:
        while len(found) < 2 and wanted[len(found)] < seen + n:
            found.append(value)
        seen += n
    low, high = found
    return low if total % 2 else (low + high) / 2


def token_honesty(
    usages: Sequence[Usage] | Mapping[Usage, int], band: tuple[float, float]
) -> TokenHonesty:
    """Checked and mismatched results; `usages` lists one Usage per result, or maps each
    distinct Usage to its number of results (usages repeat: same probe, same answer)."""
    counts = usages if isinstance(usages, Mapping) else Counter(usages)
    checked = mismatched = 0
    ratios: dict[float, int] = {}
    for usage, n in counts.items():
        verdict = usage_out_of_band(usage, band)
        if verdict is None or n <= 0:
            continue
        checked += n
        mismatched += n * verdict
        estimate = usage.counted_tokens or estimate_tokens_from_chars(usage.output_chars)
        if estimate > 0:
            ratio = usage.completion_tokens / estimate
            ratios[ratio] = ratios.get(ratio, 0) + n
    return TokenHonesty(checked, mismatched, weighted_median(ratios))
