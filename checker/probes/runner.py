"""Run one probe (or many, concurrently) and always come back with a classified result.

The runner owns the cross-cutting rules so no probe module has to repeat them: the total
deadline per probe, the classification of any exception, redaction of everything a
result carries as text, and the location label.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING

import httpx

from checker.probes import anthropic, http, openai, registry
from checker.probes.base import ErrorKind, ProbeResult
from checker.probes.classify import classify_exception, short_detail
from checker.probes.transport.pool import ClientPool
from checker.redact import Redactor
from checker.units import format_duration

if TYPE_CHECKING:
    from checker.config.schema import Config, Target

ProbeFn = Callable[
    ["Target", httpx.AsyncClient, ProbeResult, Callable[[str], str]], Awaitable[None]
]

# Where each kind's probes live: the registry's `probe_<name>` functions of these modules.
MODULES: dict[str, ModuleType] = {"openai": openai, "anthropic": anthropic, "http": http}


def probe_function(spec: registry.ProbeSpec) -> ProbeFn:
    """The function that runs `spec` (looked up when it runs, so a test may replace it)."""
    fn: ProbeFn = getattr(MODULES[spec.kind], spec.function)
    return fn


async def run_probe(
    cfg: Config, target: Target, probe: str, pool: ClientPool, redactor: Redactor
) -> ProbeResult:
    """Run `probe` against `target` once. Never raises (except on cancellation)."""
    result = ProbeResult(target=target.name, probe=probe, location=cfg.location)
    spec = registry.spec(target.kind, probe)
    if spec is None:
        return result.fail(ErrorKind.client_error, f"no probe {probe!r} for kind {target.kind}")
    deadline = cfg.timeout(target)
    try:
        async with pool.lease(target) as client:
            scope = asyncio.timeout(deadline)
            try:
                async with scope:
                    await probe_function(spec)(target, client, result, redactor.text)
            except TimeoutError:
                if not scope.expired():
                    raise
                result.fail(
                    ErrorKind.timeout, f"no complete answer within {format_duration(deadline)}"
                )
    except Exception as exc:
        verdict = classify_exception(
            exc,
            headers_received=result.ttfb_ms is not None,
            read_timeout_s=cfg.read_timeout(target),
            redact=redactor.text,
        )
        result.fail(verdict.kind, verdict.detail)
    if result.error is None and not result.ok:
        result.fail(ErrorKind.bad_response, "internal error: probe ended without a verdict")
    _redact(result, redactor)
    return result


def _redact(result: ProbeResult, redactor: Redactor) -> None:
    """Last line of defence: nothing a result carries as text may hold a secret."""
    if result.detail is not None:
        result.detail = short_detail(result.detail, redactor.text)
    if result.model is not None:
        result.model = redactor.text(result.model)[:200]


async def run_all(
    cfg: Config, selection: list[tuple[Target, str]], pool: ClientPool, redactor: Redactor
) -> list[ProbeResult]:
    """Run every (target, probe) pair concurrently; results in the order of `selection`."""
    return list(
        await asyncio.gather(
            *(run_probe(cfg, target, probe, pool, redactor) for target, probe in selection)
        )
    )


__all__ = ["ProbeFn", "probe_function", "run_all", "run_probe"]
