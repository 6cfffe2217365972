"""The status page's sections beyond the per-target cards (pure): targets grouped by tag,
the spend (today, month to date, month-end projection) with billing flags per target.

Imports no I/O module; the shell (web.status_data) reads the sums and the comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from checker.config.schema import Config
from checker.web.wording import IncidentLike

__all__ = [
    "BILLING_FLAGS",
    "BILLING_RULES",
    "Group",
    "SpendLine",
    "SpendSummary",
    "billing_flags",
    "group_by_tag",
    "spend_summary",
]

# The comparison's flags that are about money, in the page's words.
BILLING_FLAGS: dict[str, str] = {
    "over_reports_usage": "bills more tokens than it streams",
    "no_cache_hits": "no cache hits",
    "model_mismatch": "serves another model",
}
# Open incidents of these rule groups are billing flags too.
BILLING_RULES: dict[str, str] = {
    "billing": "billing ticket open",
    "probe_cost": "probe cost ticket open",
    "spend": "spend ticket open",
}


class Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


@dataclass(frozen=True)
class Group(Generic[N]):
    tag: str | None  # None: the targets without a tag
    members: list[N]


def group_by_tag(cfg: Config, pages: Sequence[N]) -> list[Group[N]]:
    """Targets grouped by their first tag, groups in the order their first member is
    configured; untagged targets last. A config without tags is one group (tag None)."""
    tag_of = {t.name: (t.tags[0] if t.tags else None) for t in cfg.targets}
    groups: dict[str | None, list[N]] = {}
    for page in pages:
        groups.setdefault(tag_of.get(page.name), []).append(page)
    ordered = [Group(tag, members) for tag, members in groups.items() if tag is not None]
    if None in groups:
        ordered.append(Group(None, groups[None]))
    return ordered


def billing_flags(
    target: str,
    compare_flags: Sequence[str],
    open_incidents: Sequence[IncidentLike],
    today_usd: float | None,
    cap_usd: float | None,
) -> list[str]:
    """What is wrong with what a route bills, in words; empty when nothing is."""
    flags = [BILLING_FLAGS[f] for f in compare_flags if f in BILLING_FLAGS]
    if cap_usd is not None and today_usd is not None and today_usd >= cap_usd:
        flags.append(f"spend cap reached (${cap_usd:g}/day): free probes only")
    for i in open_incidents:
        words = BILLING_RULES.get(i.rule_group)
        if i.target == target and words and words not in flags:
            flags.append(words)
    return flags


@dataclass(frozen=True)
class SpendLine:
    target: str
    priced: bool  # a price is known (else spend is None, not $0)
    today_usd: float | None
    month_usd: float | None
    projection_usd: float | None
    probes_today: int  # the priced results today's figure rests on
    cap_usd: float | None
    flags: list[str]


@dataclass(frozen=True)
class SpendSummary:
    timezone: str
    lines: list[SpendLine]

    @property
    def today_usd(self) -> float:
        return sum(line.today_usd or 0.0 for line in self.lines)

    @property
    def projection_usd(self) -> float:
        return sum(line.projection_usd or 0.0 for line in self.lines)

    @property
    def flagged(self) -> int:
        return sum(1 for line in self.lines if line.flags)


class SumsLike(Protocol):
    @property
    def cost_usd(self) -> float: ...
    @property
    def cost_count(self) -> int: ...


def _usd(sums: SumsLike | None, priced: bool) -> float | None:
    """A spend, or None when nothing is priced and nothing carried a cost."""
    if sums is not None and sums.cost_count > 0:
        return sums.cost_usd
    return 0.0 if priced else None


def spend_summary(
    cfg: Config,
    *,
    priced: Mapping[str, bool],
    today: Mapping[str, SumsLike],
    month: Mapping[str, SumsLike],
    projection: Mapping[str, float],
    compare_flags: Mapping[str, Sequence[str]],
    open_incidents: Sequence[IncidentLike],
) -> SpendSummary:
    """A spend line per target that is priced or has cost anything (http checks are free)."""
    lines = []
    for t in cfg.targets:
        is_priced = priced.get(t.name, False)
        today_usd = _usd(today.get(t.name), is_priced)
        month_usd = _usd(month.get(t.name), is_priced)
        if today_usd is None and month_usd is None and t.kind == "http":
            continue
        lines.append(
            SpendLine(
                target=t.name,
                priced=is_priced,
                today_usd=today_usd,
                month_usd=month_usd,
                projection_usd=projection.get(t.name) if month_usd is not None else None,
                probes_today=today[t.name].cost_count if t.name in today else 0,
                cap_usd=t.spend_cap_usd_per_day,
                flags=billing_flags(
                    t.name,
                    compare_flags.get(t.name, ()),
                    open_incidents,
                    today_usd,
                    t.spend_cap_usd_per_day,
                ),
            )
        )
    return SpendSummary(cfg.digest.timezone, lines)
