"""Keep the targets table in step with the config: upsert by name, retire what was removed."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from sqlmodel import Session, select

from checker.config import Config
from checker.probes.base import utcnow
from checker.redact import Redactor
from checker.store.models import TargetRow


def public_base_url(url: str, redact: Redactor | None = None) -> str:
    """The URL without credentials, query or fragment (keys hide in all three)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    clean = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return redact.text(clean) if redact else clean


def sync_targets(session: Session, cfg: Config, now: datetime | None = None) -> None:
    """Upsert every configured target by name; mark the others retired. Commits."""
    now = now or utcnow()
    redact = Redactor(cfg.secrets())
    existing = {row.name: row for row in session.exec(select(TargetRow))}
    for target in cfg.targets:
        values = {
            "kind": target.kind,
            "base_url": public_base_url(target.base_url, redact),
            "model": target.model,
            "tags": list(target.tags),
        }
        row = existing.pop(target.name, None)
        if row is None:
            session.add(TargetRow(name=target.name, created_at=now, updated_at=now, **values))
            continue
        changed = row.retired_at is not None or any(
            getattr(row, key) != value for key, value in values.items()
        )
        if changed:
            for key, value in values.items():
                setattr(row, key, value)
            row.retired_at = None
            row.updated_at = now
            session.add(row)
    for row in existing.values():
        if row.retired_at is None:
            row.retired_at = now
            row.updated_at = now
            session.add(row)
    session.commit()
