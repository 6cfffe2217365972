"""The `drift` rule (ticket): the route serves something else than it was accepted to.

Three identity fields are watched: the `system_fingerprint` a route reports, the `model`
it returns, and the `identity` probe's `signature`. Each is compared with the route's
baseline (the first value seen, or the one accepted with `checker baseline --accept`),
and `model` and `signature` also with the group's reference route, which serves the
same model. A change seen in CONFIRM_RESULTS results in a row fires with the old value,
the new one and when it first appeared; a value that changed FLAP_CHANGES times within
the recent history (a load balancer over two backends: A, B, A, B) is reported as
flapping, in one incident, until the history settles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from checker.alerting.signals import Measurement, RuleStatus

__all__ = ["CONFIRM_RESULTS", "FIELDS", "FLAP_CHANGES", "Identity", "drift_status"]

FIELDS: tuple[str, ...] = ("system_fingerprint", "model", "signature")
# Changes within the recent history that make a value "flapping", not "changed".
FLAP_CHANGES = 3
# A new value counts as a change once seen this many times in a row: one odd result is not
# a swap, and a value flipping back and forth is reported as flapping, not as changes.
CONFIRM_RESULTS = 2


@dataclass(frozen=True, slots=True)
class Identity:
    """A route's recent identity values per field (oldest first, with when each was seen),
    its baselines, and the reference route's latest values (empty when it is the reference
    or has none)."""

    history: Mapping[str, Sequence[tuple[datetime, str]]]
    baseline: Mapping[str, str]
    reference: Mapping[str, str]
    reference_name: str | None = None


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _changes(values: Sequence[str]) -> int:
    return sum(1 for a, b in pairwise(values) if a != b)


def drift_status(identity: Identity | None, enabled: bool = True) -> RuleStatus:
    if not enabled:
        return RuleStatus("drift", False)
    if identity is None:
        return RuleStatus("drift", None)
    measurements: list[Measurement] = []
    details: list[str] = []
    pending = False  # a new value not yet seen often enough to count: keep the state
    for field in FIELDS:
        seen = list(identity.history.get(field, ()))
        if not seen:
            continue
        values = [v for _, v in seen]
        latest = values[-1]
        if _changes(values) >= FLAP_CHANGES:
            distinct = sorted(set(values))
            shown = ", ".join(distinct[:4])
            measurements.append(Measurement(field, f"flapping between {shown}", scope="recent"))
            details.append(
                f"{field} keeps changing ({_changes(values)} changes in the last {len(values)}"
                f" results): {shown}"
            )
            continue
        run = 0  # how many of the latest values are the latest value
        first_new = seen[-1][0]  # when that run began
        for at, v in reversed(seen):
            if v != latest:
                break
            run, first_new = run + 1, at
        base = identity.baseline.get(field)
        settled = run >= CONFIRM_RESULTS
        ref = identity.reference.get(field)
        differs = (base is not None and latest != base) or (
            field != "system_fingerprint" and ref is not None and latest != ref
        )
        pending = pending or (differs and not settled)
        if base is not None and latest != base and settled:
            measurements.append(Measurement(field, latest, scope=f"baseline {base}"))
            details.append(f"{field} changed from {base} to {latest} at {_when(first_new)}")
        if field != "system_fingerprint" and ref is not None and latest != ref and settled:
            name = identity.reference_name or "the reference route"
            measurements.append(Measurement(field, latest, scope=f"{name}: {ref}"))
            details.append(f"{field} is {latest}, the reference route {name} serves {ref}")
    firing = True if measurements else (None if pending else False)
    return RuleStatus("drift", firing, tuple(measurements), "; ".join(details) or None)
