"""What the drift rule reads from the store: each route's recent identity values (returned
model and system fingerprint of its good results, its identity probe's signatures), its
baselines, and its reference route's latest values. One or two indexed queries per target,
on the periodic rounds only: identity moves slowly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from checker.alerting.drift_rule import Identity
from checker.config.schema import Config, Target
from checker.store.baselines import baselines_of
from checker.store.models import ProbeResultRow

__all__ = ["IDENTITY_DEPTH", "identities_of"]

RESULTS: sa.Table = ProbeResultRow.__table__  # type: ignore[attr-defined]

_IDENTITY = (
    sa.select(
        RESULTS.c.started_at, RESULTS.c.model, RESULTS.c.system_fingerprint, RESULTS.c.signature
    )
    .where(RESULTS.c.target == sa.bindparam("target"), RESULTS.c.ok.is_(True))
    .order_by(RESULTS.c.started_at.desc())
    .limit(sa.bindparam("n", type_=sa.Integer))
)
_SIGNATURES = (
    sa.select(RESULTS.c.started_at, RESULTS.c.signature)
    .where(
        RESULTS.c.target == sa.bindparam("target"),
        RESULTS.c.probe == "identity",
        RESULTS.c.signature.is_not(None),
    )
    .order_by(RESULTS.c.started_at.desc())
    .limit(sa.bindparam("n", type_=sa.Integer))
)
IDENTITY_DEPTH = 12  # values per field the drift rule looks back over


def _history(conn: sa.Connection, target: Target) -> dict[str, list[tuple[datetime, str]]]:
    """The target's latest identity values per field, oldest first."""
    out: dict[str, list[tuple[datetime, str]]] = {}
    rows = conn.execute(_IDENTITY, {"target": target.name, "n": 4 * IDENTITY_DEPTH}).all()
    for field in ("model", "system_fingerprint"):
        values = [(r.started_at, v) for r in rows if (v := getattr(r, field))]
        if values:
            out[field] = list(reversed(values[:IDENTITY_DEPTH]))
    if "identity" in target.probe_names:
        sigs = conn.execute(_SIGNATURES, {"target": target.name, "n": IDENTITY_DEPTH}).all()
        if sigs:
            out["signature"] = [(r.started_at, r.signature) for r in reversed(sigs)]
    return out


def identities_of(
    conn: sa.Connection, cfg: Config, targets: Sequence[Target]
) -> tuple[dict[str, Identity], dict[str, dict[str, str]]]:
    """Each LLM target's Identity for the drift rule, and the baselines to adopt (fields
    seen for the first time: their oldest value in the history)."""
    llm = [t for t in targets if t.kind != "http"]
    histories = {t.name: _history(conn, t) for t in llm}
    names = [t.name for t in llm]
    refs = {t.compare_group: t for t in cfg.targets if t.reference and t.compare_group}
    for reference in refs.values():
        if reference.name not in histories:
            histories[reference.name] = _history(conn, reference)
    stored = baselines_of(conn, names)
    out: dict[str, Identity] = {}
    adopt: dict[str, dict[str, str]] = {}
    for t in llm:
        history = histories[t.name]
        base = dict(stored.get(t.name, {}))
        new = {f: h[0][1] for f, h in history.items() if f not in base}
        if new:
            adopt[t.name] = new
            base.update(new)
        ref: Target | None = refs.get(t.compare_group) if t.compare_group else None
        latest = (
            {f: h[-1][1] for f, h in histories[ref.name].items()}
            if ref is not None and ref.name != t.name
            else {}
        )
        out[t.name] = Identity(history, base, latest, ref.name if latest and ref else None)
    return out, adopt
