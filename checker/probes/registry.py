"""Every probe there is, once: which kind it belongs to, the function that runs it, whether
it is free (costs no tokens) and whether a target runs it by default.

The config validates a target's `probes:` list against this table, the runner looks the
function up here, and the service lets only free probes run past a spend cap.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from checker.probes import anthropic, http, openai
from checker.probes.base import ProbeResult

if TYPE_CHECKING:
    from checker.config.schema import Target

ProbeFn = Callable[
    ["Target", httpx.AsyncClient, ProbeResult, Callable[[str], str]], Awaitable[None]
]


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe of one target kind."""

    kind: str
    name: str
    run: ProbeFn
    free: bool  # sends no prompt: what a target falls back to once its spend cap is reached
    default: bool  # run when a target lists no `probes:`


_ALL: tuple[ProbeSpec, ...] = (
    ProbeSpec("openai", "models", openai.probe_models, free=True, default=True),
    ProbeSpec("openai", "chat", openai.probe_chat, free=False, default=False),
    ProbeSpec("openai", "stream", openai.probe_stream, free=False, default=True),
    ProbeSpec("openai", "known_answer", openai.probe_known_answer, free=False, default=False),
    ProbeSpec("anthropic", "models", anthropic.probe_models, free=True, default=False),
    ProbeSpec("anthropic", "chat", anthropic.probe_chat, free=False, default=False),
    ProbeSpec("anthropic", "stream", anthropic.probe_stream, free=False, default=True),
    ProbeSpec("anthropic", "known_answer", anthropic.probe_known_answer, free=False, default=False),
    ProbeSpec("http", "http", http.probe_http, free=True, default=True),
)

SPECS: dict[str, dict[str, ProbeSpec]] = {}
"""kind -> probe name -> spec, each kind's probes in the order listed above."""
for _spec in _ALL:
    SPECS.setdefault(_spec.kind, {})[_spec.name] = _spec


def spec(kind: str, name: str) -> ProbeSpec | None:
    """The probe `name` of `kind`, or None when there is none."""
    return SPECS.get(kind, {}).get(name)


def probe_names(kind: str) -> tuple[str, ...]:
    """Every probe a target of `kind` may list."""
    return tuple(SPECS.get(kind, {}))


def default_probes(kind: str) -> list[str]:
    """What a target of `kind` runs when it lists no `probes:`."""
    return [s.name for s in SPECS.get(kind, {}).values() if s.default]


def is_free(kind: str, name: str) -> bool:
    """Whether the probe costs nothing (and so still runs past a spend cap)."""
    found = spec(kind, name)
    return found is not None and found.free


__all__ = ["SPECS", "ProbeFn", "ProbeSpec", "default_probes", "is_free", "probe_names", "spec"]
