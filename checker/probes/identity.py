"""The `identity` probe: a few deterministic questions at temperature 0 whose normalized
answers, hashed, are the route's signature. The same model behind a route gives the same
signature run after run; another model, or a quantized one, usually does not. The `drift`
rule compares it with the route's accepted baseline (`checker baseline`).

Normalizing keeps what a model decides and drops what a tokenizer or a relay may vary:
surrounding whitespace, case, and trailing punctuation.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING

import httpx

from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.chat import Dialect, Redact, ask, judge

if TYPE_CHECKING:
    from checker.config.schema import Target

__all__ = ["QUESTIONS", "normalize", "probe_identity", "signature"]

QUESTIONS: tuple[str, ...] = (
    "Repeat exactly, with nothing else: zebra-7 quartz MAPLE",
    "What is 123 * 7? Reply with the number only.",
    'Reply with the JSON object {"a": 1, "b": [2, 3]} written without any spaces, and '
    "nothing else.",
    "Name the chemical symbol of gold. Reply with the symbol only.",
)


def normalize(answer: str) -> str:
    return re.sub(r"\s+", " ", answer).strip().strip(".!").lower()


def signature(answers: list[str]) -> str:
    """16 hex digits of SHA-256 over the normalized answers, in question order."""
    text = "\x1f".join(normalize(a) for a in answers)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def probe_identity(
    dialect: Dialect,
    target: Target,
    client: httpx.AsyncClient,
    result: ProbeResult,
    redact: Redact,
) -> None:
    answers: list[str] = []
    latency = 0.0
    prompt_tokens = completion_tokens = 0
    for question in QUESTIONS:
        step = ProbeResult(target=result.target, probe=result.probe, location=result.location)
        answer = await ask(dialect, target, client, step, redact, question, temperature=0.0)
        result.status = step.status
        result.model = result.model or step.model
        result.system_fingerprint = result.system_fingerprint or step.system_fingerprint
        if answer is None:
            result.fail(step.error or ErrorKind.bad_response, step.detail)
            return
        answers.append(answer[0])
        latency += step.latency_ms or 0.0
        prompt_tokens += step.prompt_tokens or 0
        completion_tokens += step.completion_tokens or 0
    result.latency_ms = latency  # the questions one after another
    result.prompt_tokens = prompt_tokens
    result.completion_tokens = completion_tokens
    result.signature = signature(answers)
    judge(result, target, redact, has_text=any(answers))
