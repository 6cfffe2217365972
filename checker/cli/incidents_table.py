"""The `checker incidents` table: local times to the second, durations, and what burned.

Rows come from the incidents' JSON (IncidentView.to_json, ISO 8601 UTC at full
precision), which stays as it is for `--json`. Here a moment reads "2026-12-07 14:03:12
CET" in the local zone, a length "1h 12m", and a burn or budget incident says what it
measured when it opened: "error budget burn 20.1x over 1h (threshold 14.4x, SLO 99.5%)".
The incident stores the burn rates and thresholds; the SLO's objective and period come
from the config (`SloTerms`), absent for a target no longer configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from checker.cli.human_time import local_time, parse_utc
from checker.cli.table import Cell, Column
from checker.render import measured
from checker.units import format_duration, format_elapsed

__all__ = ["INCIDENT_COLUMNS", "SloTerms", "incident_rows", "what_happened"]

INCIDENT_COLUMNS = [
    Column("id", right=True),
    Column("target"),
    Column("severity", drop=3),
    Column("rules", drop=2),
    Column("state"),
    Column("opened"),
    Column("resolved", drop=4),
    Column("duration", right=True),
    Column("what"),
]

_BURN_RULES = ("burn_page", "burn_ticket")


@dataclass(frozen=True)
class SloTerms:
    """What a target's SLO promises: the objective (0.995) over a period in seconds."""

    availability: float
    window_s: float


def _pct(fraction: float) -> str:
    return f"{fraction * 100:.10g}%"


def _terms(first: str | None, terms: SloTerms | None) -> str:
    """' (threshold 14.4x, SLO 99.5%)': the comparison, then the SLO when known."""
    inside = [*([first] if first else []), *([f"SLO {_pct(terms.availability)}"] if terms else [])]
    return f" ({', '.join(inside)})" if inside else ""


def _number(m: Mapping[str, Any], key: str) -> float | None:
    value = m.get(key)
    return float(value) if isinstance(value, int | float) else None


def _burn(measurements: Sequence[Mapping[str, Any]], terms: SloTerms | None) -> list[str]:
    """'error budget burn 66.7x over 1h (threshold 14.4x), ...': each burn window that
    fired (its long and its short window over the factor), or when none did (figures of
    a later round), the one closest to firing."""
    # scope "page-1h": the pair whose long window is 1h; names burn_rate_long / _short.
    pairs: dict[str, dict[str, tuple[float, float]]] = {}
    for m in measurements:
        value, factor = _number(m, "value"), _number(m, "threshold")
        if value is not None and factor:
            pairs.setdefault(str(m.get("scope")), {})[str(m.get("name"))] = (value, factor)
    scored = sorted(
        (pair["burn_rate_long"][0] / pair["burn_rate_long"][1], scope)
        for scope, pair in pairs.items()
        if "burn_rate_long" in pair
    )
    fired = [scope for _, scope in scored if all(v > f for v, f in pairs[scope].values())]
    shown = fired or [scope for _, scope in scored[-1:]]
    if not shown:
        return []
    phrases = []
    for n, scope in enumerate(shown, 1):
        value, factor = pairs[scope]["burn_rate_long"]
        # The SLO once, in the last window's parentheses: it is the same for all.
        why = _terms(f"threshold {factor:g}x", terms if n == len(shown) else None)
        phrases.append(f"{value:.1f}x over {scope.rsplit('-', 1)[-1]}{why}")
    return ["error budget burn " + ", ".join(phrases)]


def _budget(measurements: Sequence[Mapping[str, Any]], terms: SloTerms | None) -> list[str]:
    out = []
    for m in measurements:
        value, level = _number(m, "value"), _number(m, "threshold")
        if m.get("name") != "budget_remaining" or value is None:
            continue
        period = f" over {format_duration(terms.window_s)}" if terms else ""
        below = None if level is None else f"alert below {level:.0%}"
        # Overspent, "-6566.7% left" says less than what was spent: 6666.7% of it.
        how = f"{value:.1%} left" if value >= 0 else f"{1 - value:.1%} spent"
        out.append(f"error budget {how}{period}" + _terms(below, terms))
    return out


def _measured(m: Mapping[str, Any]) -> str:
    """'stream: consecutive failures 3 (threshold >= 3)', as the alert messages say it."""
    return f"{m['scope']}: {measured(dict(m))}" if m.get("scope") else measured(dict(m))


def what_happened(doc: Mapping[str, Any], terms: SloTerms | None) -> str:
    """What the incident measured: burn and budget in words, then the stored detail (the
    other rules' own account), else those rules' measurements."""
    details = doc.get("details") or {}
    stored: Mapping[str, Sequence[Mapping[str, Any]]] = details.get("measurements") or {}
    parts: list[str] = []
    others: list[str] = []
    for rule in doc["rules"]:
        ms = stored.get(rule) or ()
        if rule in _BURN_RULES:
            parts += _burn(ms, terms)
        elif rule == "budget":
            parts += _budget(ms, terms)
        else:
            others += [_measured(m) for m in ms]
    if doc.get("detail"):
        parts.append(str(doc["detail"]))
    elif others:
        parts.append(", ".join(others))
    return "; ".join(parts)


def incident_rows(
    docs: Sequence[Mapping[str, Any]],
    slos: Mapping[str, SloTerms],
    now: datetime,
    tz: tzinfo | None = None,
) -> list[list[str | Cell]]:
    """Rows from `incidents --json` objects; an open incident's duration runs to `now`."""
    rows: list[list[str | Cell]] = []
    for doc in docs:
        opened = parse_utc(doc["opened_at"])
        resolved = parse_utc(doc["resolved_at"]) if doc["resolved_at"] else None
        lasted = format_elapsed(((resolved or now) - opened).total_seconds())
        state = doc["state"]
        rows.append(
            [
                str(doc["id"]),
                doc["target"],
                Cell(doc["severity"], "red" if doc["severity"] == "page" else "yellow"),
                ", ".join(doc["rules"]),
                Cell(state, "red") if state == "open" else state,
                local_time(opened, tz),
                "-" if resolved is None else local_time(resolved, tz),
                lasted,
                what_happened(doc, terms=slos.get(doc["target"])),
            ]
        )
    return rows
