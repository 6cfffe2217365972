"""What a probe is expected to use, in tokens, before it runs: for the cost a config will
cost per day (`checker validate`) and for the `probe_cost` ticket (a probe costing more
than 10x this: a reasoning model that ignored max_tokens, a relay billing wrongly).

Pure. Short prompts are counted at SHORT_PROMPT_TOKENS (the default prompts are about 20
tokens; chat templates add a few): the estimate errs high so that 10x it means trouble.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checker.config.schema import Target

__all__ = ["COST_ALERT_FACTOR", "SHORT_PROMPT_TOKENS", "expected_usage"]

SHORT_PROMPT_TOKENS = 40
COST_ALERT_FACTOR = 10.0  # probe_cost fires above this times the expected cost


def expected_usage(target: Target, probe: str) -> tuple[int, int] | None:
    """(prompt tokens, output tokens) one run of the probe should use; None when free."""
    from checker.probes.identity import QUESTIONS

    if probe in ("models", "http"):
        return None
    if probe == "prefill":
        return target.prefill_tokens, 1
    if probe == "cache":
        return 2 * target.cache_prefix_tokens, 2
    if probe == "identity":
        return len(QUESTIONS) * SHORT_PROMPT_TOKENS, len(QUESTIONS) * target.max_tokens
    return SHORT_PROMPT_TOKENS, target.max_tokens
