"""Every probe there is, once: which kind it belongs to, whether it is free (costs no
tokens) and whether a target runs it by default.

The config validates a target's `probes:` list against this table, the runner runs it
(`probe_<name>` of the kind's module: checker.probes.openai.probe_stream, ...), and the
service lets only free probes run past a spend cap. The table names probes without importing
them, so loading a config (every command does) does not load httpx and the probe code.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe of one target kind."""

    kind: str
    name: str
    free: bool  # sends no prompt: what a target falls back to once its spend cap is reached
    default: bool  # run when a target lists no `probes:`

    @property
    def function(self) -> str:
        """The name of the function that runs it, in the kind's module."""
        return f"probe_{self.name}"


_ALL: tuple[ProbeSpec, ...] = (
    ProbeSpec("openai", "models", free=True, default=True),
    ProbeSpec("openai", "chat", free=False, default=False),
    ProbeSpec("openai", "stream", free=False, default=True),
    ProbeSpec("openai", "known_answer", free=False, default=False),
    ProbeSpec("openai", "prefill", free=False, default=False),
    ProbeSpec("openai", "cache", free=False, default=False),
    ProbeSpec("openai", "identity", free=False, default=False),
    ProbeSpec("anthropic", "models", free=True, default=False),
    ProbeSpec("anthropic", "chat", free=False, default=False),
    ProbeSpec("anthropic", "stream", free=False, default=True),
    ProbeSpec("anthropic", "known_answer", free=False, default=False),
    ProbeSpec("anthropic", "prefill", free=False, default=False),
    ProbeSpec("anthropic", "cache", free=False, default=False),
    ProbeSpec("anthropic", "identity", free=False, default=False),
    ProbeSpec("http", "http", free=True, default=True),
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


# A target's headline figures are those of the first of these it runs: the probe closest
# to what production traffic does (a 1 ms /models answer says little about a stream).
PRIMARY_ORDER: tuple[str, ...] = ("stream", "chat", "known_answer", "models", "http")


def primary_probe(probes: list[str]) -> str | None:
    """The probe whose figures stand for the target: the first of PRIMARY_ORDER it runs."""
    for name in PRIMARY_ORDER:
        if name in probes:
            return name
    return probes[0] if probes else None


def is_free(kind: str, name: str) -> bool:
    """Whether the probe costs nothing (and so still runs past a spend cap)."""
    found = spec(kind, name)
    return found is not None and found.free


__all__ = [
    "PRIMARY_ORDER",
    "SPECS",
    "ProbeSpec",
    "default_probes",
    "is_free",
    "primary_probe",
    "probe_names",
    "spec",
]
