"""Profile shift: a route whose TTFT or decode speed jumped from one day to the next (pure).

A slow drift or a few slow probes move a median a little; a route that starts serving
another model, or the same model on other hardware, moves its whole distribution at once.
The rule: the period day's median TTFT (or median decode speed) lies outside the previous
day's interquartile range [p25, p75], both days with at least MIN_PROBES_FOR_SHIFT good
results of the route's primary probe. Only one probe kind is ever compared: a `models`
probe's timings say nothing about a `stream` probe's.

Values in, a verdict out: the digest shell (`checker.digest.build`) reads the sketches,
`quartiles` summarises one, `profile_shift` decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from checker.store.sketch import Sketch

__all__ = [
    "MEASURES",
    "MIN_PROBES_FOR_SHIFT",
    "Measure",
    "ProfileShift",
    "Quartiles",
    "profile_shift",
    "quartiles",
]

# Below this many good results a day, a day's quartiles move by chance alone.
MIN_PROBES_FOR_SHIFT = 20

Measure = Literal["ttft", "tokens_per_s"]  # names of checker.store.rollup.SKETCHED
MEASURES: tuple[Measure, ...] = ("ttft", "tokens_per_s")
# As checker.render.fmt_metric knows them: "TTFT" in ms, "tokens/s" as a plain number.
_LABELS: dict[str, str] = {"ttft": "TTFT", "tokens_per_s": "tokens/s"}


@dataclass(frozen=True, slots=True)
class Quartiles:
    """One measure over one day: its quartiles and how many results they rest on."""

    p25: float
    p50: float
    p75: float
    count: int


@dataclass(frozen=True, slots=True)
class ProfileShift:
    target: str
    probe: str
    measure: Measure
    previous: Quartiles  # the day before the period
    current_p50: float  # the period
    current_count: int
    direction: Literal["up", "down"]  # of the period's median against the previous IQR

    @property
    def label(self) -> str:
        return _LABELS[self.measure]


def quartiles(sketch: Sketch) -> Quartiles | None:
    """A sketch's quartiles (within sketch.ALPHA); None when it is empty."""
    p25, p50, p75 = (sketch.quantile(q) for q in (0.25, 0.5, 0.75))
    if p25 is None or p50 is None or p75 is None:
        return None
    return Quartiles(p25, p50, p75, sketch.count)


def profile_shift(
    target: str,
    probe: str,
    measure: Measure,
    previous: Quartiles | None,
    current: Quartiles | None,
    min_probes: int = MIN_PROBES_FOR_SHIFT,
) -> ProfileShift | None:
    """The shift of `measure` from the previous day to the period, or None.

    Outside means strictly below p25 or strictly above p75: a median on the edge of the
    previous IQR is still a plausible day of the same route."""
    if previous is None or current is None:
        return None
    if previous.count < min_probes or current.count < min_probes:
        return None
    if previous.p25 <= current.p50 <= previous.p75:
        return None
    direction: Literal["up", "down"] = "up" if current.p50 > previous.p75 else "down"
    return ProfileShift(target, probe, measure, previous, current.p50, current.count, direction)
